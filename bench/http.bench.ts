/**
 * Requests per second, tail latency and server CPU per request of one small JSON route served by
 * `@effect/platform-node`: bare, behind the full `ResilientHttpServer` chain (max conns → breaker
 * per route → load shedding → rate limit → deadline), behind each stage alone, and behind the
 * cockatiel policies a user would reach for instead (bulkhead → circuit breaker → timeout;
 * cockatiel has no rate limiter or load shedder).
 *
 * The servers run in this process; the load comes from autocannon in a child process, so this
 * process's CPU time during a run is the server's. Rounds are interleaved across cases; the
 * median round is reported with the range over rounds. `BENCH_HTTP_SECONDS` (default 4, 2 with `--quick`),
 * `BENCH_HTTP_CONNECTIONS` (default 32), `BENCH_HTTP_ROUNDS` (default 3, 1 with `--quick`) and
 * `BENCH_HTTP_CASES` (comma-separated parts of case names; the bare server always runs) tune
 * the run. Goals: all stages ≥ 0.85× the bare req/s, p99 ≤ bare + 1 ms, CPU ≤ bare + 25 µs per request.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { bulkhead, circuitBreaker, ConsecutiveBreaker, handleAll, timeout, TimeoutStrategy, wrap } from "cockatiel"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import { createServer } from "node:http"
import { createRequire } from "node:module"
import * as RateLimiter from "../src/RateLimiter.js"
import * as ResilientHttpServer from "../src/ResilientHttpServer.js"
import { printTable, quick, writeResults } from "./harness.js"

const seconds = Number(process.env.BENCH_HTTP_SECONDS ?? (quick ? 2 : 4))
const connections = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 32)
const rounds = Number(process.env.BENCH_HTTP_ROUNDS ?? (quick ? 1 : 3))
/** comma-separated substrings of the case names to run (the bare server always runs) */
const only = (process.env.BENCH_HTTP_CASES ?? "").split(",").filter((s) => s.length > 0)

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/users/:id",
    Effect.map(HttpRouter.params, (p) => HttpServerResponse.unsafeJson({ id: p.id, name: "Ada" }))
  )
)

/** The same route behind cockatiel's policies, called from an Effect middleware. */
const cockatielMiddleware = HttpMiddleware.make((app) => {
  const policy = wrap(
    bulkhead(10_000, 0),
    circuitBreaker(handleAll.orWhenResult((r) => (r as HttpServerResponse.HttpServerResponse).status >= 500), {
      halfOpenAfter: 10_000,
      breaker: new ConsecutiveBreaker(5)
    }),
    timeout(3_000, TimeoutStrategy.Aggressive)
  )
  return Effect.flatMap(Effect.runtime<any>(), (runtime) => {
    const run = Runtime.runPromise(runtime)
    return Effect.tryPromise({
      try: () => policy.execute(({ signal }) => run(app, { signal })),
      catch: (e) => e
    }).pipe(
      Effect.catchAll((e) => Effect.succeed(HttpServerResponse.unsafeJson({ error: String(e) }, { status: 503 })))
    )
  })
})

interface Served {
  readonly name: string
  readonly url: string
}

const serveOn = (name: string, app: HttpApp.Default<any, any>, middleware?: HttpMiddleware.HttpMiddleware) =>
  Effect.gen(function*() {
    const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
    yield* middleware === undefined ? server.serve(app) : server.serve(app, middleware)
    if (server.address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    return { name, url: `http://127.0.0.1:${server.address.port}/users/42` } satisfies Served
  })

const off = { maxConns: false, breaker: false, shedding: false, timeout: false, budgetHeader: false } as const

const stage = (name: string, options: ResilientHttpServer.Options, label = `${name} stage alone`) =>
  Effect.flatMap(
    ResilientHttpServer.make({ name: `bench-${name}`, router, ...options }),
    (resilient) => serveOn(label, router, resilient.middleware)
  )

const setup = Effect.gen(function*() {
  const resilient = yield* ResilientHttpServer.make({
    name: "bench",
    router,
    rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1e9, burst: 1e9 }) }
  })
  return [
    yield* serveOn("bare @effect/platform-node", router),
    yield* serveOn("ResilientHttpServer (all stages)", router, resilient.middleware),
    yield* stage("none", off, "middleware, every stage off"),
    yield* stage("max connections", { ...off, maxConns: 10_000 }),
    yield* stage("breaker", { ...off, breaker: {} }),
    yield* stage("shedding", { ...off, shedding: {} }),
    yield* stage("rate limit", {
      ...off,
      rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1e9, burst: 1e9 }) }
    }),
    yield* stage("deadline", { ...off, timeout: "3 seconds", budgetHeader: "x-request-timeout" }),
    yield* serveOn("cockatiel bulkhead+breaker+timeout", router, cockatielMiddleware)
  ]
})

interface Sample {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly non2xx: number
  readonly errors: number
  /** this process's CPU time per request, µs */
  readonly cpuUs: number
}

const autocannonBin = createRequire(import.meta.url).resolve("autocannon/autocannon.js")

/** Runs autocannon in a child process against `url` and parses its JSON report. */
const load = (url: string, duration: number): Promise<Sample> =>
  new Promise((resolve, reject) => {
    const cpuBefore = process.cpuUsage()
    const child = spawn(
      process.execPath,
      [autocannonBin, "-c", String(connections), "-d", String(duration), "-j", url],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let out = ""
    child.stdout.on("data", (chunk) => (out += chunk))
    child.on("error", reject)
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`))
      try {
        const report = JSON.parse(out)
        const cpu = process.cpuUsage(cpuBefore)
        resolve({
          cpuUs: (cpu.user + cpu.system) / Math.max(1, report.requests.total),
          rps: report.requests.average,
          p50: report.latency.p50,
          p99: report.latency.p99,
          non2xx: report.non2xx ?? 0,
          errors: (report.errors ?? 0) + (report.timeouts ?? 0)
        })
      } catch (e) {
        reject(e)
      }
    })
  })

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

const scope = Effect.runSync(Scope.make())
try {
  const servers = (await Effect.runPromise(
    Scope.extend(setup as Effect.Effect<ReadonlyArray<Served>, unknown, Scope.Scope>, scope)
  )).filter((s, i) => i === 0 || only.length === 0 || only.some((o) => s.name.includes(o)))
  for (const s of servers) await load(s.url, 1) // warm-up: JIT, connection pools
  const samples = servers.map(() => [] as Array<Sample>)
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < servers.length; i++) samples[i].push(await load(servers[i].url, seconds))
  }
  const summary = servers.map((s, i) => {
    const byRps = [...samples[i]].sort((a, b) => a.rps - b.rps)
    const mid = byRps[byRps.length >> 1]
    return {
      name: s.name,
      rps: median(samples[i].map((x) => x.rps)),
      p50: mid.p50,
      p99: median(samples[i].map((x) => x.p99)),
      cpuUs: median(samples[i].map((x) => x.cpuUs)),
      cpuMin: Math.min(...samples[i].map((x) => x.cpuUs)),
      cpuMax: Math.max(...samples[i].map((x) => x.cpuUs)),
      rpsMin: Math.min(...samples[i].map((x) => x.rps)),
      rpsMax: Math.max(...samples[i].map((x) => x.rps)),
      non2xx: samples[i].reduce((n, x) => n + x.non2xx, 0),
      errors: samples[i].reduce((n, x) => n + x.errors, 0)
    }
  })
  const bare = summary[0].rps
  const bareP99 = summary[0].p99
  const bareCpu = summary[0].cpuUs
  console.log(
    `\n## http  (autocannon -c ${connections} -d ${seconds}, median and range of ${rounds} interleaved rounds, ratio vs "${
      summary[0].name
    }")\n`
  )
  printTable(
    [
      "case",
      "req/s",
      "req/s range",
      "ratio",
      "p50 ms",
      "p99 ms",
      "p99 − bare",
      "CPU µs/req",
      "CPU range",
      "CPU − bare",
      "non-2xx",
      "errors"
    ],
    summary.map((r) => [
      r.name,
      r.rps.toFixed(0),
      `${r.rpsMin.toFixed(0)}–${r.rpsMax.toFixed(0)}`,
      `${(r.rps / bare).toFixed(2)}x`,
      r.p50.toFixed(1),
      r.p99.toFixed(1),
      (r.p99 - bareP99).toFixed(1),
      r.cpuUs.toFixed(0),
      `${r.cpuMin.toFixed(0)}–${r.cpuMax.toFixed(0)}`,
      (r.cpuUs - bareCpu).toFixed(0),
      String(r.non2xx),
      String(r.errors)
    ])
  )
  console.log(
    "\nOne GET /users/:id returning a small JSON body. The all-stages case runs max conns, the adaptive breaker " +
      "of the route, the default load shedder (event-loop utilization), an in-memory token bucket keyed by client " +
      "IP (limit high enough never to reject) and a 3 s deadline with the budget header. Goals for all stages: " +
      ">= 0.85x bare req/s, p99 <= bare + 1 ms, CPU <= bare + 25 us per request."
  )
  writeResults("http", summary.map((r) => ({ ...r, ratio: r.rps / bare, connections, seconds, rounds })))
} finally {
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
