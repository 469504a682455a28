/**
 * The server's own metrics: `resilience_requests_in_flight{name}` and
 * `resilience_http_request_duration_seconds{name,route}` (a histogram of the time from the
 * request's arrival to its settlement, abandoned requests included).
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type { Outcome, RequestRecord } from "./record.js"

// Built from tagged keys: a `Metric.tagged` metric merges its tags and looks its hook up in the
// registry on every update, a metric of a tagged key finds its hook once.
const inFlightKey = MetricKey.gauge("resilience_requests_in_flight", { description: "HTTP requests in flight" })

const boundaries = MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
const durationKey = MetricKey.histogram(
  "resilience_http_request_duration_seconds",
  boundaries,
  "time from a request's arrival until the server settled it, in seconds"
)

const noTags: ReadonlyArray<never> = []

/** Route keys are bounded by the router's patterns; this bounds the rest (names from `routeName`). */
const maxRoutes = 1000

/** The observer of the server `name`. */
export const make = (name: string) => {
  let inFlight = 0
  const gauge = Metric.fromMetricKey(MetricKey.tagged(inFlightKey, "name", name))
  const byName = MetricKey.tagged(durationKey, "name", name)
  const histograms = new Map<string, Metric.Metric.Histogram<number>>()
  const histogramOf = (route: string) => {
    let histogram = histograms.get(route)
    if (histogram === undefined) {
      if (histograms.size >= maxRoutes) return undefined
      histogram = Metric.fromMetricKey(MetricKey.tagged(byName, "route", route))
      histograms.set(route, histogram)
    }
    return histogram
  }
  return {
    inFlight: () => inFlight,
    started: () => {
      gauge.unsafeUpdate(++inFlight, noTags)
    },
    finished: (record: RequestRecord, _outcome: Outcome, now: number) => {
      gauge.unsafeUpdate(--inFlight, noTags)
      histogramOf(record.route)?.unsafeUpdate((now - record.arrivedAt) / 1000, noTags)
    }
  }
}
