/**
 * `/metrics` as Prometheus reads it: scraped over HTTP from a real server with every primitive in
 * use, and from the user-api example, then checked by `promtool check metrics` (Prometheus's own
 * parser and linter): counters are counters, histograms are histograms, and each label set
 * appears once per family.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { spawnSync } from "node:child_process"
import * as AdaptiveLimiter from "../../src/AdaptiveLimiter.js"
import * as Bulkhead from "../../src/Bulkhead.js"
import * as Chaos from "../../src/Chaos.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as CpuUsage from "../../src/CpuUsage.js"
import * as EventLoopDelay from "../../src/EventLoopDelay.js"
import * as EventLoopUtilization from "../../src/EventLoopUtilization.js"
import * as Fallback from "../../src/Fallback.js"
import * as Hedge from "../../src/Hedge.js"
import * as Metrics from "../../src/Metrics.js"
import * as QueueDelay from "../../src/QueueDelay.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RateLimiterStore from "../../src/RateLimiterStore.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import * as Retry from "../../src/Retry.js"
import * as Timeout from "../../src/Timeout.js"
import { get, serve } from "./serve.js"
import type { Running } from "./spawn.js"
import { get as getPort, start } from "./spawn.js"

const promtool = spawnSync("promtool", ["--version"], { encoding: "utf8" })
const havePromtool = promtool.status === 0

/** `promtool check metrics` on `exposition`: its exit code and what it reported. */
const check = (exposition: string) => {
  const run = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" })
  return { status: run.status, report: `${run.stdout}${run.stderr}`.trim() }
}

interface Family {
  readonly type: string
  readonly samples: Array<string>
}

/** Families by name with their type and sample lines (name{labels}), from the text format. */
const parse = (exposition: string): Map<string, Family> => {
  const families = new Map<string, Family>()
  let current: Family | undefined
  for (const line of exposition.split("\n")) {
    const type = line.match(/^# TYPE (\S+) (\S+)/)
    if (type !== null) {
      expect(families.has(type[1]), `family ${type[1]} declared twice`).toBe(false)
      current = { type: type[2], samples: [] }
      families.set(type[1], current)
    } else if (line !== "" && !line.startsWith("#")) {
      current?.samples.push(line.slice(0, line.lastIndexOf(" ")))
    }
  }
  return families
}

/** Every label set once per family; `_total` families are counters; `_duration_seconds` ones histograms. */
const expectWellFormed = (exposition: string) => {
  const result = check(exposition)
  expect(result.report, "promtool check metrics").toBe("")
  expect(result.status).toBe(0)
  const families = parse(exposition)
  for (const [name, family] of families) {
    expect(new Set(family.samples).size, `${name}: a label set appears twice`).toBe(family.samples.length)
    if (name.endsWith("_total")) expect(family.type, name).toBe("counter")
    // durations of requests and calls are histograms; a delay sampled now and then is a gauge
    if (name.endsWith("_duration_seconds")) expect(family.type, name).toBe("histogram")
  }
  return families
}

describe.skipIf(!havePromtool)("/metrics through promtool check metrics", () => {
  it("promtool rejects what the exporter must never produce", () => {
    expect(check("# TYPE requests_total gauge\nrequests_total 1\n").status).not.toBe(0)
    expect(check("# TYPE up gauge\nup 1\n# TYPE up gauge\nup 2\n").status).not.toBe(0)
  })

  it.live("a server using every primitive", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make({ serviceName: "every-primitive" })
      const limiter = yield* RateLimiter.make({
        name: "per-user",
        algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 2 })
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const breakers = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 2 })
      })
      const bulkheads = yield* Bulkhead.makeRegistry({ create: (name) => ({ name, maxConcurrent: 1 }) })
      const server = yield* ResilientHttpServer.make({
        name: "every-primitive",
        rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1000, burst: 1000 }) }
      })
      const failing = Effect.fail(new Error("down"))
      const work = (user: string) =>
        Effect.gen(function*() {
          yield* limiter.take(user)
          yield* Effect.either(breakers.protect("flaky")(failing))
          yield* Effect.either(bulkheads.protect("db", bulkheads.protect("db", Effect.void)))
          yield* Effect.either(
            Effect.sleep("50 millis").pipe(Timeout.within({ duration: "1 millis", operation: "slow" }))
          )
          yield* Effect.either(
            failing.pipe(Retry.retry({ schedule: Schedule.recurs(1), while: () => true, name: "again" }))
          )
          yield* failing.pipe(Fallback.orElseSucceed({ value: () => "cached", name: "cache" }))
          yield* Effect.sleep("30 millis").pipe(Hedge.hedge({ delay: "5 millis", name: "fast" }))
          return HttpServerResponse.text("ok")
        })
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/work/:user", Effect.flatMap(HttpRouter.params, (p) => work(p.user ?? "anonymous"))),
        HttpRouter.get("/boom", Effect.succeed(HttpServerResponse.text("no", { status: 503 }))),
        HttpRouter.get("/metrics", Metrics.httpApp.pipe(Effect.provideService(Metrics.PrometheusRegistry, prometheus)))
      )
      const url = yield* serve(router, server.middleware)
      // the server calls itself through the resilient client: per-host breaker and bulkhead,
      // retries and the request-duration histogram
      const client = yield* ResilientHttpClient.make({ name: "self", retry: { times: 1 } }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      for (let i = 0; i < 3; i++) yield* get(`${url}/work/u${i % 2}`)
      yield* Effect.either(client.get(`${url}/boom`))
      yield* client.get(`${url}/work/u9`).pipe(Effect.either)
      const scrape = yield* get(`${url}/metrics`)
      expect(scrape.status).toBe(200)
      const families = expectWellFormed(scrape.body)
      for (
        const name of [
          "resilience_breaker_requests_total",
          "resilience_breaker_state_changes_total",
          "resilience_breaker_state",
          "resilience_bulkhead_active",
          "resilience_bulkhead_rejected_total",
          "resilience_http_client_request_duration_seconds",
          "resilience_retries_total",
          "resilience_timeouts_total"
        ]
      ) expect(families.has(name), `${name} is exported`).toBe(true)
    }).pipe(Effect.scoped, Metrics.withInstanceRegistry()), 120_000)

  it.live("the overload signals, an adaptive limiter, chaos and a spent retry budget", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make({ serviceName: "signals" })
      // the live samplers publish their gauges while they run
      const samplers = Layer.mergeAll(
        CpuUsage.layer,
        EventLoopUtilization.layer,
        EventLoopDelay.layer,
        QueueDelay.layer
      )
      yield* Effect.gen(function*() {
        // requests that waited 20 ms, over several 100 ms intervals: a standing queue
        for (let i = 0; i < 15; i++) {
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          yield* QueueDelay.record(now - 20)
          yield* Effect.sleep("100 millis")
        }
      }).pipe(Effect.provide(samplers))
      // one permit: the second caller is shed while the first one runs
      const limiter = yield* AdaptiveLimiter.make({
        name: "api",
        algorithm: AdaptiveLimiter.aimd(),
        initialLimit: 1,
        minLimit: 1,
        maxLimit: 1
      })
      yield* Effect.all([
        limiter.protect(Effect.sleep("50 millis")),
        Effect.either(Effect.delay(limiter.protect(Effect.void), "10 millis"))
      ], { concurrency: 2 })
      const chaos = yield* Chaos.make({ name: "db", enabled: true, rate: 1 })
      yield* Effect.either(Effect.void.pipe(Chaos.fault(chaos, () => new Error("injected"))))
      // no retry allowed by the budget: the refusal is counted
      const budget = yield* Retry.makeBudget({ name: "tight", ratio: 0, minPerSecond: 0 })
      yield* Effect.either(
        Effect.fail(new Error("down")).pipe(Retry.retry({ schedule: Schedule.recurs(2), while: () => true, budget }))
      )
      const families = expectWellFormed(yield* prometheus.scrape)
      for (
        const name of [
          "resilience_cpu_usage_ratio",
          "resilience_event_loop_utilization_ratio",
          "resilience_event_loop_delay_seconds",
          "resilience_queue_delay_seconds",
          "resilience_shed_requests_total",
          "resilience_shedder_requests_in_flight",
          "resilience_chaos_injections_total",
          "resilience_retry_budget_exhausted_total"
        ]
      ) expect(families.has(name), `${name} is exported`).toBe(true)
      // CPU is a ratio, as Prometheus names it: between 0 and 1
      const cpu = families.get("resilience_cpu_usage_ratio")!
      expect(cpu.type).toBe("gauge")
    }).pipe(Effect.scoped, Metrics.withInstanceRegistry()), 120_000)

  describe("the user-api example", () => {
    let running: Running | undefined
    afterEach(async () => {
      await running?.stop(5_000)
      running = undefined
    })

    it("serves a /metrics promtool accepts", async () => {
      running = start("examples/user-api/main.ts", [], { PORT: "0" })
      const port = Number((await running.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)/, 60_000))[1])
      for (let i = 0; i < 5; i++) await getPort(port, "/api/users/1", { "x-user-id": "7" })
      await getPort(port, "/api/users/99", { "x-user-id": "7" })
      await getPort(port, "/health")
      const scrape = await getPort(port, "/metrics")
      expect(scrape.status).toBe(200)
      expectWellFormed(scrape.body)
      // one series per route, never one per URL: the server's histogram and the route breakers
      const routesOf = (family: string) =>
        new Set(
          scrape.body.split("\n")
            .filter((line) => line.startsWith(family))
            .map((line) => /(?:route|name)="([^"]*)"/.exec(line.replace(/name="user-api",?/, ""))?.[1])
        )
      expect(routesOf("resilience_http_request_duration_seconds_count")).toEqual(
        new Set(["GET /api/users/:id", "GET /health"])
      )
      const breakers = [...routesOf("resilience_breaker_state{")].filter((n) => n?.startsWith("GET "))
      expect(breakers.sort()).toEqual(["GET /api/users/:id", "GET /health", "GET /metrics"])
      // the server's and the shedder's in-flight gauges are separate series
      const inFlight = scrape.body.split("\n").filter((line) => line.startsWith("resilience_requests_in_flight{"))
      expect(inFlight.length).toBe(1)
    }, 120_000)
  })
})
