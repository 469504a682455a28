/**
 * Aggregation of the recorded requests: per second, per phase, and the text summary table.
 */
import type { BreakerSample, BreakerState, Outcome, PhaseWindow, RequestRecord } from "./model.js"
import { outcomes } from "./model.js"

export type Counts = Record<Outcome, number>

export const emptyCounts = (): Counts => ({
  ok: 0,
  rateLimited: 0,
  shed: 0,
  breakerOpen: 0,
  timeout: 0,
  failed: 0,
  clientError: 0,
  skipped: 0
})

/**
 * The requests of one phase as the live line and the summary both count them: `sent` when a
 * request leaves the driver, `counts` when its answer is classified (or when the driver skips
 * one). A request in flight is in `sent` and not yet in `counts`.
 */
export interface Tally {
  sent: number
  readonly counts: Counts
}

export const emptyTally = (): Tally => ({ sent: 0, counts: emptyCounts() })

/** The tally of `phase` rebuilt from finished records (every request sent has its record). */
export const tallyOf = (records: ReadonlyArray<RequestRecord>, phase: string): Tally => {
  const tally = emptyTally()
  for (const r of records) {
    if (r.phase !== phase) continue
    tally.counts[r.outcome]++
    if (r.outcome !== "skipped") tally.sent++
  }
  return tally
}

/** Requests the driver tried to send: the ones it sent and the ones its in-flight cap skipped. */
export const offeredOf = (tally: Tally): number => tally.sent + tally.counts.skipped

/** Requests let through by the server's protections (not refused by a limiter, shedder or breaker). */
export const admittedOf = (counts: Counts): number => counts.ok + counts.timeout + counts.failed + counts.clientError

/** Nearest-rank percentile of an ascending array; `NaN` when empty. */
export const percentile = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil(q * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

const round1 = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : null)

export interface SecondBucket {
  /** Second index since the start of the run. */
  readonly t: number
  readonly phase: string
  readonly counts: Counts
  readonly sent: number
  /** requests the driver tried to send in this second (sent + skipped) */
  readonly offered: number
  /** requests sent in this second that the server's protections let through */
  readonly admitted: number
  /** Latency percentiles (ms) over every answered request sent in this second; null when none. */
  readonly p50: number | null
  readonly p99: number | null
  /** p99 over admitted (2xx) requests only. */
  readonly p99ok: number | null
}

const phaseAt = (phases: ReadonlyArray<PhaseWindow>, ms: number): string => {
  for (const p of phases) if (ms >= p.startMs && ms < p.endMs) return p.name
  return phases.length > 0 ? phases[phases.length - 1].name : ""
}

/** Buckets requests by the second they were sent in. */
export const perSecond = (
  records: ReadonlyArray<RequestRecord>,
  phases: ReadonlyArray<PhaseWindow>,
  totalMs: number
): Array<SecondBucket> => {
  // a run of 37.004 s has 37 buckets: the last few milliseconds are the drain, not a second of load
  const n = Math.max(1, Math.ceil((totalMs - 50) / 1000))
  const counts = Array.from({ length: n }, emptyCounts)
  const lat: Array<Array<number>> = Array.from({ length: n }, () => [])
  const latOk: Array<Array<number>> = Array.from({ length: n }, () => [])
  for (const r of records) {
    const i = Math.min(n - 1, Math.max(0, Math.floor(r.sentAt / 1000)))
    counts[i][r.outcome]++
    if (r.outcome !== "skipped" && r.status !== 0) lat[i].push(r.latencyMs)
    if (r.outcome === "ok") latOk[i].push(r.latencyMs)
  }
  return counts.map((c, i) => {
    const all = lat[i].sort((a, b) => a - b)
    const ok = latOk[i].sort((a, b) => a - b)
    return {
      t: i,
      phase: phaseAt(phases, i * 1000 + 500),
      counts: c,
      sent: outcomes.reduce((s, o) => s + c[o], 0),
      offered: outcomes.reduce((s, o) => s + c[o], 0),
      admitted: admittedOf(c),
      p50: round1(percentile(all, 0.5)),
      p99: round1(percentile(all, 0.99)),
      p99ok: round1(percentile(ok, 0.99))
    }
  })
}

export interface PhaseSummary {
  readonly phase: string
  readonly title: string
  readonly seconds: number
  readonly offeredRps: number
  /** requests the driver tried to send: `sent` plus the ones its in-flight cap skipped */
  readonly offered: number
  readonly sent: number
  /** requests the server's protections let through (answered by the handler or its deadline) */
  readonly admitted: number
  readonly counts: Counts
  readonly admittedPct: number
  readonly p50: number | null
  readonly p99: number | null
  readonly p99ok: number | null
  /** Rejections by the protection that answered, e.g. { "rate-limit": 120, "breaker:GET /api/users/:id": 40 }. */
  readonly by: Readonly<Record<string, number>>
  /** Breaker states seen during the phase, by breaker. */
  readonly breakers: Readonly<Record<string, ReadonlyArray<BreakerState>>>
  /** CPU each process used during the phase, in percent of one core, by process name. */
  readonly cpuPct?: Readonly<Record<string, number>>
}

/**
 * One row per phase. Counts come from `tallies` when given — the very objects the live line shows,
 * so the two always agree — and are otherwise rebuilt from the records.
 */
export const summarize = (
  records: ReadonlyArray<RequestRecord>,
  phases: ReadonlyArray<PhaseWindow>,
  samples: ReadonlyArray<BreakerSample>,
  tallies?: ReadonlyMap<string, Tally>
): Array<PhaseSummary> =>
  phases.map((p) => {
    const rs = records.filter((r) => r.phase === p.name)
    const tally = tallies?.get(p.name) ?? tallyOf(records, p.name)
    const counts = { ...tally.counts }
    const by: Record<string, number> = {}
    const all: Array<number> = []
    const ok: Array<number> = []
    for (const r of rs) {
      if (r.outcome !== "ok") by[r.by] = (by[r.by] ?? 0) + 1
      if (r.outcome !== "skipped" && r.status !== 0) all.push(r.latencyMs)
      if (r.outcome === "ok") ok.push(r.latencyMs)
    }
    all.sort((a, b) => a - b)
    ok.sort((a, b) => a - b)
    const breakers: Record<string, Array<BreakerState>> = {}
    for (const s of samples) {
      if (s.t < p.startMs || s.t >= p.endMs) continue
      const seen = (breakers[s.name] ??= [])
      if (seen[seen.length - 1] !== s.state) seen.push(s.state)
    }
    const sent = tally.sent
    const ms = p.endMs - p.startMs
    const cpu = p.cpuMs
    return {
      ...(cpu === undefined || ms <= 0 ? {} : {
        cpuPct: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round((v / ms) * 1000) / 10]))
      }),
      phase: p.name,
      title: p.title,
      seconds: Math.round((p.endMs - p.startMs) / 100) / 10,
      offeredRps: p.rps,
      offered: offeredOf(tally),
      sent,
      admitted: admittedOf(counts),
      counts,
      admittedPct: sent === 0 ? 0 : Math.round((counts.ok / sent) * 1000) / 10,
      p50: round1(percentile(all, 0.5)),
      p99: round1(percentile(all, 0.99)),
      p99ok: round1(percentile(ok, 0.99)),
      by,
      breakers
    }
  })

const fmt = (n: number | null) => (n === null ? "-" : n.toFixed(1))

/** Renders rows as an aligned text table (first column left-aligned, the rest right-aligned). */
export const textTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  return [line(header), rule, ...rows.map(line)].join("\n")
}

export const summaryHeader = [
  "phase",
  "secs",
  "rps",
  "offered",
  "sent",
  "admitted",
  "ok",
  "429",
  "shed",
  "brk-open",
  "timeout",
  "failed",
  "skipped",
  "ok %",
  "p50 ms",
  "p99 ms",
  "p99 ok"
] as const

export const summaryRows = (summary: ReadonlyArray<PhaseSummary>): Array<Array<string>> => {
  const rows = summary.map((s) => [
    s.phase,
    String(s.seconds),
    String(s.offeredRps),
    String(s.offered),
    String(s.sent),
    String(s.admitted),
    String(s.counts.ok),
    String(s.counts.rateLimited),
    String(s.counts.shed),
    String(s.counts.breakerOpen),
    String(s.counts.timeout),
    String(s.counts.failed + s.counts.clientError),
    String(s.counts.skipped),
    s.admittedPct.toFixed(1),
    fmt(s.p50),
    fmt(s.p99),
    fmt(s.p99ok)
  ])
  return rows
}

/** The summary as a text table, followed by the breaker states seen in each phase. */
export const summaryText = (summary: ReadonlyArray<PhaseSummary>): string => {
  const table = textTable(summaryHeader, summaryRows(summary))
  const names = [...new Set(summary.flatMap((s) => Object.keys(s.breakers)))]
  const breakerRows = names.map((name) => [name, ...summary.map((s) => (s.breakers[name] ?? ["-"]).join("→"))])
  const breakerTable = names.length === 0
    ? ""
    : "\n\n" + textTable(["breaker", ...summary.map((s) => s.phase)], breakerRows)
  const byRows = [...new Set(summary.flatMap((s) => Object.keys(s.by)))].sort().map((k) => [
    k,
    ...summary.map((s) => String(s.by[k] ?? 0))
  ])
  const byTable = byRows.length === 0
    ? ""
    : "\n\n" + textTable(["not admitted, by", ...summary.map((s) => s.phase)], byRows)
  const cpuNames = [...new Set(summary.flatMap((s) => Object.keys(s.cpuPct ?? {})))]
  const cpuTable = cpuNames.length === 0 ? "" : "\n\n" + textTable(
    ["cpu, % of one core", ...summary.map((s) => s.phase)],
    cpuNames.map((n) => [n, ...summary.map((s) => s.cpuPct?.[n] === undefined ? "-" : s.cpuPct[n].toFixed(1))])
  )
  return table + breakerTable + byTable + cpuTable
}
