import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Metrics from "../src/Metrics.js"

describe("Metrics", () => {
  it.scoped("renders effect metrics in the Prometheus text format", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make({ serviceName: "metrics-test" })
      const counter = Metric.counter("resilience_test_requests_total", {
        description: "requests seen",
        incremental: true
      }).pipe(
        Metric.tagged("name", "api")
      )
      yield* Metric.incrementBy(counter, 3)
      const gauge = Metric.gauge("resilience_test_in_flight")
      yield* Metric.set(gauge, 7)
      const text = yield* prometheus.scrape
      expect(text).toMatch(/# TYPE resilience_test_requests_total counter/)
      expect(text).toMatch(/resilience_test_requests_total\{name="api"\} 3/)
      expect(text).toMatch(/resilience_test_in_flight 7/)
    }))

  it.scoped("httpApp answers with the exposition content type", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make()
      const response = yield* Metrics.httpApp.pipe(Effect.provideService(Metrics.PrometheusRegistry, prometheus))
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toBe(Metrics.contentType)
    }))
})

describe("Metrics: one valid exposition", () => {
  it.scoped("an Effect counter named *_total is a counter even without incremental: true", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make()
      yield* Metric.incrementBy(Metric.counter("resilience_test_events_total").pipe(Metric.tagged("name", "x")), 2)
      yield* Metric.incrementBy(Metric.counter("resilience_test_level"), 4)
      const text = yield* prometheus.scrape
      expect(text).toMatch(/# TYPE resilience_test_events_total counter/)
      expect(text).toMatch(/resilience_test_events_total\{name="x"\} 2/)
      // an up-down counter without the suffix stays a gauge
      expect(text).toMatch(/# TYPE resilience_test_level gauge/)
    }))

  it.scoped("a label set appears once per family: a second metric with the same name and labels is dropped and logged", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make()
      yield* Metric.set(Metric.gauge("resilience_test_dup", { description: "one" }).pipe(Metric.tagged("name", "a")), 1)
      yield* Metric.set(Metric.gauge("resilience_test_dup", { description: "two" }).pipe(Metric.tagged("name", "a")), 2)
      yield* Metric.set(Metric.gauge("resilience_test_dup", { description: "two" }).pipe(Metric.tagged("name", "b")), 3)
      const logs: Array<string> = []
      const text = yield* prometheus.scrape.pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message)))))
      )
      expect(text.match(/^resilience_test_dup\{name="a"\}/gm)).toHaveLength(1)
      expect(text).toMatch(/resilience_test_dup\{name="b"\} 3/)
      expect(text.match(/# TYPE resilience_test_dup /g)).toHaveLength(1)
      expect(logs.some((l) => l.includes("same labels was dropped"))).toBe(true)
    }))

  it.scoped("exports the instance registry: per-breaker series, gone once the breaker is", () =>
    Effect.gen(function*() {
      const prometheus = yield* Metrics.make()
      const scope = yield* Scope.make()
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "exported" })).pipe(Scope.extend(scope))
      yield* breaker.protect(Effect.void)
      let text = yield* prometheus.scrape
      expect(text).toMatch(/# TYPE resilience_breaker_requests_total counter/)
      expect(text).toMatch(/resilience_breaker_requests_total\{name="exported",outcome="success"\} 1/)
      expect(text).toMatch(/resilience_breaker_state\{name="exported"\} 0/)
      yield* Scope.close(scope, Exit.void)
      text = yield* prometheus.scrape
      expect(text).not.toMatch(/name="exported"/)
    }).pipe(Metrics.withInstanceRegistry()))

  it.effect("instance registry options are checked", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Effect.void.pipe(Metrics.withInstanceRegistry({ maxSeries: 0 })))
      expect(bad.option).toBe("maxSeries")
      const unknown = yield* Effect.flip(Effect.void.pipe(Metrics.withInstanceRegistry({ max: 5 } as any)))
      expect(unknown.option).toBe("max")
    }))

  it.effect("layerInstanceRegistry gives what is built after it a registry of its own", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "layered-1" }))
      yield* breaker.protect(Effect.void)
      const other = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "layered-2" }))
      yield* other.protect(Effect.void)
      const names = new Set((yield* Metrics.snapshot).map((s) => s.labels.name))
      expect(names).toEqual(new Set(["layered-1", Metrics.overflowName]))
    }).pipe(Effect.scoped, Effect.provide(Metrics.layerInstanceRegistry({ maxSeries: 1 }))))
})
