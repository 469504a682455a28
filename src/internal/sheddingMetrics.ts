/**
 * Metrics of the load shedder, the adaptive limiter and the CPU sampler. The `name` tag is baked
 * into each metric key, so a hot-path update finds its hook without building a tag array.
 */
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"

export const cpuUsageMillis = Metric.gauge("resilience_cpu_usage_millis", {
  description: "CPU usage in per-mille of the CPU the process may use (moving average)"
})

export const shedRequests = (name: string) =>
  Metric.fromMetricKey(
    MetricKey.counter("resilience_shed_requests_total", { description: "requests rejected because of overload" }).pipe(
      MetricKey.tagged("name", name)
    )
  )

export const requestsInFlight = (name: string) =>
  Metric.fromMetricKey(
    MetricKey.gauge("resilience_requests_in_flight", { description: "admitted requests not yet finished" }).pipe(
      MetricKey.tagged("name", name)
    )
  )
