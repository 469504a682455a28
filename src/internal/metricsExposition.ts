/**
 * The metric producer behind `Metrics`: Effect's registry (read by `@effect/opentelemetry`'s
 * producer) and the toolkit's instance registry, merged into one valid Prometheus exposition.
 *
 * - A family name appears once: the instance registry's families come first, and Effect samples
 *   of a family with the same name join it.
 * - Each label set appears once per family; a second sample is dropped and its family reported by
 *   `takeWarnings` (two metrics declared with one name and the same labels, e.g. two descriptions).
 * - An Effect counter whose name ends in `_total` is a Prometheus counter. Effect exports a counter
 *   declared without `incremental: true` as an up-down counter (a gauge), and Prometheus requires
 *   `_total` names to be counters.
 */
import type { CollectionResult, MetricData, MetricProducer, ScopeMetrics } from "@opentelemetry/sdk-metrics"
import { AggregationTemporality, DataPointType } from "@opentelemetry/sdk-metrics"
import type * as InstanceMetrics from "./instanceMetrics.js"

export interface Producer extends MetricProducer {
  /** the names of the families that had a duplicate label set since the last call */
  readonly takeWarnings: () => ReadonlyArray<string>
}

type HrTime = [number, number]

/** OpenTelemetry's `ValueType.DOUBLE` (the enum lives in `@opentelemetry/api`, which this module does not load) */
const DOUBLE = 1 as MetricData["descriptor"]["valueType"]

const hrNow = (): HrTime => {
  // the exporter stamps samples only when asked to; the instant is informational
  const millis = Date.now()
  return [Math.floor(millis / 1000), (millis % 1000) * 1e6]
}

const labelKey = (attributes: Readonly<Record<string, unknown>>): string =>
  JSON.stringify(Object.keys(attributes).sort().map((k) => [k, attributes[k]]))

const instanceFamilies = (collected: ReadonlyArray<InstanceMetrics.Collected>, now: HrTime): Array<MetricData> =>
  collected.map(({ family, samples }): MetricData => {
    const descriptor = { name: family.name, description: family.help, unit: "", valueType: DOUBLE }
    const dataPoints = samples.map((s) => ({ startTime: now, endTime: now, attributes: s.labels, value: s.value }))
    return family.type === "counter"
      ? {
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.SUM,
        isMonotonic: true,
        dataPoints
      }
      : {
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints
      }
  })

/** Counters by name: an Effect up-down counter named `*_total` becomes monotonic. */
const fixType = (metric: MetricData): MetricData =>
  metric.dataPointType === DataPointType.SUM && !metric.isMonotonic && metric.descriptor.name.endsWith("_total")
    ? { ...metric, isMonotonic: true }
    : metric

export const makeProducer = (
  effectMetrics: MetricProducer,
  instances: InstanceMetrics.Registry
): Producer => {
  let warned = new Set<string>()
  return {
    takeWarnings: () => {
      const names = [...warned]
      warned = new Set()
      return names
    },
    collect: async (options): Promise<CollectionResult> => {
      const fromEffect = await effectMetrics.collect(options)
      const now = hrNow()
      const byName = new Map<string, { metric: MetricData; seen: Set<string> }>()
      const order: Array<MetricData> = []
      const add = (metric: MetricData) => {
        const existing = byName.get(metric.descriptor.name)
        const target = existing === undefined || existing.metric.dataPointType !== metric.dataPointType
          ? undefined
          : existing
        if (existing !== undefined && target === undefined) {
          warned.add(metric.descriptor.name)
          return
        }
        const entry = target ?? { metric: { ...metric, dataPoints: [] } as MetricData, seen: new Set<string>() }
        if (target === undefined) {
          byName.set(metric.descriptor.name, entry)
          order.push(entry.metric)
        }
        for (const point of metric.dataPoints as ReadonlyArray<{ readonly attributes: Record<string, unknown> }>) {
          const key = labelKey(point.attributes)
          if (entry.seen.has(key)) {
            warned.add(metric.descriptor.name)
            continue
          }
          entry.seen.add(key)
          ;(entry.metric.dataPoints as Array<unknown>).push(point)
        }
      }
      for (const metric of instanceFamilies(instances.collect(), now)) add(metric)
      for (const scope of fromEffect.resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) add(fixType(metric))
      }
      const scopeMetrics: Array<ScopeMetrics> = [{ scope: { name: "effect-resilience" }, metrics: order }]
      return {
        resourceMetrics: { resource: fromEffect.resourceMetrics.resource, scopeMetrics },
        errors: fromEffect.errors
      }
    }
  }
}
