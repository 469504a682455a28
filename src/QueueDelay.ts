/**
 * Queue delay: how long requests wait between their arrival, as the server first sees it, and
 * the start of their handler — CoDel's measure of a standing queue. The value is the lowest wait
 * of the requests started during the last `interval` (100 ms): when even the luckiest request
 * waited longer than a target of a few milliseconds, a queue is standing, not passing by as a
 * burst. It is 0 after an interval with no request.
 *
 * The signal is fed, not sampled: a `LoadShedder` built on it records the wait of every request
 * it is given an arrival time for (`admit(priority, arrivedAt)`), and other stages can `record`
 * too. It sees only the queue in front of the handler that the server can time: requests waiting
 * for a worker, a connection pool or a proxy's queue (`X-Request-Start`). A plain Node server
 * starts a handler as soon as it parses the request, so its queue is the event loop itself:
 * `EventLoopDelay` and `EventLoopUtilization` see it.
 *
 * @since 0.2.0
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { InvalidOptionsError } from "./Errors.js"
import { decodeOptions, PositiveDuration } from "./internal/options.js"
import * as Metrics from "./internal/sheddingMetrics.js"
import * as Signals from "./internal/signals.js"

/**
 * The service: `current` / `unsafeCurrent` give the standing delay in milliseconds;
 * `unsafeRecord(wait, now)` records a request that waited `wait` ms and started at `now`
 * (epoch ms from `Clock`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Service {
  readonly current: Effect.Effect<number>
  readonly unsafeCurrent: () => number
  readonly unsafeRecord: (waitMillis: number, now: number) => void
}

/**
 * @since 0.2.0
 * @category tags
 */
export class QueueDelay extends Context.Tag("effect-resilience/QueueDelay")<QueueDelay, Service>() {}

/**
 * Options of `layerWith`: CoDel's `interval` (default 100 ms).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly interval?: Duration.DurationInput
}

/**
 * Defaults of `layerWith`.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaults = { interval: Duration.millis(100) } as const

const decode = decodeOptions("QueueDelay", () => Schema.Struct({ interval: Schema.optional(PositiveDuration) }))

const makeService = (intervalMillis: number, clock: Clock.Clock): Service => {
  const codel = Signals.makeCoDel(intervalMillis, clock.unsafeCurrentTimeMillis())
  const unsafeCurrent = () => Signals.standingDelay(codel, clock.unsafeCurrentTimeMillis())
  return {
    current: Effect.sync(unsafeCurrent),
    unsafeCurrent,
    unsafeRecord: (waitMillis, now) => {
      const before = codel.standing
      Signals.recordDelay(codel, waitMillis, now)
      if (codel.standing !== before) Metrics.queueDelaySeconds.unsafeUpdate(codel.standing / 1000, [])
    }
  }
}

/**
 * The live signal with options; it reads the time from the `Clock` of the fiber that builds it.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWith = (options: Options = {}): Layer.Layer<QueueDelay, InvalidOptionsError> =>
  Layer.effect(
    QueueDelay,
    Effect.gen(function*() {
      const decoded = yield* decode(options)
      const clock = yield* Effect.clock
      return makeService(Duration.toMillis(decoded.interval ?? defaults.interval), clock)
    })
  )

/**
 * The live signal with default options.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<QueueDelay> = layerWith().pipe(Layer.orDie)

/**
 * Records, in the `QueueDelay` in context, a request that arrived at `arrivedAt` (epoch ms from
 * `Clock`) and starts now.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { QueueDelay } from "effect-resilience"
 *
 * interface Job { readonly arrivedAt: number; readonly run: Effect.Effect<void> }
 *
 * // a worker records how long each job waited in the queue before it starts
 * const worker = (jobs: Queue.Queue<Job>) =>
 *   Queue.take(jobs).pipe(
 *     Effect.tap((job) => QueueDelay.record(job.arrivedAt)),
 *     Effect.flatMap((job) => job.run),
 *     Effect.forever,
 *     Effect.provide(QueueDelay.layer)
 *   )
 * ```
 *
 * @since 0.2.0
 * @category recording
 */
export const record = (arrivedAt: number): Effect.Effect<void, never, QueueDelay> =>
  Effect.flatMap(QueueDelay, (service) =>
    Effect.clockWith((clock) =>
      Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        service.unsafeRecord(now - arrivedAt, now)
      })
    ))

/**
 * The handle a test uses to set the value `layerTest` reports.
 *
 * @since 0.2.0
 * @category tags
 */
export class QueueDelayTest extends Context.Tag("effect-resilience/QueueDelayTest")<QueueDelayTest, {
  readonly set: (millis: number) => Effect.Effect<void>
  /** every wait recorded so far, ms */
  readonly recorded: Effect.Effect<ReadonlyArray<number>>
}>() {}

/**
 * A `QueueDelay` whose value (ms) a test sets with `set`; it keeps what is recorded.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerTest = (initial = 0): Layer.Layer<QueueDelay | QueueDelayTest> =>
  Layer.effectContext(Effect.sync(() => {
    const cell = { value: Math.max(0, initial) }
    const recorded: Array<number> = []
    const unsafeCurrent = () => cell.value
    return Context.make(QueueDelay, {
      current: Effect.sync(unsafeCurrent),
      unsafeCurrent,
      unsafeRecord: (wait) => void recorded.push(wait)
    }).pipe(
      Context.add(QueueDelayTest, {
        set: (millis) => Effect.sync(() => void (cell.value = Number.isNaN(millis) ? 0 : Math.max(0, millis))),
        recorded: Effect.sync(() => [...recorded])
      })
    )
  }))

/**
 * Sets the value of the `layerTest` service in context.
 *
 * @since 0.2.0
 * @category test
 */
export const set = (millis: number): Effect.Effect<void, never, QueueDelayTest> =>
  Effect.flatMap(QueueDelayTest, (handle) => handle.set(millis))
