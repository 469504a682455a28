import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
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
