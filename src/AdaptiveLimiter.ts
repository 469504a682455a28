/**
 * Adaptive concurrency: a limit on requests in flight that moves with latency, like a TCP
 * congestion window. When latency rises with concurrency the limit falls, when it stays flat the
 * limit grows; a request arriving with `limit` requests in flight is rejected at once with
 * `OverloadedError` (reason `"concurrency"`). It needs no CPU signal, so it also protects
 * I/O-bound services that a CPU shedder cannot see.
 *
 * Completed requests are aggregated into windows of at least 10 samples spanning at least twice
 * their average latency; each window is one update of the algorithm (average RTT, most requests
 * in flight, any drop). Algorithms (pure functions in `internal/adaptiveLimit.ts`):
 *
 * - `gradient2()` (default): `gradient = clamp(1.5 · longRtt / shortRtt, 0.5, 1)`,
 *   `newLimit = limit · gradient + 4` (the queue allowance is added only while the gradient is 1),
 *   smoothed by 0.2; it does not move while fewer than half the limit are in flight.
 * - `vegas()`: `queue = limit · (1 − rttNoLoad / rtt)`; grows while the queue is under
 *   `3 · log10(limit)`, shrinks above `6 · log10(limit)` and on drops.
 * - `aimd()`: one more while the limit is in use, × 0.9 on a drop or a sample slower than
 *   `latencyThreshold`.
 *
 * The latency baselines (`longRtt`, `rttNoLoad`) only rise on samples taken with spare capacity,
 * so a sustained overload cannot teach the limiter that queueing is normal. The other side of
 * that choice: if the service becomes slower for good while it is saturated the whole time, the
 * limit stays conservative until load falls below the limit once.
 *
 * Metrics: `resilience_shedder_requests_in_flight{name}`, `resilience_shed_requests_total{name}`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as PubSub from "effect/PubSub"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Subscribable from "effect/Subscribable"
import { InvalidOptionsError, OverloadedError } from "./Errors.js"
import * as Limit from "./internal/adaptiveLimit.js"
import * as Shell from "./internal/adaptiveLimiterShell.js"
import { decodeOptions, Name, PositiveDuration, PositiveInt, PositiveNumber, Probability } from "./internal/options.js"
import * as Shadow from "./internal/shadow.js"

/**
 * An algorithm and its parameters; build one with `gradient2`, `vegas` or `aimd`.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm =
  | { readonly _tag: "Gradient2"; readonly options: Gradient2Options }
  | { readonly _tag: "Vegas"; readonly options: VegasOptions }
  | { readonly _tag: "Aimd"; readonly options: AimdOptions }

/**
 * Defaults: `tolerance` 1.5, `smoothing` 0.2, `queueSize` 4, `longWindow` 600 samples.
 *
 * @since 0.1.0
 * @category models
 */
export interface Gradient2Options {
  readonly tolerance?: number
  readonly smoothing?: number
  readonly queueSize?: number
  readonly longWindow?: number
}

/**
 * Defaults: `smoothing` 1, `probeMultiplier` 30, `alpha` 3, `beta` 6; `alpha` must be below `beta`.
 *
 * @since 0.1.0
 * @category models
 */
export interface VegasOptions {
  readonly smoothing?: number
  readonly probeMultiplier?: number
  readonly alpha?: number
  readonly beta?: number
}

/**
 * Defaults: `backoffRatio` 0.9, `latencyThreshold` 5 seconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface AimdOptions {
  readonly backoffRatio?: number
  readonly latencyThreshold?: Duration.DurationInput
}

/**
 * The default algorithm (Netflix's Gradient2 with the drift fixes described above).
 *
 * @since 0.1.0
 * @category algorithms
 */
export const gradient2 = (options: Gradient2Options = {}): Algorithm => ({ _tag: "Gradient2", options })

/**
 * TCP Vegas applied to concurrency.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const vegas = (options: VegasOptions = {}): Algorithm => ({ _tag: "Vegas", options })

/**
 * Additive increase, multiplicative decrease.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const aimd = (options: AimdOptions = {}): Algorithm => ({ _tag: "Aimd", options })

/**
 * Options of `make`. Defaults: `algorithm` `gradient2()`, `initialLimit` 20, `minLimit` 1,
 * `maxLimit` 1000.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly name: string
  readonly algorithm?: Algorithm
  readonly initialLimit?: number
  readonly minLimit?: number
  readonly maxLimit?: number
}

/**
 * An admission. `pass`: completed, its latency is a sample; `fail`: dropped or timed out, the
 * limit backs off; `ignore`: tells nothing about capacity (the client went away, a validation
 * error). Only the first call counts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ticket {
  readonly pass: Effect.Effect<void>
  readonly fail: Effect.Effect<void>
  readonly ignore: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly limit: number
  readonly inFlight: number
  readonly admitted: number
  readonly rejected: number
  readonly passed: number
  readonly failed: number
  readonly ignored: number
}

/**
 * How `protect` reports a typed failure: `isDrop` failures back the limit off (default: a
 * `TimeoutError`), the others are ignored. Success passes; defects and interruption are ignored.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProtectOptions<E> {
  readonly isDrop?: (error: E) => boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveLimiter {
  readonly name: string
  readonly allow: Effect.Effect<Ticket, OverloadedError>
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: ProtectOptions<E>
  ) => Effect.Effect<A, E | OverloadedError, R>
  /** the current limit */
  readonly limit: Effect.Effect<number>
  /** every new value of the limit, from subscription on */
  readonly changes: Stream.Stream<number>
  readonly stats: Effect.Effect<Stats>
  /**
   * The live limit, in-flight count and counters, read-only: `view.get` is `stats`;
   * `view.changes` emits them at once and at every move of the limit. Free while nobody subscribes.
   *
   * @since 0.3.0
   */
  readonly view: Subscribable.Subscribable<Stats>
}

const Smoothing = () => Probability.pipe(Schema.filter((n) => n > 0 || "expected a number in (0, 1]"))

const Gradient2Schema = () =>
  Schema.Struct({
    tolerance: Schema.optionalWith(
      Schema.Number.pipe(Schema.filter((n) => (Number.isFinite(n) && n >= 1) || "expected a number ≥ 1")),
      { default: () => 1.5 }
    ),
    smoothing: Schema.optionalWith(Smoothing(), { default: () => 0.2 }),
    queueSize: Schema.optionalWith(PositiveNumber, { default: () => 4 }),
    longWindow: Schema.optionalWith(PositiveInt, { default: () => 600 })
  })

const VegasSchema = () =>
  Schema.Struct({
    smoothing: Schema.optionalWith(Smoothing(), { default: () => 1 }),
    probeMultiplier: Schema.optionalWith(PositiveNumber, { default: () => 30 }),
    alpha: Schema.optionalWith(PositiveNumber, { default: () => 3 }),
    beta: Schema.optionalWith(PositiveNumber, { default: () => 6 })
  })

const AimdSchema = () =>
  Schema.Struct({
    backoffRatio: Schema.optionalWith(
      Probability.pipe(Schema.filter((n) => (n > 0 && n < 1) || "expected a number in (0, 1)")),
      { default: () => 0.9 }
    ),
    latencyThreshold: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(5) })
  })

const OptionsSchema = () =>
  Schema.Struct({
    name: Name,
    initialLimit: Schema.optionalWith(PositiveInt, { default: () => 20 }),
    minLimit: Schema.optionalWith(PositiveInt, { default: () => 1 }),
    maxLimit: Schema.optionalWith(PositiveInt, { default: () => 1000 })
  })

const decodeBase = decodeOptions("AdaptiveLimiter", OptionsSchema)
const decodeGradient2 = decodeOptions(
  "AdaptiveLimiter",
  () => Schema.Struct({ algorithm: Schema.Struct({ options: Gradient2Schema() }) })
)
const decodeVegas = decodeOptions(
  "AdaptiveLimiter",
  () => Schema.Struct({ algorithm: Schema.Struct({ options: VegasSchema() }) })
)
const decodeAimd = decodeOptions(
  "AdaptiveLimiter",
  () => Schema.Struct({ algorithm: Schema.Struct({ options: AimdSchema() }) })
)

const decodeAlgorithm = (options: Options): Effect.Effect<Limit.Algorithm, InvalidOptionsError> => {
  const algorithm = options.algorithm ?? gradient2()
  const input = { algorithm }
  switch (algorithm._tag) {
    case "Gradient2":
      return Effect.map(decodeGradient2(input), (d) => ({ _tag: "Gradient2", ...d.algorithm.options }))
    case "Vegas":
      return Effect.flatMap(decodeVegas(input), (d) => {
        const { alpha, beta } = d.algorithm.options
        // between the two thresholds the limit holds; with alpha ≥ beta a long queue would grow it
        return alpha < beta
          ? Effect.succeed<Limit.Algorithm>({ _tag: "Vegas", ...d.algorithm.options })
          : Effect.fail(
            new InvalidOptionsError({
              module: "AdaptiveLimiter",
              option: "algorithm.options.beta",
              value: beta,
              reason: `expected a number greater than alpha ${alpha}`
            })
          )
      })
    case "Aimd":
      return Effect.map(decodeAimd(input), (d) => ({
        _tag: "Aimd",
        backoffRatio: d.algorithm.options.backoffRatio,
        latencyThreshold: Duration.toMillis(d.algorithm.options.latencyThreshold)
      }))
    default:
      return Effect.fail(
        new InvalidOptionsError({
          module: "AdaptiveLimiter",
          option: "algorithm",
          value: algorithm,
          reason: "expected gradient2(), vegas() or aimd()"
        })
      )
  }
}

/**
 * Builds a limiter; it reads the time from the `Clock` of the fiber that builds it. The scope ends
 * the `changes` streams.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AdaptiveLimiter } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* AdaptiveLimiter.make({ name: "db", algorithm: AdaptiveLimiter.vegas() })
 *   return yield* Effect.succeed("row").pipe(AdaptiveLimiter.protect(limiter))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<AdaptiveLimiter, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const base = yield* decodeBase(options)
    const algorithm = yield* decodeAlgorithm(options)
    yield* Shell.checkBounds(base)
    const { name } = base
    const bounds: Limit.Bounds = { min: base.minLimit, max: base.maxLimit }
    const seed = yield* Random.nextIntBetween(1, 2 ** 31 - 1)
    const state = Limit.make(base.initialLimit, seed)
    const clock = yield* Effect.clock
    const hub = yield* Effect.acquireRelease(PubSub.sliding<number>(1024), PubSub.shutdown)
    const core = Shell.makeCore(name, algorithm, bounds, state, clock, hub)
    return yield* Shadow.attach(Shell.limiterOf(name, core, hub), Shadow.adaptiveLimiter)
  })

/**
 * Runs `effect` through `limiter`; see `ProtectOptions`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (limiter: AdaptiveLimiter): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OverloadedError, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, limiter: AdaptiveLimiter): Effect.Effect<A, E | OverloadedError, R>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, limiter: AdaptiveLimiter): Effect.Effect<A, E | OverloadedError, R> =>
    limiter.protect(effect)
)
