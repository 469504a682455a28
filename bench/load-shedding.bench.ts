/**
 * Load shedding, measured two ways.
 *
 * 1. The happy path: what `protect` costs when nothing is shed, against the bare effect.
 *
 * 2. An experiment. An HTTP server (`bench/load-shedding.server.ts`, @effect/platform-node on
 *    127.0.0.1, its own process) serves `GET /work`, a handler of known CPU cost (`COST_MS`, spent in
 *    `SLICES` slices with a yield to the event loop between them). This process is the load
 *    generator: it first measures the server's capacity (closed loop, 64 connections, an unprotected
 *    server), then offers 1×, 2× and 4× that rate open-loop (requests are sent on schedule whether or
 *    not earlier ones were answered; latency counts from the scheduled time, so a slow server cannot
 *    hide its queue). The same run is repeated with no protection, with `LoadShedder` (CPU signal:
 *    the server's event-loop utilization) and with `AdaptiveLimiter` (gradient2), each a middleware
 *    that answers 503 when it rejects. Goodput is the rate of 2xx answers within the SLO; p99 is
 *    over admitted (2xx) requests.
 *
 *    Every phase runs against a fresh server, so no phase inherits another's state: neither the
 *    requests a timed-out client left queued on the server, nor what the protection learned (the
 *    CPU average, the shedder's window, the limiter's limit). The first `WARMUP_S` seconds of each
 *    phase are not counted; the default is the time the CPU average needs to cross 90 % of a step
 *    from 0, so the shedder is measured in steady state rather than while its signal warms up.
 *
 * Env: COST_MS (2), SLICES (4), PHASE_S (WARMUP_S + 8), WARMUP_S (12), SLO_MS (250).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as http from "node:http"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as AdaptiveLimiter from "../src/AdaptiveLimiter.js"
import * as CpuUsage from "../src/CpuUsage.js"
import * as Cpu from "../src/internal/cpu.js"
import * as LoadShedder from "../src/LoadShedder.js"
import { effectCase, printTable, runSuite, scopedEffectCase, writeResults } from "./harness.js"

// ---------------------------------------------------------------------------------------------
// 1. happy path
// ---------------------------------------------------------------------------------------------

const work = Effect.succeed(1)

await runSuite({
  name: "load-shedding: protect, nothing shed",
  baseline: "bare effect",
  cases: [
    effectCase("bare effect", work),
    scopedEffectCase(
      "LoadShedder.protect",
      Effect.map(LoadShedder.make({ name: "bench-happy" }), (shedder) => shedder.protect(work)).pipe(
        Effect.provide(CpuUsage.layerTest(100)),
        Effect.orDie
      )
    ),
    scopedEffectCase(
      "LoadShedder.allow + pass",
      Effect.map(
        LoadShedder.make({ name: "bench-ticket" }),
        (shedder) => Effect.flatMap(shedder.allow, (ticket) => ticket.pass)
      ).pipe(Effect.provide(CpuUsage.layerTest(100)), Effect.orDie)
    ),
    scopedEffectCase(
      "AdaptiveLimiter.protect",
      Effect.map(AdaptiveLimiter.make({ name: "bench-happy" }), (limiter) => limiter.protect(work)).pipe(Effect.orDie)
    ),
    scopedEffectCase(
      "Semaphore.withPermits(1) (reference)",
      Effect.map(Effect.makeSemaphore(1), (semaphore) => semaphore.withPermits(1)(work))
    )
  ],
  note: "LoadShedder with the CPU under the threshold (CpuUsage.layerTest(100)); AdaptiveLimiter with gradient2."
})

// ---------------------------------------------------------------------------------------------
// 2. the experiment
// ---------------------------------------------------------------------------------------------

const costMs = Number(process.env.COST_MS ?? 2)
const slices = Number(process.env.SLICES ?? 4)
/** Seconds for the CPU average (β per sample) to cover 90 % of a step: ln 0.1 / ln β samples. */
const cpuSettleS = Math.ceil(
  (Math.log(0.1) / Math.log(Cpu.cpuBeta)) * Duration.toSeconds(Duration.decode(CpuUsage.sampleInterval))
)
const warmupS = Number(process.env.WARMUP_S ?? cpuSettleS)
const phaseS = Number(process.env.PHASE_S ?? warmupS + 8)
const sloMs = Number(process.env.SLO_MS ?? 250)
const requestTimeoutMs = 2000
const multiples = [1, 2, 4]
const capacityConnections = 64
const protections = ["none", "shedder", "limiter"] as const

const serverPath = join(dirname(fileURLToPath(import.meta.url)), "load-shedding.server.ts")

interface Server {
  readonly port: number
  readonly get: (path: string) => Promise<string>
  readonly stop: () => Promise<void>
}

const startServer = (protection: string): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", serverPath], {
      env: { ...process.env, PROTECTION: protection, COST_MS: String(costMs), SLICES: String(slices) },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let buffer = ""
    let started = false
    child.stdout!.on("data", (chunk: Buffer) => {
      if (started) return
      buffer += chunk.toString()
      const line = buffer.split("\n").find((l) => l.startsWith("{\"port\""))
      if (line === undefined) return
      started = true
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
            child.once("exit", () => res())
            child.kill("SIGTERM")
          })
      })
    })
    child.once("exit", (code) => {
      if (!started) reject(new Error(`server exited with ${code}`))
    })
  })

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })

/** One `GET /work`: its status, 0 for an error or a timeout. */
const request = (port: number): Promise<number> =>
  new Promise((resolve) => {
    let done = false
    const finish = (status: number) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(status)
    }
    const req = http.get({ host: "127.0.0.1", port, path: "/work", agent }, (res) => {
      res.resume()
      res.on("end", () => finish(res.statusCode ?? 0))
      res.on("error", () => finish(0))
    })
    req.on("error", () => finish(0))
    // A request still waiting for a socket is withdrawn; one already sent is left to finish, so a
    // timeout never closes a pooled connection (reconnect storms would overflow the listen queue).
    let sent = false
    req.on("socket", () => (sent = true))
    const timer = setTimeout(() => {
      finish(0)
      if (!sent) req.destroy()
    }, requestTimeoutMs)
  })

/** Completed 2xx per second with `concurrency` requests always outstanding, after one second of warm-up. */
const capacityOf = async (port: number, concurrency: number, seconds: number): Promise<number> => {
  let ok = 0
  const start = performance.now()
  const countFrom = start + 1000
  const end = countFrom + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const status = await request(port)
      if (status === 200 && performance.now() >= countFrom) ok++
    }
  }))
  return ok / seconds
}

interface Sample {
  /** scheduled send time, ms since the phase started */
  readonly at: number
  readonly status: number
  readonly latency: number
}

/** Open loop: `rate` requests per second for `seconds`, each sent on schedule. */
const openLoop = async (port: number, rate: number, seconds: number): Promise<ReadonlyArray<Sample>> => {
  const samples: Array<Sample> = []
  const pending: Array<Promise<void>> = []
  const total = Math.round(rate * seconds)
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000))
      for (; sent < due; sent++) {
        const intended = start + (sent * 1000) / rate
        pending.push(
          request(port).then((status) => {
            samples.push({ at: intended - start, status, latency: performance.now() - intended })
          })
        )
      }
      if (sent >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(pending)
  return samples
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

interface PhaseResult {
  readonly protection: string
  readonly multiple: number
  readonly capacity: number
  readonly offered: number
  readonly goodput: number
  readonly goodputShare: number
  readonly p50: number
  readonly p99: number
  readonly shedShare: number
  readonly failures: number
  readonly stats: unknown
}

const summarize = (
  protection: string,
  multiple: number,
  capacity: number,
  offered: number,
  samples: ReadonlyArray<Sample>,
  stats: unknown
): PhaseResult => {
  const counted = samples.filter((s) => s.at >= warmupS * 1000)
  const seconds = phaseS - warmupS
  const ok = counted.filter((s) => s.status === 200)
  const good = ok.filter((s) => s.latency <= sloMs).length / seconds
  const latencies = ok.map((s) => s.latency).sort((a, b) => a - b)
  return {
    protection,
    multiple,
    capacity,
    offered,
    goodput: good,
    goodputShare: good / capacity,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    shedShare: counted.filter((s) => s.status === 503).length / Math.max(1, counted.length),
    failures: counted.filter((s) => s.status !== 200 && s.status !== 503).length,
    stats
  }
}

const results: Array<PhaseResult> = []
for (const protection of protections) {
  // capacity right before each run: the machine is shared, so it drifts
  const reference = await startServer("none")
  const capacity = await capacityOf(reference.port, capacityConnections, 3)
  await reference.stop()
  for (const multiple of multiples) {
    // a fresh server per phase: no queued requests and no learned state carried over
    const server = await startServer(protection)
    await capacityOf(server.port, 4, 1) // JIT warm-up
    const offered = Math.round(capacity * multiple)
    const samples = await openLoop(server.port, offered, phaseS)
    const stats = JSON.parse(await server.get("/stats"))
    await server.stop()
    const result = summarize(protection, multiple, capacity, offered, samples, stats)
    results.push(result)
    console.log(
      `${protection} ${multiple}×: offered ${offered}/s, goodput ${result.goodput.toFixed(0)}/s (${
        (result.goodputShare * 100).toFixed(0)
      } %), p99 ${result.p99.toFixed(0)} ms, shed ${(result.shedShare * 100).toFixed(0)} %`
    )
  }
}
agent.destroy()

const labels: Record<string, string> = { none: "no protection", shedder: "LoadShedder", limiter: "AdaptiveLimiter" }
console.log(
  `\n## load-shedding experiment  (handler ${costMs} ms CPU in ${slices} slices, SLO ${sloMs} ms, a fresh server per phase of ${phaseS} s, first ${warmupS} s not counted)\n`
)
printTable(
  [
    "protection",
    "load",
    "capacity/s",
    "offered/s",
    "goodput/s",
    "goodput % cap",
    "p50 ms",
    "p99 ms",
    "503 %",
    "errors"
  ],
  results.map((r) => [
    labels[r.protection],
    `${r.multiple}×`,
    r.capacity.toFixed(0),
    String(r.offered),
    r.goodput.toFixed(0),
    `${(r.goodputShare * 100).toFixed(0)} %`,
    Number.isNaN(r.p50) ? "-" : r.p50.toFixed(0),
    Number.isNaN(r.p99) ? "-" : r.p99.toFixed(0),
    `${(r.shedShare * 100).toFixed(0)} %`,
    String(r.failures)
  ])
)
console.log(
  "\ncapacity: 2xx/s of an unprotected server, closed loop with 64 connections, measured right before each run." +
    "\ngoodput: 2xx answered within the SLO, per second; p50/p99 over 2xx answers; errors: timeouts (2 s) and resets."
)
writeResults("load-shedding experiment", { costMs, slices, phaseS, warmupS, sloMs, results })
