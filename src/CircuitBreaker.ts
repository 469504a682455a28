/**
 * Circuit breakers: the adaptive breaker of Google's SRE book (go-zero's default), and
 * state-machine breakers (gobreaker, resilience4j) tripping on consecutive failures, on a failure
 * or slow-call rate over a count or time window, or on a predicate of your own.
 *
 * A breaker is a plain service value: build it with `make` (it needs a `Scope`, which bounds the
 * breaker's metric series, its `changes` stream and its probe fiber), provide it with `layer`, or
 * keep one per key in a `Registry`. Wrap work with `protect`; callers that cannot wrap the work in
 * one effect (HTTP middleware) use the two-step `allow`, which yields a `Permit`.
 *
 * Outcomes: a success counts as success; a failure counts as failure unless `isFailure(error)`
 * says otherwise (then it counts as success: the downstream answered) or `isExcluded(error)` says
 * to ignore it; a defect and a `TimeoutError` always count as failures (the defect is re-raised),
 * except a self-inflicted `TimeoutError` — the caller's own deadline ran out (`reason: "deadline"`)
 * or this process's event loop fired the timer late (`reason: "lag"`) — which counts as neither;
 * interruption of the caller counts as neither and gives a half-open probe slot back.
 *
 * @since 0.1.0
 */
import type { UnknownException } from "effect/Cause"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Subscribable from "effect/Subscribable"
import type { CircuitOpenError, InvalidOptionsError } from "./Errors.js"
import * as BreakerBuild from "./internal/breaker/build.js"
import * as BreakerConfig from "./internal/breaker/config.js"
import * as BreakerMetrics from "./internal/breaker/metrics.js"
import { PolicyTypeId } from "./internal/breaker/policy.js"
import * as BreakerRegistry from "./internal/breaker/registry.js"
import * as Shadow from "./internal/shadow.js"

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * `Closed`: calls flow. `Open`: calls are rejected (the adaptive breaker still lets one probe
 * through every `forcePassAfter`). `HalfOpen`: a state machine admits a few probes; the adaptive
 * breaker drops a share of calls at random. `Isolated`: held open by `isolate` until `reset`.
 *
 * @since 0.1.0
 * @category models
 */
export type State = "Closed" | "Open" | "HalfOpen" | "Isolated"

/**
 * The second step of `allow`: report exactly one outcome (later calls are no-ops).
 *
 * @since 0.1.0
 * @category models
 */
export interface Permit {
  readonly success: Effect.Effect<void>
  readonly failure: (reason: unknown) => Effect.Effect<void>
  /** the outcome counts as neither (e.g. the client went away) */
  readonly ignore: Effect.Effect<void>
}

/**
 * One state change, as published on `changes`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StateChange {
  readonly name: string
  readonly from: State
  readonly to: State
  /** epoch millis, from `Clock` */
  readonly at: number
}

/**
 * A failure the breaker recorded: the error (or defect), and when.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedError {
  readonly at: number
  readonly reason: unknown
}

/**
 * A snapshot. Counts cover the breaker's current window: the rolling window of the adaptive and
 * time-window breakers, the current generation of the state machines (cleared on every change of
 * state and every `interval`). `requests` of a state machine are, while Closed, the calls whose
 * outcome (success or failure) arrived, and while HalfOpen the probes admitted. `rejections` for
 * the adaptive breaker are its drops in the window, for the state machines the rejections since the
 * last `reset`; both include the calls rejected while `Isolated`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly state: State
  readonly requests: number
  readonly successes: number
  readonly failures: number
  readonly rejections: number
  readonly consecutiveSuccesses: number
  readonly consecutiveFailures: number
  /** failures / (successes + failures) over the window; NaN without data */
  readonly failureRate: number
  /** adaptive breaker only: the share of calls the last decision dropped */
  readonly dropRatio?: number
  /** the last 5 failures, oldest first */
  readonly lastErrors: ReadonlyArray<RecordedError>
}

/**
 * Per-call options of `protect`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProtectOptions<E> {
  /** overrides the breaker's `isFailure` for this call */
  readonly isFailure?: ((error: E) => boolean) | undefined
}

/**
 * A circuit breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  readonly name: string
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: ProtectOptions<E>
  ) => Effect.Effect<A, E | CircuitOpenError, R>
  /**
   * `protect(Effect.tryPromise(evaluate), options)`, decided in the step that starts the promise:
   * it costs the runtime one step beyond `Effect.tryPromise`'s own (where `protect` takes two), the
   * one that records the outcome when the promise settles. It is rejected, probes and counts as
   * `protect` would — an interrupted caller counts as neither, and its signal is aborted — and
   * fails like `Effect.tryPromise` (`UnknownException`, or what `catch` makes of the rejection,
   * which `isFailure` then judges).
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { CircuitBreaker } from "effect-resilience"
   *
   * const program = Effect.gen(function*() {
   *   const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "users", threshold: 5 }))
   *   return yield* breaker.tryPromise((signal) => fetch("http://127.0.0.1:8080/users/42", { signal }))
   * }).pipe(Effect.scoped)
   * ```
   *
   * @since 0.4.0
   */
  readonly tryPromise: {
    <A>(
      evaluate: (signal: AbortSignal) => PromiseLike<A>,
      options?: ProtectOptions<UnknownException>
    ): Effect.Effect<A, UnknownException | CircuitOpenError>
    <A, E>(
      evaluate: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
      options?: ProtectOptions<E>
    ): Effect.Effect<A, E | CircuitOpenError>
  }
  readonly allow: Effect.Effect<Permit, CircuitOpenError>
  readonly state: Effect.Effect<State>
  readonly stats: Effect.Effect<Stats>
  readonly changes: Stream.Stream<StateChange>
  /**
   * The live state and counts, read-only: `view.get` is `stats`; `view.changes` emits them at
   * once and at every state change (with that change's state). Free while nobody subscribes.
   *
   * @since 0.3.0
   */
  readonly view: Subscribable.Subscribable<Stats>
  /** holds the breaker open (rejecting with state `Isolated`) until `reset` */
  readonly isolate: Effect.Effect<void>
  /** back to Closed with empty counts */
  readonly reset: Effect.Effect<void>
}

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

/**
 * Options every policy accepts.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions {
  /** names the breaker in errors, logs and metrics */
  readonly name: string
  /** whether an error counts as a failure (default: every error); `false` counts as success */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** errors that count as neither success nor failure (e.g. a validation error of the caller) */
  readonly isExcluded?: ((error: unknown) => boolean) | undefined
  /** an active recovery probe run while the breaker is not Closed (see `ProbeOptions`) */
  readonly probe?: ProbeOptions | undefined
  /** admit a growing share of calls after the breaker closes (see `RampOptions`) */
  readonly ramp?: RampOptions | undefined
}

/**
 * An active recovery probe: while the breaker is Open or HalfOpen, `effect` runs every `every`
 * (first `every` after the breaker leaves Closed) in the breaker's scope, with no user call. A
 * success counts as a half-open success that takes no probe slot: with `halfOpenMaxCalls: 1` the
 * first successful probe closes a state machine; the adaptive breaker records it in its window as
 * a success. A failed probe reopens a HalfOpen state machine and leaves an Open one as it is (its
 * open period does not start again). The effect should bound its own time (`Timeout.within`).
 * Only breakers built with `make` or `layer` run a probe: a `Registry` refuses the option.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProbeOptions {
  readonly effect: Effect.Effect<unknown, unknown>
  readonly every: Duration.DurationInput
}

/**
 * An admission ramp after closing (Hystrix and Polly users ask for it): when the breaker turns
 * Closed it admits the share `from` (in (0, 1]) of calls, growing linearly to every call `over`
 * later; the others fail with a `CircuitOpenError` whose `reason` is `"ramp"`. A `reset` skips the
 * ramp. Drawn from `Random`, so tests replay under `TestRandom`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RampOptions {
  readonly from: number
  readonly over: Duration.DurationInput
}

/**
 * How long a state machine stays open: a fixed duration, or a `Schedule` whose successive delays
 * are used for successive trips (reset when the breaker closes), e.g.
 * `Schedule.exponential("1 second")` for 1 s, 2 s, 4 s…
 *
 * @since 0.1.0
 * @category models
 */
export type OpenFor = Duration.DurationInput | Schedule.Schedule<unknown, unknown>

/**
 * Options of the adaptive breaker (`sre`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SreOptions extends CommonOptions {
  /** the client may send up to k × accepted calls before dropping (default 1.5; at least 1) */
  readonly k?: number
  /** k falls towards minK while failures persist (default 1.1) */
  readonly minK?: number
  /** calls that always pass before any drop (default 5) */
  readonly protection?: number
  /** rolling window (default 10 seconds) */
  readonly window?: Duration.DurationInput
  /** buckets in the window (default 40) */
  readonly buckets?: number
  /** while dropping, one call is let through when none passed for this long (default 1 second) */
  readonly forcePassAfter?: Duration.DurationInput
}

/**
 * Options shared by the state-machine policies.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineOptions extends CommonOptions {
  /** open period before probing (default 60 seconds); a Schedule backs off on repeated trips */
  readonly openFor?: OpenFor
  /** probes admitted while HalfOpen; that many successes close the breaker (default 1) */
  readonly halfOpenMaxCalls?: number
}

/**
 * Options of `consecutive`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConsecutiveOptions extends MachineOptions {
  /** consecutive failures that trip the breaker (default 5) */
  readonly threshold?: number
}

/**
 * Slow-call tracking (resilience4j): calls that take at least `slowCallDuration` are slow; the
 * breaker trips when their share reaches `slowCallRateThreshold`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SlowCallOptions {
  readonly slowCallDuration?: Duration.DurationInput
  /** share of slow calls that trips the breaker, in [0, 1] (default 1) */
  readonly slowCallRateThreshold?: number
}

/**
 * Options of `countWindow`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CountWindowOptions extends MachineOptions, SlowCallOptions {
  /** how many of the last calls are considered (default 100) */
  readonly size?: number
  /** no trip before this many calls are in the window (default: `size`) */
  readonly minimumCalls?: number
  /** failure share that trips the breaker, in [0, 1] (default 0.5) */
  readonly failureRateThreshold?: number
}

/**
 * Options of `timeWindow`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeWindowOptions extends MachineOptions, SlowCallOptions {
  /** the rolling window (default 10 seconds) */
  readonly window?: Duration.DurationInput
  /** buckets in the window (default 10) */
  readonly buckets?: number
  /** no trip before this many calls are in the window (default 20) */
  readonly minimumCalls?: number
  /** failure share that trips the breaker, in [0, 1] (default 0.5) */
  readonly failureRateThreshold?: number
}

/**
 * The counts a `custom` breaker decides on (gobreaker's `Counts`), for the current generation.
 * Unlike gobreaker, `requests` while Closed counts the calls that succeeded or failed, not those
 * admitted: a call still running, excluded by `isExcluded`, or whose caller was interrupted is not
 * in it, so `totalFailures / requests` is the failure share of the calls that ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counts {
  readonly requests: number
  readonly totalSuccesses: number
  readonly totalFailures: number
  readonly consecutiveSuccesses: number
  readonly consecutiveFailures: number
}

/**
 * Options of `custom` (gobreaker's `Settings`).
 *
 * @since 0.1.0
 * @category models
 */
export interface CustomOptions extends MachineOptions {
  /** decides after each failure whether to trip (default: more than 5 consecutive failures) */
  readonly readyToTrip?: (counts: Counts) => boolean
  /** period after which the counts are cleared while Closed (default 0: never) */
  readonly interval?: Duration.DurationInput
}

/**
 * A breaker's algorithm and options, checked when the breaker is built (`make`, `layer`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy {
  readonly [PolicyTypeId]: typeof PolicyTypeId
  readonly _tag: "Sre" | "Consecutive" | "CountWindow" | "TimeWindow" | "Custom"
  readonly options: CommonOptions
}

const policy = (_tag: Policy["_tag"], options: CommonOptions): Policy => ({
  [PolicyTypeId]: PolicyTypeId,
  _tag,
  options
})

/**
 * The adaptive breaker of Google's SRE book ("client-side throttling"), go-zero's default, with
 * its recovery weakness fixed.
 *
 * Over a rolling window (10 s in 40 buckets) it computes
 * `dropRatio = (total − protection − kEff · accepts) / (total + 1)`, where `accepts` are successes
 * and `total` successes plus failures, and drops that share of calls at random; `kEff` falls from
 * `k` towards `minK` while failures persist, and the ratio shrinks with each trailing bucket that
 * only succeeded.
 *
 * Recovery design (differs from go-zero):
 * - the breaker's own drops are not counted in `total`, so they cannot keep the ratio up after the
 *   downstream heals (go-zero counts them, and its users see minutes of rejections);
 * - while the window holds failures and no success at all, the ratio is 1: only the forced probe
 *   (one call after `forcePassAfter` without a pass) reaches the downstream. This keeps the leak
 *   during an outage at about one call per second whatever the load;
 * - the first successful probe ends the all-failure state, and the successes that follow outweigh
 *   the failures left in the window: the breaker admits ≥ 95 % of calls within about
 *   `forcePassAfter` plus a few hundred milliseconds of the downstream healing.
 *
 * Its `state` is Closed while it admits everything, HalfOpen while it drops a share at random,
 * Open while only the probe passes; it returns to Closed once the ratio stayed at zero for
 * `forcePassAfter`, so a ratio hovering around zero does not flood `changes` and the logs.
 * In `test/CircuitBreaker.simulation.test.ts` (1,000 calls/s, 60 s outage) 0.11 % of calls reach
 * the dead downstream and ≥ 95 % are admitted again 0.9 s after it heals; go-zero's counting
 * leaks 0.21 % and takes 8.7 s.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "payments" }))
 *   return yield* breaker.protect(Effect.succeed("charged"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const sre = (options: SreOptions): Policy => policy("Sre", options)

/**
 * Trips after `threshold` consecutive failures (default 5), stays open `openFor` (default
 * 60 seconds), then admits `halfOpenMaxCalls` probes (default 1): that many successes close it,
 * any failure reopens it.
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutive = (options: ConsecutiveOptions): Policy => policy("Consecutive", options)

/**
 * Trips when, over the last `size` calls (and at least `minimumCalls`), the failure share
 * reaches `failureRateThreshold` or the slow-call share reaches `slowCallRateThreshold`.
 *
 * @since 0.1.0
 * @category policies
 */
export const countWindow = (options: CountWindowOptions): Policy => policy("CountWindow", options)

/**
 * Trips when, over a rolling time `window` (and at least `minimumCalls` calls in it), the failure
 * share reaches `failureRateThreshold` or the slow-call share reaches `slowCallRateThreshold`.
 *
 * @since 0.1.0
 * @category policies
 */
export const timeWindow = (options: TimeWindowOptions): Policy => policy("TimeWindow", options)

/**
 * gobreaker's breaker: `readyToTrip(counts)` is asked after every failure while Closed (default:
 * more than 5 consecutive failures), `interval` clears the counts periodically while Closed.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-resilience"
 * import { Schedule } from "effect"
 *
 * const policy = CircuitBreaker.custom({
 *   name: "search",
 *   readyToTrip: (c) => c.requests >= 10 && c.totalFailures / c.requests >= 0.6,
 *   interval: "1 minute",
 *   openFor: Schedule.exponential("1 second").pipe(Schedule.upTo("1 minute"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const custom = (options: CustomOptions): Policy => policy("Custom", options)

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

/**
 * The value `resilience_breaker_state{name}` takes for each state.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateGaugeValue: Readonly<Record<State, number>> = BreakerMetrics.stateValue

/**
 * Builds a breaker from a policy, failing with `InvalidOptionsError` (naming the option) when an
 * option is invalid.
 *
 * It needs a `Scope` (it is in the effect's requirements): the breaker owns resources whose life
 * the scope bounds — its series in the metrics registry (released when the scope closes, so a
 * breaker made per tenant does not leave a series behind), the `changes` stream (ended when the
 * scope closes) and, with an active recovery probe, the fiber running it. Build it inside
 * `Effect.scoped`, a scoped layer (`CircuitBreaker.layer`), or a `Registry`, which owns the scope
 * of every breaker it makes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * declare const callPayments: Effect.Effect<string, Error>
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "payments" }))
 *     return yield* breaker.protect(callPayments)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (policy: Policy): Effect.Effect<CircuitBreaker, InvalidOptionsError, Scope.Scope> =>
  Effect.flatMap(BreakerBuild.build(policy), (breaker) => Shadow.attach<CircuitBreaker>(breaker, Shadow.circuitBreaker))

/**
 * Runs `effect` through `breaker`. Both orders work:
 * `CircuitBreaker.protect(breaker, effect)` and `effect.pipe(CircuitBreaker.protect(breaker))`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (breaker: CircuitBreaker, options?: ProtectOptions<unknown>): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CircuitOpenError, R>
  <A, E, R>(
    breaker: CircuitBreaker,
    effect: Effect.Effect<A, E, R>,
    options?: ProtectOptions<E>
  ): Effect.Effect<A, E | CircuitOpenError, R>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    options?: ProtectOptions<E>
  ): Effect.Effect<A, E | CircuitOpenError, R>
} = dual(
  // data-last takes the breaker and, optionally, options: data-first is told by the effect argument
  (args) => Effect.isEffect(args[0]) || Effect.isEffect(args[1]),
  (a: any, b: any, c?: any): any =>
    Effect.isEffect(a) ? (b as CircuitBreaker).protect(a, c) : (a as CircuitBreaker).protect(b, c)
)

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/**
 * Provides a breaker under your own tag.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-resilience"
 * import { Context } from "effect"
 *
 * class Payments extends Context.Tag("app/Payments")<Payments, CircuitBreaker.CircuitBreaker>() {}
 * const PaymentsLive = CircuitBreaker.layer(Payments, CircuitBreaker.sre({ name: "payments" }))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(tag: Context.Tag<I, CircuitBreaker>, policy: Policy): Layer.Layer<I, InvalidOptionsError> =>
  Layer.scoped(tag, make(policy))

/**
 * A policy read from configuration. Keys (all optional but `name`): `policy`
 * (`sre` | `consecutive` | `countWindow` | `timeWindow`, default `sre`), `name`, and the options of
 * that policy under their own names (`k`, `minK`, `protection`, `window`, `buckets`,
 * `forcePassAfter`, `threshold`, `openFor`, `halfOpenMaxCalls`, `size`, `minimumCalls`,
 * `failureRateThreshold`, `slowCallDuration`, `slowCallRateThreshold`). Nest it to read under a
 * prefix: `Config.nested(CircuitBreaker.policyConfig, "PAYMENTS_BREAKER")`.
 *
 * @since 0.1.0
 * @category config
 */
export const policyConfig: Config.Config<Policy> = BreakerConfig.policyConfig

/**
 * Provides a breaker whose policy is read from `effect/Config` (see `policyConfig`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, CircuitBreaker>,
  config: Config.Config<Policy> = policyConfig
): Layer.Layer<I, InvalidOptionsError | ConfigError.ConfigError> => Layer.scoped(tag, Effect.flatMap(config, make))

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/**
 * Breakers by name, created on first use (go-zero's `breaker.Do(name, …)`), for per-host, per-route
 * or per-tenant breakers. At most `maxKeys` are held — the least recently used idle one goes first
 * — and one idle longer than `idleTimeToLive` is dropped, so the number of names cannot grow memory
 * without bound. A breaker is never dropped while in use (a call through the registry's `protect`
 * runs on it, or a permit of its `allow` is out) or while isolated; a dropped breaker's metric
 * series goes with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistryService {
  /** the breaker for `name`, created from the registry's policy on first use */
  readonly get: (name: string) => Effect.Effect<CircuitBreaker>
  /** runs `effect` through the breaker for `name`, which is in use until `effect` ends */
  readonly protect: (
    name: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /** the names currently held */
  readonly names: Effect.Effect<ReadonlyArray<string>>
  /** the breakers currently held, without marking them used */
  readonly breakers: Effect.Effect<ReadonlyArray<CircuitBreaker>>
  /** drops the breaker for `name`; true when there was one */
  readonly remove: (name: string) => Effect.Effect<boolean>
}

/**
 * The registry service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Registry extends Context.Tag("effect-resilience/CircuitBreakerRegistry")<Registry, RegistryService>() {}

/**
 * Options of `layerRegistry`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistryOptions {
  /** the policy of the breaker for a name; a policy with invalid options makes `get` die */
  readonly policy: (name: string) => Policy
  /**
   * evict breakers unused for this long (default 10 minutes). A breaker taken with `get` and
   * called directly may be kept up to half this long more: a Closed breaker whose policy does not
   * depend on time admits such calls without reading the clock, and the next sweep dates them.
   */
  readonly idleTimeToLive?: Duration.DurationInput
  /** breakers held at most; past it the least recently used idle one is evicted (default 10,000) */
  readonly maxKeys?: number
}

/**
 * Makes a `Registry`. A background fiber, owned by the scope, sweeps idle breakers every half
 * `idleTimeToLive`; closing the scope drops every breaker (ending their `changes` streams).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (
  options: RegistryOptions
): Effect.Effect<RegistryService, InvalidOptionsError, Scope.Scope> =>
  Effect.flatMap(BreakerRegistry.fromOptions(options), (registry) => Shadow.attach(registry, Shadow.breakerRegistry))

/**
 * Provides the `Registry`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-resilience"
 * import { Effect } from "effect"
 *
 * const RegistryLive = CircuitBreaker.layerRegistry({
 *   policy: (host) => CircuitBreaker.sre({ name: `upstream:${host}` }),
 *   idleTimeToLive: "5 minutes",
 *   maxKeys: 50_000
 * })
 *
 * const call = (host: string) =>
 *   Effect.flatMap(CircuitBreaker.Registry, (registry) => registry.protect(host)(Effect.succeed(host)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRegistry = (options: RegistryOptions): Layer.Layer<Registry, InvalidOptionsError> =>
  Layer.scoped(Registry, makeRegistry(options))
