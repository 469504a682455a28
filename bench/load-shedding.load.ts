/**
 * The load generator of the load-shedding experiment: starting the server processes
 * (`load-shedding.server.ts`), measuring capacity closed-loop, and offering a rate open-loop.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as http from "node:http"
import { setPriority, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { bundledArgs } from "../test/integration/bundle.js"
import { closedLoop, getStatus, openLoop } from "../test/integration/httpLoad.js"

export type Tier = "critical" | "standard" | "sheddable"

export interface Settings {
  readonly costMs: number
  readonly slices: number
  readonly phaseS: number
  readonly sloMs: number
  readonly requestTimeoutMs: number
  /**
   * read the protection's counters after each phase: an overloaded server answers that request
   * only once it has worked off its queue, which takes up to 15 s at 8× without protection
   */
  readonly stats: boolean
  /** the default shedder's signal, JSON */
  readonly signal?: string
}

export interface Server {
  readonly port: number
  readonly get: (path: string) => Promise<string>
  readonly stop: () => Promise<void>
}

const benchDir = dirname(fileURLToPath(import.meta.url))
const serverPath = join(benchDir, "load-shedding.server.ts")

/** How to start a server: bundled once with its packages, so each of the ~17 starts quickly. */
const serverArgs = ((): ReadonlyArray<string> => {
  const dir = mkdtempSync(join(tmpdir(), "effect-resilience-bench-"))
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
  return bundledArgs(serverPath, dir)
})()
/** a start-up far slower than this on a busy machine is still a start-up, not a hang */
const startBudgetMs = 120_000

/** A higher scheduling priority for the generator, when the OS allows it; otherwise nothing. */
export const raiseOwnPriority = (): void => {
  try {
    setPriority(-10)
  } catch {
    // not permitted: the generator runs at normal priority
  }
}

/** every server started, so none outlives this process however it ends */
const children = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})

export const startServer = (protection: string, settings: Settings): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, serverArgs, {
      env: {
        ...process.env,
        PROTECTION: protection,
        COST_MS: String(settings.costMs),
        SLICES: String(settings.slices),
        ...(settings.signal === undefined ? {} : { SIGNAL: settings.signal })
      },
      stdio: ["ignore", "pipe", "inherit"]
    })
    children.add(child)
    // a child inherits the generator's priority: the server under test runs at the normal one
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, 0)
      } catch {
        // the generator's priority was not raised either
      }
    }
    child.once("exit", () => children.delete(child))
    let buffer = ""
    let started = false
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`server ${protection} did not start within ${startBudgetMs} ms`))
    }, startBudgetMs)
    child.stdout!.on("data", (chunk: Buffer) => {
      if (started) return
      buffer += chunk.toString()
      const line = buffer.split("\n").find((l) => l.startsWith("{\"port\""))
      if (line === undefined) return
      started = true
      clearTimeout(timer)
      const port = JSON.parse(line).port as number
      resolve({
        port,
        get: (path) =>
          new Promise((res, rej) => {
            http.get({ host: "127.0.0.1", port, path }, (response) => {
              let body = ""
              response.on("data", (d) => (body += d))
              response.on("end", () => res(body))
            }).on("error", rej)
          }),
        stop: () =>
          new Promise((res) => {
            if (child.exitCode !== null || child.signalCode !== null) return res()
            child.once("exit", () => res())
            // its counters are read: nothing to shut down gracefully, and a graceful shutdown
            // would wait for the generator's keep-alive sockets
            child.kill("SIGKILL")
          })
      })
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      if (!started) reject(new Error(`server ${protection} exited with ${code}`))
    })
  })

/** Starts one server per entry, a few at a time. */
export const startAll = async (
  protections: ReadonlyArray<string>,
  settings: Settings
): Promise<ReadonlyArray<Server>> => {
  const servers: Array<Server> = new Array(protections.length)
  let next = 0
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < protections.length) {
      const i = next++
      servers[i] = await startServer(protections[i], settings)
    }
  }))
  return servers
}

export const capacityConnections = 16
const capacityTimeoutMs = 30_000

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })

export const closeAgent = () => agent.destroy()

const request = (port: number, timeoutMs: number, tier?: Tier): Promise<number> =>
  getStatus(agent, port, timeoutMs, tier === undefined ? undefined : { "x-priority": tier })

/**
 * Capacity of an unprotected server: completed requests per second with 16 connections
 * closed-loop, however slow, after half a second of warm-up.
 */
export const measureCapacity = async (settings: Settings, seconds: number): Promise<number> => {
  const server = await startServer("none", settings)
  try {
    const send = () => request(server.port, capacityTimeoutMs)
    await closedLoop(send, capacityConnections, 0.5)
    return await closedLoop(send, capacityConnections, seconds)
  } finally {
    await server.stop()
  }
}

interface Sample {
  readonly tier: Tier | undefined
  readonly status: number
  readonly latency: number
}

/** Open loop: `rate` requests per second for `seconds`, each sent on schedule. */
const openLoopSamples = async (
  port: number,
  rate: number,
  seconds: number,
  timeoutMs: number,
  mix: ReadonlyArray<Tier> | undefined
): Promise<ReadonlyArray<Sample>> => {
  const samples: Array<Sample> = []
  await openLoop(rate, seconds, (index, dueAt) => {
    const tier = mix === undefined ? undefined : mix[index % mix.length]
    return request(port, timeoutMs, tier).then((status) => {
      samples.push({ tier, status, latency: performance.now() - dueAt })
    })
  })
  return samples
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

export interface TierResult {
  readonly priority: Tier
  readonly offered: number
  readonly goodput: number
  /** of the offered rate of the tier */
  readonly goodputShare: number
  readonly p50: number
  readonly p99: number
  readonly shedShare: number
  readonly failures: number
}

export interface PhaseResult {
  readonly protection: string
  readonly multiple: number
  readonly capacity: number
  readonly offered: number
  readonly goodput: number
  /** of the capacity */
  readonly goodputShare: number
  readonly p50: number
  readonly p99: number
  readonly shedShare: number
  readonly failures: number
  readonly tiers: ReadonlyArray<TierResult> | undefined
  readonly stats: unknown
}

const summarize = (samples: ReadonlyArray<Sample>, seconds: number, sloMs: number) => {
  const ok = samples.filter((s) => s.status === 200)
  const latencies = ok.map((s) => s.latency).sort((a, b) => a - b)
  return {
    goodput: ok.filter((s) => s.latency <= sloMs).length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    shedShare: samples.filter((s) => s.status === 503).length / Math.max(1, samples.length),
    failures: samples.filter((s) => s.status !== 200 && s.status !== 503).length
  }
}

export interface Phase {
  readonly protection: string
  readonly multiple: number
  readonly capacity: number
  readonly mix: ReadonlyArray<Tier> | undefined
}

/** A quarter second of light closed-loop traffic (JIT), then the open-loop phase; stops the server. */
export const runPhase = async (server: Server, settings: Settings, phase: Phase): Promise<PhaseResult> => {
  try {
    await closedLoop(() => request(server.port, settings.requestTimeoutMs), 4, 0.25)
    const offered = Math.round(phase.capacity * phase.multiple)
    const samples = await openLoopSamples(server.port, offered, settings.phaseS, settings.requestTimeoutMs, phase.mix)
    const stats: unknown = settings.stats ? JSON.parse(await server.get("/stats")) : undefined
    const all = summarize(samples, settings.phaseS, settings.sloMs)
    const tiers = phase.mix === undefined ? undefined : (["critical", "standard", "sheddable"] as const).map((
      priority
    ): TierResult => {
      const mine = samples.filter((s) => s.tier === priority)
      const tierOffered = mine.length / settings.phaseS
      const summary = summarize(mine, settings.phaseS, settings.sloMs)
      return { priority, offered: tierOffered, ...summary, goodputShare: summary.goodput / tierOffered }
    })
    return {
      protection: phase.protection,
      multiple: phase.multiple,
      capacity: phase.capacity,
      offered,
      ...all,
      goodputShare: all.goodput / phase.capacity,
      tiers,
      stats
    }
  } finally {
    await server.stop()
  }
}

const pct = (n: number) => `${(n * 100).toFixed(0)} %`
const ms = (n: number) => (Number.isNaN(n) ? "-" : n.toFixed(0))

export const describe = (label: string, r: PhaseResult): string => {
  const head = `${label} ${r.multiple}×${r.tiers === undefined ? "" : " mixed"}: offered ${r.offered}/s, goodput ${
    r.goodput.toFixed(0)
  }/s (${pct(r.goodputShare)}), p99 ${ms(r.p99)} ms, shed ${pct(r.shedShare)}`
  const tiers = (r.tiers ?? []).map((t) =>
    `\n  ${t.priority}: goodput ${pct(t.goodputShare)} of ${t.offered.toFixed(0)}/s, p99 ${ms(t.p99)} ms, shed ${
      pct(t.shedShare)
    }`
  )
  const stats = process.env.VERBOSE === undefined || r.stats === undefined ? "" : `\n  stats ${JSON.stringify(r.stats)}`
  return head + tiers.join("") + stats
}

export const tableRows = (label: string, r: PhaseResult): ReadonlyArray<ReadonlyArray<string>> => {
  const row = [
    label,
    `${r.multiple}×${r.tiers === undefined ? "" : " mixed"}`,
    String(r.offered),
    r.goodput.toFixed(0),
    pct(r.goodputShare),
    ms(r.p50),
    ms(r.p99),
    pct(r.shedShare),
    String(r.failures)
  ]
  const tiers = (r.tiers ?? []).map((t) => [
    `  ${t.priority}`,
    "",
    t.offered.toFixed(0),
    t.goodput.toFixed(0),
    `${pct(t.goodputShare)} of offered`,
    ms(t.p50),
    ms(t.p99),
    pct(t.shedShare),
    String(t.failures)
  ])
  return [row, ...tiers]
}
