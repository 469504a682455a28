/**
 * Metrics of the load shedder, the adaptive limiter and the overload signals. The `name` tag is
 * baked into each metric key, so a hot-path update finds its hook without building a tag array.
 */
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"

export const cpuUsageRatio = Metric.gauge("resilience_cpu_usage_ratio", {
  description: "share of the CPU the process may use that is busy, 0 to 1 (moving average)"
})

export const eventLoopUtilization = Metric.gauge("resilience_event_loop_utilization_ratio", {
  description: "share of wall time the event loop spent running callbacks, 0 to 1"
})

export const eventLoopDelaySeconds = Metric.gauge("resilience_event_loop_delay_seconds", {
  description: "mean delay of the event loop over the last window"
})

export const queueDelaySeconds = Metric.gauge("resilience_queue_delay_seconds", {
  description: "standing queue delay: the lowest wait of the requests started in the last interval"
})

export const shedRequests = (name: string) =>
  Metric.fromMetricKey(
    MetricKey.counter("resilience_shed_requests_total", {
      description: "requests rejected because of overload",
      incremental: true
    }).pipe(
      MetricKey.tagged("name", name)
    )
  )

/** The shed counter of one priority tier of a load shedder. */
export const shedRequestsOf = (name: string, priority: string) =>
  Metric.fromMetricKey(
    MetricKey.counter("resilience_shed_requests_total", {
      description: "requests rejected because of overload",
      incremental: true
    }).pipe(
      MetricKey.tagged("name", name),
      MetricKey.tagged("priority", priority)
    )
  )

export const requestsInFlight = (name: string) =>
  Metric.fromMetricKey(
    MetricKey.gauge("resilience_shedder_requests_in_flight", {
      description: "requests a shedder or adaptive limiter admitted, not yet finished"
    }).pipe(
      MetricKey.tagged("name", name)
    )
  )
