/**
 * Event-loop utilization: the share of wall time the main thread's event loop spent running
 * callbacks rather than waiting for I/O (`performance.eventLoopUtilization()`), from 0 to 1.
 *
 * It is this process's own saturation: 1 when the loop never waits, whatever the rest of the host
 * does. A neighbour that hogs the CPU slows the loop's work down, but a loop with spare time still
 * waits for I/O between requests, so the reading stays under 1 while the server keeps up.
 *
 * `layer` reads the cumulative counters every 10 ms and reports the utilization over the last
 * 50 ms, so a process that turns busy reads busy within a few ticks, with no warm-up.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Performance } from "node:perf_hooks"
import { InvalidOptionsError } from "./Errors.js"
import { decodeOptions, PositiveDuration } from "./internal/options.js"
import * as Metrics from "./internal/sheddingMetrics.js"
import * as Signals from "./internal/signals.js"

/** Node's global `performance`, typed as Node's: with the DOM lib loaded it has no `eventLoopUtilization` */
const eventLoopUtilization = () => (performance as unknown as Performance).eventLoopUtilization()

/**
 * The service: `current` and `unsafeCurrent` give the latest utilization in [0, 1].
 *
 * @since 0.2.0
 * @category models
 */
export interface Service {
  readonly current: Effect.Effect<number>
  readonly unsafeCurrent: () => number
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLoopUtilization } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const elu = yield* EventLoopUtilization.EventLoopUtilization
 *   return yield* elu.current // 0–1
 * }).pipe(Effect.scoped, Effect.provide(EventLoopUtilization.layer))
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class EventLoopUtilization
  extends Context.Tag("effect-resilience/EventLoopUtilization")<EventLoopUtilization, Service>()
{}

/**
 * Options of `layerWith`: how often the counters are read (`interval`, default 10 ms) and the
 * span the utilization is computed over (`window`, default 50 ms, at least one interval).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly interval?: Duration.DurationInput
  readonly window?: Duration.DurationInput
}

/**
 * Defaults of `layerWith`.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaults = { interval: Duration.millis(10), window: Duration.millis(50) } as const

const decode = decodeOptions(
  "EventLoopUtilization",
  () => Schema.Struct({ interval: Schema.optional(PositiveDuration), window: Schema.optional(PositiveDuration) })
)

/**
 * The live sampler with options. Its fiber stops with the layer's scope.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWith = (options: Options = {}): Layer.Layer<EventLoopUtilization, InvalidOptionsError> =>
  Layer.scoped(
    EventLoopUtilization,
    Effect.gen(function*() {
      const decoded = yield* decode(options)
      const interval = decoded.interval ?? defaults.interval
      const window = decoded.window ?? defaults.window
      if (Duration.lessThan(window, interval)) {
        return yield* new InvalidOptionsError({
          module: "EventLoopUtilization",
          option: "window",
          value: options.window,
          reason: `shorter than the interval ${Duration.format(interval)}`
        })
      }
      const size = Math.round(Duration.toMillis(window) / Duration.toMillis(interval)) + 1
      const ring = Signals.makeEluRing(size, eventLoopUtilization())
      const cell = { value: 0 }
      const sample = Effect.sync(() => {
        Signals.pushElu(ring, eventLoopUtilization())
        cell.value = Signals.eluOf(ring)
        Metrics.eventLoopUtilization.unsafeUpdate(cell.value, [])
      })
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(interval), sample)))
      const unsafeCurrent = () => cell.value
      return EventLoopUtilization.of({ current: Effect.sync(unsafeCurrent), unsafeCurrent })
    })
  )

/**
 * The live sampler with default options.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<EventLoopUtilization> = layerWith().pipe(Layer.orDie)

/**
 * The handle a test uses to set the value `layerTest` reports.
 *
 * @since 0.2.0
 * @category tags
 */
export class EventLoopUtilizationTest
  extends Context.Tag("effect-resilience/EventLoopUtilizationTest")<EventLoopUtilizationTest, {
    readonly set: (ratio: number) => Effect.Effect<void>
  }>()
{}

const clamp = (n: number) => (Number.isNaN(n) ? 0 : Math.min(1, Math.max(0, n)))

/**
 * An `EventLoopUtilization` whose value a test sets with `set`; values are clamped to [0, 1].
 *
 * @since 0.2.0
 * @category layers
 */
export const layerTest = (initial = 0): Layer.Layer<EventLoopUtilization | EventLoopUtilizationTest> =>
  Layer.effectContext(Effect.sync(() => {
    const cell = { value: clamp(initial) }
    const unsafeCurrent = () => cell.value
    return Context.make(EventLoopUtilization, { current: Effect.sync(unsafeCurrent), unsafeCurrent }).pipe(
      Context.add(EventLoopUtilizationTest, { set: (ratio) => Effect.sync(() => void (cell.value = clamp(ratio))) })
    )
  }))

/**
 * Sets the value of the `layerTest` service in context.
 *
 * @since 0.2.0
 * @category test
 */
export const set = (ratio: number): Effect.Effect<void, never, EventLoopUtilizationTest> =>
  Effect.flatMap(EventLoopUtilizationTest, (handle) => handle.set(ratio))
