/**
 * Load shedding, measured two ways.
 *
 * 1. The happy path: what `protect` costs when nothing is shed, against the bare effect.
 *
 * 2. An overload experiment. An HTTP server (`bench/load-shedding.server.ts`, @effect/platform-node
 *    on 127.0.0.1, its own process) serves `GET /work`, a handler of known CPU cost (`COST_MS`,
 *    spent in `SLICES` slices with a yield to the event loop between them). This process is the
 *    load generator. It first measures the server's capacity (closed loop, 16 connections, an
 *    unprotected server), then offers 1×, 2×, 4× and 8× that rate open-loop: requests leave on
 *    schedule whether or not earlier ones were answered, and latency counts from the scheduled
 *    time, so a slow server cannot hide its queue. Each protection — none, go-zero's CPU shedder,
 *    the default `LoadShedder`, `AdaptiveLimiter` — answers 503 when it rejects. Every phase runs
 *    against a fresh server that has served only a quarter second of light warm-up traffic, and
 *    every second of the phase counts, the first one included: the overload arrives on a cold
 *    protection. One more phase offers 4× with a mix of priorities (10 % critical, 60 % standard,
 *    30 % sheddable, in the `x-priority` header) to the default shedder.
 *
 *    Goodput is the rate of 2xx answers within the SLO, as a share of the capacity (of the
 *    offered critical rate for the critical tier); p99 is over admitted (2xx) requests.
 *
 *    The generator asks for a higher scheduling priority (when the OS allows it; it uses a small
 *    share of a core): on a busy machine, latency should be the server's, not the generator's wait
 *    for a CPU. The servers run at normal priority.
 *
 * Flags: `--quick` (phases of 2.5 s, no happy-path suite, the protections' counters read only with
 * VERBOSE), `--json` (stdout carries one JSON object
 * `{ "rows": [{ "protection", "multiple", "goodput", "p99Ms" }], … }` and nothing else; progress
 * goes to stderr). Env: COST_MS (10), SLICES (4), PHASE_S (10, quick 2.5), SLO_MS (250),
 * PROTECTIONS (none,cpu,default,limiter), MULTIPLES (1,2,4,8), SIGNAL (JSON, the default shedder's
 * signal, for comparisons), BUCKETS (the default shedder's buckets), VERBOSE (print each protection's
 * stats after its phase).
 */
import { effectCase, printTable, runSuite, scopedEffectCase, writeResults } from "./harness.js"
import * as Load from "./load-shedding.load.js"

const flags = new Set(process.argv.slice(2))
const quick = flags.has("--quick")
const json = flags.has("--json")
/** progress and tables: stderr when stdout is reserved for the JSON */
const say = (line: string) => (json ? process.stderr.write(line + "\n") : console.log(line))

// ---------------------------------------------------------------------------------------------
// 1. happy path
// ---------------------------------------------------------------------------------------------

if (!quick && !json) {
  // imported here: the quick run does not pay for compiling the library at start-up
  const Effect = await import("effect/Effect")
  const AdaptiveLimiter = await import("../src/AdaptiveLimiter.js")
  const CpuUsage = await import("../src/CpuUsage.js")
  const LoadShedder = await import("../src/LoadShedder.js")
  const work = Effect.succeed(1)
  await runSuite({
    name: "load-shedding: protect, nothing shed",
    baseline: "bare effect",
    cases: [
      effectCase("bare effect", work),
      scopedEffectCase(
        "LoadShedder.protect (event-loop utilization)",
        Effect.map(LoadShedder.make({ name: "bench-happy" }), (shedder) => shedder.protect(work)).pipe(Effect.orDie)
      ),
      scopedEffectCase(
        "LoadShedder.protect (cpu)",
        Effect.map(
          LoadShedder.make({ name: "bench-happy-cpu", signal: LoadShedder.cpu() }),
          (shedder) => shedder.protect(work)
        ).pipe(Effect.provide(CpuUsage.layerTest(100)), Effect.orDie)
      ),
      scopedEffectCase(
        "LoadShedder.admit + pass",
        Effect.map(
          LoadShedder.make({ name: "bench-ticket" }),
          (shedder) => Effect.flatMap(shedder.admit("standard"), (ticket) => ticket.pass)
        ).pipe(Effect.orDie)
      ),
      scopedEffectCase(
        "AdaptiveLimiter.protect",
        Effect.map(AdaptiveLimiter.make({ name: "bench-happy" }), (limiter) => limiter.protect(work)).pipe(
          Effect.orDie
        )
      ),
      scopedEffectCase(
        "Semaphore.withPermits(1) (reference)",
        Effect.map(Effect.makeSemaphore(1), (semaphore) => semaphore.withPermits(1)(work))
      )
    ],
    note: "LoadShedder with its signal under the threshold; AdaptiveLimiter with gradient2."
  })
}

// ---------------------------------------------------------------------------------------------
// 2. the experiment
// ---------------------------------------------------------------------------------------------

const list = (value: string | undefined, fallback: string) => (value ?? fallback).split(",").map((s) => s.trim())
const settings: Load.Settings = {
  costMs: Number(process.env.COST_MS ?? 10),
  slices: Number(process.env.SLICES ?? 4),
  phaseS: Number(process.env.PHASE_S ?? (quick ? 2.5 : 10)),
  sloMs: Number(process.env.SLO_MS ?? 250),
  requestTimeoutMs: quick ? 1000 : 2000,
  stats: !quick || process.env.VERBOSE !== undefined,
  ...(process.env.SIGNAL === undefined ? {} : { signal: process.env.SIGNAL })
}
const protections = list(process.env.PROTECTIONS, "none,cpu,default,limiter")
const multiples = list(process.env.MULTIPLES, "1,2,4,8").map(Number)
const mix: ReadonlyArray<Load.Tier> = [
  "critical",
  "standard",
  "sheddable",
  "standard",
  "standard",
  "sheddable",
  "standard",
  "standard",
  "sheddable",
  "standard"
]

const labels: Record<string, string> = {
  none: "no protection",
  cpu: "go-zero CPU shedder",
  default: "LoadShedder (default)",
  limiter: "AdaptiveLimiter"
}

Load.raiseOwnPriority()
const capacity = await Load.measureCapacity(settings, quick ? 2 : 3)
say(`capacity: ${capacity.toFixed(0)} 2xx/s (closed loop, ${Load.capacityConnections} connections, unprotected server)`)

interface Plan {
  readonly protection: string
  readonly multiple: number
  readonly mixed: boolean
}
// by multiple, then protection: the protections at one multiple run close together in time, so a
// shared machine's drift hits them alike
const plans: Array<Plan> = []
for (const multiple of multiples) {
  for (const protection of protections) plans.push({ protection, multiple, mixed: false })
}
if (protections.includes("default")) plans.push({ protection: "default", multiple: 4, mixed: true })

// every server starts before the first phase, so no phase shares the CPU with a starting server
const servers = await Load.startAll(plans.map((p) => p.protection), settings).catch((error) => {
  process.stderr.write(`${error}\n`)
  return process.exit(1)
})
const results: Array<Load.PhaseResult> = []
for (let i = 0; i < plans.length; i++) {
  const plan = plans[i]
  const server = servers[i]
  const result = await Load.runPhase(server, settings, {
    protection: plan.protection,
    multiple: plan.multiple,
    capacity,
    mix: plan.mixed ? mix : undefined
  })
  results.push(result)
  say(Load.describe(labels[plan.protection] ?? plan.protection, result))
}
Load.closeAgent()

const rows = results.flatMap((r) =>
  r.tiers === undefined
    ? [{ protection: r.protection, multiple: r.multiple, goodput: round(r.goodputShare), p99Ms: round(r.p99) }]
    : r.tiers.map((t) => ({
      protection: r.protection,
      multiple: r.multiple,
      priority: t.priority,
      goodput: round(t.goodputShare),
      p99Ms: round(t.p99)
    }))
)

function round(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n * 1000) / 1000 : null
}

if (json) {
  process.stdout.write(JSON.stringify({ capacity: Math.round(capacity), sloMs: settings.sloMs, rows }) + "\n")
} else {
  console.log(
    `\n## load-shedding experiment  (handler ${settings.costMs} ms CPU in ${settings.slices} slices, SLO ${settings.sloMs} ms, a fresh server per phase of ${settings.phaseS} s, every second counted)\n`
  )
  printTable(
    ["protection", "load", "offered/s", "goodput/s", "goodput % cap", "p50 ms", "p99 ms", "503 %", "errors"],
    results.flatMap((r) => Load.tableRows(labels[r.protection] ?? r.protection, r))
  )
  console.log(
    `\ncapacity ${
      capacity.toFixed(0)
    }/s: 2xx/s of an unprotected server, closed loop with ${Load.capacityConnections} connections.` +
      "\ngoodput: 2xx answered within the SLO, per second (critical: as a share of the critical requests offered);" +
      " p50/p99 over 2xx answers; errors: timeouts and resets."
  )
  writeResults("load-shedding experiment", { ...settings, capacity, results })
}
