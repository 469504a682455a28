/**
 * Event-loop delay: how late the main thread's event loop runs a timer that is due every
 * `resolution` (`perf_hooks.monitorEventLoopDelay`), in milliseconds. Every callback a request
 * needs waits about that long for the loop, so it is the queueing a Node server's requests feel.
 *
 * It also counts time the host's scheduler keeps the process off the CPU: on a host shared with
 * busy neighbours it reads tens of milliseconds even for an idle server, so a shedder that must
 * tell its own overload from a neighbour's prefers `EventLoopUtilization`.
 *
 * `layer` keeps a histogram at a 10 ms resolution and starts a new window every 100 ms; the value
 * is the larger of the last window's mean delay and the current window's so far, so a stall shows
 * as soon as the timer it held up fires.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "./Errors.js"
import { decodeOptions, PositiveDuration } from "./internal/options.js"
import * as Metrics from "./internal/sheddingMetrics.js"
import * as Signals from "./internal/signals.js"

/**
 * The service: `current` and `unsafeCurrent` give the latest delay in milliseconds.
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
 * import { EventLoopDelay } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const delay = yield* EventLoopDelay.EventLoopDelay
 *   return yield* delay.current // milliseconds
 * }).pipe(Effect.scoped, Effect.provide(EventLoopDelay.layer))
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class EventLoopDelay extends Context.Tag("effect-resilience/EventLoopDelay")<EventLoopDelay, Service>() {}

/**
 * Options of `layerWith`: the timer's `resolution` (default 10 ms, whole milliseconds) and the
 * `window` the mean is taken over (default 100 ms, at least the resolution).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly resolution?: Duration.DurationInput
  readonly window?: Duration.DurationInput
}

/**
 * Defaults of `layerWith`.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaults = { resolution: Duration.millis(10), window: Duration.millis(100) } as const

const decode = decodeOptions(
  "EventLoopDelay",
  () =>
    Schema.Struct({
      resolution: Schema.optional(
        PositiveDuration.pipe(Schema.filter((d) => Number.isSafeInteger(Duration.toMillis(d)) || "expected whole ms"))
      ),
      window: Schema.optional(PositiveDuration)
    })
)

/**
 * The live sampler with options. The histogram is disabled and the fiber stopped with the
 * layer's scope.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWith = (options: Options = {}): Layer.Layer<EventLoopDelay, InvalidOptionsError> =>
  Layer.scoped(
    EventLoopDelay,
    Effect.gen(function*() {
      const decoded = yield* decode(options)
      const resolution = Duration.toMillis(decoded.resolution ?? defaults.resolution)
      const window = decoded.window ?? defaults.window
      if (Duration.toMillis(window) < resolution) {
        return yield* new InvalidOptionsError({
          module: "EventLoopDelay",
          option: "window",
          value: options.window,
          reason: `shorter than the resolution ${resolution} ms`
        })
      }
      // `node:perf_hooks` loads with the first live layer, not on import
      const { monitorEventLoopDelay } = yield* Effect.promise(() => import("node:perf_hooks"))
      const histogram = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const h = monitorEventLoopDelay({ resolution })
          h.enable()
          return h
        }),
        (h) => Effect.sync(() => h.disable())
      )
      const cell = { last: 0 }
      const unsafeCurrent = () => {
        const now = Signals.meanDelayMillis(histogram, resolution)
        return now > cell.last ? now : cell.last
      }
      const sample = Effect.sync(() => {
        cell.last = Signals.meanDelayMillis(histogram, resolution)
        histogram.reset()
        Metrics.eventLoopDelaySeconds.unsafeUpdate(cell.last / 1000, [])
      })
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(window), sample)))
      return EventLoopDelay.of({ current: Effect.sync(unsafeCurrent), unsafeCurrent })
    })
  )

/**
 * The live sampler with default options.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<EventLoopDelay> = layerWith().pipe(Layer.orDie)

/**
 * The handle a test uses to set the value `layerTest` reports.
 *
 * @since 0.2.0
 * @category tags
 */
export class EventLoopDelayTest extends Context.Tag("effect-resilience/EventLoopDelayTest")<EventLoopDelayTest, {
  readonly set: (millis: number) => Effect.Effect<void>
}>() {}

const clamp = (n: number) => (Number.isNaN(n) || n < 0 ? 0 : n)

/**
 * An `EventLoopDelay` whose value (ms) a test sets with `set`; negative values read 0.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerTest = (initial = 0): Layer.Layer<EventLoopDelay | EventLoopDelayTest> =>
  Layer.effectContext(Effect.sync(() => {
    const cell = { value: clamp(initial) }
    const unsafeCurrent = () => cell.value
    return Context.make(EventLoopDelay, { current: Effect.sync(unsafeCurrent), unsafeCurrent }).pipe(
      Context.add(EventLoopDelayTest, { set: (millis) => Effect.sync(() => void (cell.value = clamp(millis))) })
    )
  }))

/**
 * Sets the value of the `layerTest` service in context.
 *
 * @since 0.2.0
 * @category test
 */
export const set = (millis: number): Effect.Effect<void, never, EventLoopDelayTest> =>
  Effect.flatMap(EventLoopDelayTest, (handle) => handle.set(millis))
