/**
 * The OpenTelemetry side of `Metrics`: Effect's registry read by `@effect/opentelemetry`'s producer,
 * merged with the instance registry, serialized by `@opentelemetry/exporter-prometheus`. These are
 * optional peers, so `Metrics` loads this module only when an exposure is built.
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as InstanceMetrics from "./instanceMetrics.js"
import * as exposition from "./metricsExposition.js"

export interface ExporterOptions {
  readonly serviceName?: string
  readonly serviceVersion?: string
  readonly prefix?: string
  readonly withTargetInfo?: boolean
}

/** Builds the exporter in the current scope and returns the effect that scrapes it. */
export const makeScrape = (
  options: ExporterOptions,
  instances: InstanceMetrics.Registry
): Effect.Effect<Effect.Effect<string>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    const effectMetrics = yield* OtelMetrics.makeProducer.pipe(
      Effect.provide(OtelResource.layer({
        serviceName: options.serviceName ?? "effect-resilience",
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
      }))
    )
    const producer = exposition.makeProducer(effectMetrics, instances)
    // The exporter is built against its own copy of `@opentelemetry/sdk-metrics`; the reader API the
    // producer uses (`setMetricProducer`, `collect`, `shutdown`) is the same in both.
    yield* OtelMetrics.registerProducer(producer as any, () => exporter as unknown as MetricReader)
    const serializer = new PrometheusSerializer(
      options.prefix ?? "",
      false,
      undefined,
      !(options.withTargetInfo ?? false),
      true
    )
    return Effect.promise(() => exporter.collect()).pipe(
      Effect.tap(({ errors }) =>
        errors.length === 0 ? Effect.void : Effect.logWarning("metric collection reported errors", errors)
      ),
      Effect.tap(() => {
        const dropped = producer.takeWarnings()
        return dropped.length === 0 ? Effect.void : Effect.logWarning(
          "metrics: a second sample for the same labels was dropped (two metrics share a name and labels)"
        ).pipe(Effect.annotateLogs({ module: "Metrics", metrics: dropped }))
      }),
      Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
    )
  })
