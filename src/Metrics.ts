/**
 * Prometheus exposure of the process's metrics — Effect's `Metric` registry (the application's
 * own metrics and the toolkit's process-wide ones) and the toolkit's per-instance registry
 * (breakers and bulkheads, whose series go away with the instance) — through the maintained
 * OpenTelemetry exporter rather than a hand-written formatter.
 *
 * `layer` registers a metric producer with an `@opentelemetry/exporter-prometheus`
 * `PrometheusExporter` that never opens its own port; `scrape` collects and serializes with the
 * exporter's `PrometheusSerializer`, and `httpApp` serves it as `text/plain; version=0.0.4` on
 * your own server. The exposition is valid for `promtool check metrics`: a counter whose name ends
 * in `_total` is exported as a counter, and each label set appears once per family (a second
 * sample for the same labels is dropped with a warning naming the metric).
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { Layer } from "effect"
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
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError } from "./Errors.js"
import * as InstanceMetrics from "./internal/instanceMetrics.js"
import { decodeOptions, PositiveInt } from "./internal/options.js"

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

const otelPeers = "@effect/opentelemetry @opentelemetry/api @opentelemetry/resources " +
  "@opentelemetry/sdk-metrics @opentelemetry/semantic-conventions @opentelemetry/exporter-prometheus"

// The OpenTelemetry pieces are optional peers, loaded when the first exposure is built: importing
// the toolkit never loads them.
const loadExporter = Effect.tryPromise({
  try: () => import("./internal/prometheusExporter.js"),
  catch: (cause) =>
    new Error(`Metrics needs the optional peer dependencies of the Prometheus exporter (npm install ${otelPeers})`, {
      cause
    })
})

/**
 * Builds a Prometheus exposure in the current scope; closing the scope shuts the exporter down.
 * It exports the instance registry current when it is built (see `withInstanceRegistry`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Prometheus, never, Scope.Scope> =>
  Effect.gen(function*() {
    const instances = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    const exporter = yield* Effect.orDie(loadExporter)
    const scrape = yield* exporter.makeScrape(options, instances)
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

// ---------------------------------------------------------------------------------------------
// The instance registry
// ---------------------------------------------------------------------------------------------

/**
 * The `name` label value of the series shared by the names beyond the instance registry's
 * `maxSeries` (per kind: breakers, bulkheads).
 *
 * @since 0.2.0
 * @category constants
 */
export const overflowName: string = InstanceMetrics.OVERFLOW

/**
 * One sample of the toolkit's per-instance metrics, as `snapshot` returns it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Sample {
  readonly metric: string
  readonly type: "counter" | "gauge"
  /** `name` and the metric's other labels */
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * Every sample of the current instance registry: the series of the breakers and bulkheads alive
 * now (a series goes away with the last instance of its name), and the overflow series.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Metrics } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "payments" }))
 *   yield* breaker.protect(Effect.succeed("ok"))
 *   const samples = yield* Metrics.snapshot
 *   return samples.find((s) => s.metric === "resilience_breaker_requests_total" && s.labels.outcome === "success")
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const snapshot: Effect.Effect<ReadonlyArray<Sample>> = Effect.map(
  FiberRef.get(InstanceMetrics.currentRegistry),
  (registry) =>
    registry.collect().flatMap(({ family, samples }) =>
      samples.map((s): Sample => ({ metric: family.name, type: family.type, labels: s.labels, value: s.value }))
    )
)

/**
 * Options of an instance registry.
 *
 * @since 0.2.0
 * @category models
 */
export interface InstanceRegistryOptions {
  /** series per kind (breakers, bulkheads) before further names share the overflow series (default 1000) */
  readonly maxSeries?: number
}

const decodeInstanceOptions = decodeOptions(
  "Metrics.instanceRegistry",
  Schema.Struct({ maxSeries: Schema.optionalWith(PositiveInt, { default: () => InstanceMetrics.DEFAULT_MAX_SERIES }) }),
  { exact: true }
)

/**
 * Runs `effect` with a fresh instance registry: breakers and bulkheads built inside register
 * their series there, and a `Metrics.make` inside exports it. Tests use it to start from zero.
 *
 * @since 0.2.0
 * @category instance registry
 */
export const withInstanceRegistry: {
  (options?: InstanceRegistryOptions): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | InvalidOptionsError, R>
} = (options = {}) => (effect) =>
  Effect.flatMap(
    decodeInstanceOptions(options),
    (o) => Effect.locally(effect, InstanceMetrics.currentRegistry, new InstanceMetrics.Registry(o.maxSeries))
  )

/**
 * A layer that gives the rest of the application (everything built after it) a fresh instance
 * registry with its own bound on series per kind.
 *
 * @since 0.2.0
 * @category instance registry
 */
export const layerInstanceRegistry = (options: InstanceRegistryOptions = {}): Layer.Layer<never, InvalidOptionsError> =>
  Layer.unwrapEffect(Effect.map(
    decodeInstanceOptions(options),
    (o) => Layer.locallyScoped(InstanceMetrics.currentRegistry, new InstanceMetrics.Registry(o.maxSeries))
  ))
