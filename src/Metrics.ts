/**
 * Prometheus exposure of every `effect/Metric` metric the process records (the toolkit's
 * `resilience_*` metrics and the application's own), through the maintained OpenTelemetry
 * exporter rather than a hand-written formatter.
 *
 * `layer` registers an `@effect/opentelemetry` metric producer (which reads Effect's metric
 * registry) with an `@opentelemetry/exporter-prometheus` `PrometheusExporter` that never opens its
 * own port; `scrape` collects and serializes with the exporter's `PrometheusSerializer`, and
 * `route` / `httpApp` serve it as `text/plain; version=0.0.4` on your own server.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer } from "@effect/platform"
 * import { Metrics } from "effect-resilience"
 *
 * const router = HttpRouter.empty.pipe(
 *   HttpRouter.get("/hello", HttpServerResponse.text("hi")),
 *   HttpRouter.get("/metrics", Metrics.httpApp)
 * )
 * const main = HttpServer.serve(router).pipe(Layer.provide(Metrics.layer({ serviceName: "user-api" })))
 * ```
 *
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * The content type of the Prometheus text exposition format.
 *
 * @since 0.1.0
 * @category constants
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * A running Prometheus exposure: `scrape` renders every metric of the process in the Prometheus
 * text format.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prometheus {
  readonly scrape: Effect.Effect<string>
}

/**
 * The service `layer` provides.
 *
 * @since 0.1.0
 * @category tags
 */
export class PrometheusRegistry extends Context.Tag("effect-resilience/PrometheusRegistry")<
  PrometheusRegistry,
  Prometheus
>() {}

/**
 * Options of `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** reported as the `service_name` resource attribute (default `"effect-resilience"`) */
  readonly serviceName?: string
  readonly serviceVersion?: string
  /** prepended to every metric name (default none; the toolkit's metrics already start with `resilience_`) */
  readonly prefix?: string
  /** emit the `target_info` series describing the resource (default false) */
  readonly withTargetInfo?: boolean
}

/**
 * Builds a Prometheus exposure in the current scope; closing the scope shuts the exporter down.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    const producer = yield* OtelMetrics.makeProducer.pipe(
      Effect.provide(OtelResource.layer({
        serviceName: options.serviceName ?? "effect-resilience",
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
      }))
    )
    // The exporter is built against its own copy of `@opentelemetry/sdk-metrics`; the reader API the
    // producer uses (`setMetricProducer`, `collect`, `shutdown`) is the same in both.
    yield* OtelMetrics.registerProducer(producer, () => exporter as unknown as MetricReader)
    const serializer = new PrometheusSerializer(
      options.prefix ?? "",
      false,
      undefined,
      !(options.withTargetInfo ?? false),
      true
    )
    const scrape: Effect.Effect<string> = Effect.promise(() => exporter.collect()).pipe(
      Effect.tap(({ errors }) =>
        errors.length === 0 ? Effect.void : Effect.logWarning("metric collection reported errors", errors)
      ),
      Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
    )
    return PrometheusRegistry.of({ scrape })
  })

/**
 * Provides `PrometheusRegistry`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<PrometheusRegistry> =>
  Layer.scoped(PrometheusRegistry, make(options))

/**
 * Renders the current metrics in the Prometheus text format.
 *
 * @since 0.1.0
 * @category accessors
 */
export const scrape: Effect.Effect<string, never, PrometheusRegistry> = Effect.flatMap(
  PrometheusRegistry,
  (registry) => registry.scrape
)

/**
 * An `HttpApp` answering with the current metrics; mount it at `/metrics`.
 *
 * @since 0.1.0
 * @category http
 */
export const httpApp: Effect.Effect<HttpServerResponse.HttpServerResponse, never, PrometheusRegistry> = Effect.map(
  scrape,
  (body) => HttpServerResponse.text(body, { contentType })
)
