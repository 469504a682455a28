/**
 * Keyed rate limiters: five algorithms (token bucket with golang.org/x/time/rate semantics, fixed
 * window with go-zero's period codes, sliding log, sliding counter, GCRA) over a
 * `RateLimiterStore` (in memory, or Redis shared by many instances).
 *
 * A limiter answers `take(key, cost)` with a `Decision` (allowed, limit, remaining, retryAfter,
 * resetAfter), guards effects with `protect(key)` — failing with `RateLimitedError`, or, with
 * `onExceeded: "wait"`, sleeping until admitted as long as the wait fits `maxWait` and the
 * caller's deadline — and, for the token bucket and GCRA, reserves capacity ahead of time.
 * A cost above the algorithm's capacity can never be admitted and fails at once, in every mode.
 *
 * @since 0.1.0
 */
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type * as Subscribable from "effect/Subscribable"
import type { InvalidOptionsError, RateLimitedError, StoreError } from "./Errors.js"
import * as Algorithms from "./internal/ratelimit/algorithms.js"
import { makeAll } from "./internal/ratelimit/all.js"
import type * as Core from "./internal/ratelimit/core.js"
import type { Definition, Kind } from "./internal/ratelimit/core.js"
import { viewOf } from "./internal/ratelimit/keyView.js"
import * as Make from "./internal/ratelimit/make.js"
import { makeTiered } from "./internal/ratelimit/tiered.js"
import * as Shadow from "./internal/shadow.js"
import type { RateLimiterStore } from "./RateLimiterStore.js"
import * as Timeout from "./Timeout.js"

/**
 * go-zero's period codes, reported by the fixed window: `Allowed` below the quota, `HitQuota`
 * for the request that reaches it (the last one admitted), `OverQuota` above.
 *
 * @since 0.1.0
 * @category models
 */
export type PeriodCode = Core.PeriodCode

/**
 * The answer for one request.
 *
 * - `limit`: the most a key can take at once (bucket size, window quota, GCRA burst).
 * - `remaining`: what is left right now, after this request if it was admitted.
 * - `retryAfter`: when denied, how long until the same request would be admitted if nobody else
 *   takes anything (zero when admitted; infinite for a cost that can never be admitted).
 * - `resetAfter`: how long until the key is back to full capacity.
 * - `code`: the fixed window's period code.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decision {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly retryAfter: Duration.Duration
  readonly resetAfter: Duration.Duration
  readonly code?: PeriodCode | undefined
}

/**
 * Capacity taken ahead of time (token bucket and GCRA): act after `delay`; `cancel` gives the
 * capacity back if the time to act has not passed yet (as `Reservation.Cancel` does in
 * x/time/rate), at most once.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reservation {
  readonly decision: Decision
  readonly delay: Duration.Duration
  readonly cancel: Effect.Effect<void, StoreError>
}

/**
 * A keyed rate limiter.
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimiter {
  readonly name: string
  readonly algorithm: Algorithm
  /**
   * Takes `cost` (a whole number ≥ 0, default 1) for `key` and reports the decision; never waits.
   * Fails only for a cost above the capacity (`RateLimitedError`) or a store failure.
   */
  readonly take: (key: string, cost?: number) => Effect.Effect<Decision, StoreError | RateLimitedError>
  /** Admits `cost` for `key` or fails (`onExceeded: "fail"`), or waits until admitted (`"wait"`). */
  readonly acquire: (key: string, cost?: number) => Effect.Effect<void, StoreError | RateLimitedError>
  /** Runs `effect` once one unit is admitted for `key`. */
  readonly protect: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimitedError | StoreError, R>
  /**
   * Reserves `cost` for `key` even if it means waiting up to `maxDelay` (default: unbounded) and
   * returns when to act. Only the token bucket and GCRA can reserve; the others fail with
   * `InvalidOptionsError`.
   */
  readonly reserve: (
    key: string,
    cost?: number,
    maxDelay?: Duration.DurationInput
  ) => Effect.Effect<Reservation, StoreError | RateLimitedError | InvalidOptionsError>
}

/**
 * A rate-limit algorithm with its (not yet validated) parameters; `make` validates them.
 *
 * @since 0.1.0
 * @category models
 */
export interface Algorithm {
  readonly _tag: Kind
  readonly options: unknown
}

/**
 * Token bucket (golang.org/x/time/rate): `burst` tokens, full at start, refilled at `rate` tokens
 * per second. A burst of `burst` requests is admitted at once, then one per `1 / rate`.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const tokenBucket = (options: { readonly rate: number; readonly burst: number }): Algorithm => ({
  _tag: "TokenBucket",
  options
})

/**
 * Fixed window (go-zero PeriodLimit): at most `limit` per `window`. The window starts with the
 * key's first request, or with `align: true` on multiples of `window` since the Unix epoch
 * (shifted by `offset`, e.g. a time-zone offset for "per day"). Decisions carry the period code.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const fixedWindow = (options: {
  readonly limit: number
  readonly window: Duration.DurationInput
  readonly align?: boolean | undefined
  readonly offset?: Duration.DurationInput | undefined
}): Algorithm => ({ _tag: "FixedWindow", options })

/**
 * Sliding log: exactly `limit` per any `window`, one timestamp kept per admitted unit (memory
 * grows with `limit`).
 *
 * @since 0.1.0
 * @category algorithms
 */
export const slidingLog = (
  options: { readonly limit: number; readonly window: Duration.DurationInput }
): Algorithm => ({
  _tag: "SlidingLog",
  options
})

/**
 * Sliding counter: about `limit` per any `window`, estimated from the current and previous
 * aligned windows (`previous · (window − elapsed) / window + current`); two numbers per key.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const slidingCounter = (
  options: { readonly limit: number; readonly window: Duration.DurationInput }
): Algorithm => ({ _tag: "SlidingCounter", options })

/**
 * GCRA: `limit` per `period`, evenly spaced, with bursts of up to `burst` (default `limit`);
 * one number per key.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const gcra = (options: {
  readonly limit: number
  readonly period: Duration.DurationInput
  readonly burst?: number | undefined
}): Algorithm => ({ _tag: "Gcra", options })

/**
 * Validates an algorithm's parameters into the definition the stores run.
 *
 * @since 0.1.0
 * @category internals
 */
export const definition = (algorithm: Algorithm): Effect.Effect<Definition, InvalidOptionsError> =>
  Algorithms.definition(algorithm)

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly name: string
  readonly algorithm: Algorithm
  /** what `acquire` / `protect` do when a request is over the limit (default `"fail"`) */
  readonly onExceeded?: "fail" | "wait" | undefined
  /** in `"wait"` mode, the longest wait accepted; a longer one fails at once (default: unbounded) */
  readonly maxWait?: Duration.DurationInput | undefined
  /**
   * In `"wait"` mode, what is left of the caller's deadline; a wait longer than that fails at once.
   * Defaults to `Timeout.remaining`, so a `Timeout.deadline` budget around the caller is honoured.
   */
  readonly deadline?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}

/**
 * Builds a limiter over the `RateLimiterStore` in context. Updates
 * `resilience_rate_limit_allowed_total{name}` and `resilience_rate_limit_exceeded_total{name}`.
 * With an in-process store (memory) it decides on the `Clock` in context when it is made (read
 * once, not on every call): build it where the `TestClock` is when testing.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimiter, RateLimiterStore } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.make({
 *     name: "login",
 *     algorithm: RateLimiter.fixedWindow({ limit: 5, window: "1 minute" })
 *   })
 *   yield* Effect.log("logged in").pipe(limiter.protect("user-42"))
 * }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
 * ```
 */
export const make = (options: Options): Effect.Effect<RateLimiter, InvalidOptionsError, RateLimiterStore> =>
  Make.make(options)

/**
 * Guards `effect` with `limiter` for `key`: `effect.pipe(RateLimiter.protect(limiter, key))` or
 * `RateLimiter.protect(effect, limiter, key)`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (limiter: RateLimiter, key: string): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimitedError | StoreError, R>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    limiter: RateLimiter,
    key: string
  ): Effect.Effect<A, E | RateLimitedError | StoreError, R>
} = dual(
  3,
  <A, E, R>(effect: Effect.Effect<A, E, R>, limiter: RateLimiter, key: string) => limiter.protect(key)(effect)
)

/**
 * The answer of an all-or-nothing group (`all`): `allowed` only if every limit admitted. `limit`,
 * `remaining`, `resetAfter` and `code` are those of the binding limit — when refused, the refusing
 * limit with the longest `retryAfter` (so waiting `retryAfter` clears every refusal seen); when
 * admitted, the limit with the least left. `remaining` when refused is the least any limit has.
 *
 * @since 0.3.0
 * @category models
 */
export interface AllDecision extends Decision {
  /** the name of the binding limit */
  readonly binding: string
  /** the name of the limit that refused (the longest retry-after), or `undefined` when admitted */
  readonly refusedBy: string | undefined
  /**
   * each limit's own answer, in the order given; when the group was refused, an admitting limit's
   * answer tells what it would have had left (nothing was taken from it)
   */
  readonly decisions: ReadonlyArray<Decision>
}

/**
 * Several limiters applied to one request all-or-nothing. A `key` is either one identity for
 * every limit (per second and per hour for one user) or one key per limiter, in order (per user,
 * per tenant, global).
 *
 * @since 0.3.0
 * @category models
 */
export interface All {
  /** the limiters' names joined with `+` */
  readonly name: string
  readonly limiters: ReadonlyArray<RateLimiter>
  /** Takes `cost` from every limit, or from none when any refuses; never waits. */
  readonly take: (
    key: string | ReadonlyArray<string>,
    cost?: number
  ) => Effect.Effect<AllDecision, StoreError | RateLimitedError>
  /**
   * Admits `cost` or fails with the binding limit's `RateLimitedError` (`onExceeded: "fail"`), or
   * waits out the longest retry-after and tries again while the wait fits (`"wait"`).
   */
  readonly acquire: (
    key: string | ReadonlyArray<string>,
    cost?: number
  ) => Effect.Effect<void, StoreError | RateLimitedError>
  /** Runs `effect` once one unit is admitted by every limit. */
  readonly protect: (
    key: string | ReadonlyArray<string>
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimitedError | StoreError, R>
}

/**
 * Options of `all`.
 *
 * @since 0.3.0
 * @category models
 */
export interface AllOptions {
  /** what `acquire` / `protect` do when a limit refuses (default `"fail"`) */
  readonly onExceeded?: "fail" | "wait" | undefined
  /** in `"wait"` mode, the longest wait accepted (default: unbounded) */
  readonly maxWait?: Duration.DurationInput | undefined
  /** in `"wait"` mode, what is left of the caller's deadline (default `Timeout.remaining`) */
  readonly deadline?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}

/**
 * Applies several limiters to one request all-or-nothing: a request is admitted only if every
 * limit admits it, and takes from none of them otherwise — a request refused per hour does not
 * spend the per-second budget. In memory the group is decided in one synchronous step; on Redis in
 * one Lua script over every limit's key. On a Redis Cluster a script's keys must share a slot: the
 * store wraps each identity in a hash tag, so limits over one identity always do, while different
 * identities (user, tenant) need a single Redis or fail with `StoreError` (`CROSSSLOT`).
 *
 * The limiters must come from `make` on one store and have distinct names (the name namespaces
 * the keys). Fails with `InvalidOptionsError` otherwise.
 *
 * @since 0.3.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimiter, RateLimiterStore } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const perSecond = yield* RateLimiter.make({ name: "api.second", algorithm: RateLimiter.gcra({ limit: 10, period: "1 second" }) })
 *   const perHour = yield* RateLimiter.make({ name: "api.hour", algorithm: RateLimiter.fixedWindow({ limit: 1000, window: "1 hour" }) })
 *   const limits = yield* RateLimiter.all([perSecond, perHour])
 *   const decision = yield* limits.take("user-42")
 *   // decision.refusedBy: "api.second" | "api.hour" | undefined
 *   return decision
 * }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
 * ```
 */
export const all = (
  limiters: ReadonlyArray<RateLimiter>,
  options: AllOptions = {}
): Effect.Effect<All, InvalidOptionsError> =>
  Effect.flatMap(
    makeAll(limiters, options, Timeout.remaining),
    (group) => Shadow.attach(group, Shadow.rateLimiterGroup)
  )

/**
 * One key's state as a live view shows it (`view`).
 *
 * @since 0.4.0
 * @category models
 */
export interface KeyState {
  readonly key: string
  readonly limit: number
  /** what a take could have now */
  readonly remaining: number
  /** until one more unit is available; zero when the key is full */
  readonly nextRefill: Duration.Duration
  /** until the key is full again; zero when it is */
  readonly resetAfter: Duration.Duration
}

/**
 * A live, read-only view of one key of `limiter`: `get` reads what the key has left and when it
 * refills, consuming nothing; `changes` emits that at subscription, after every change made
 * through the limiter's store in this process (takes, `all` groups, cancelled reservations), and
 * whenever a refill moves `remaining`. On Redis a read is two read-only script calls; takes by
 * other instances are seen at the next read (a refill, or a take here). Fails with
 * `InvalidOptionsError` for a limiter not made by `make`, or a store without views.
 *
 * @since 0.4.0
 * @category accessors
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { RateLimiter, RateLimiterStore } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.make({ name: "api", algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 5 }) })
 *   const quota = yield* RateLimiter.view(limiter, "user-42")
 *   yield* quota.changes.pipe(
 *     Stream.runForEach((s) => Effect.log(`${s.remaining}/${s.limit}, next in ${s.nextRefill}`)),
 *     Effect.forkScoped
 *   )
 *   yield* limiter.take("user-42")
 * }).pipe(Effect.scoped, Effect.provide(RateLimiterStore.layerMemory()))
 * ```
 */
export const view: (
  limiter: RateLimiter,
  key: string
) => Effect.Effect<Subscribable.Subscribable<KeyState, StoreError>, InvalidOptionsError> = viewOf

/**
 * A limiter as a layer under your own tag.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Context, Layer } from "effect"
 * import { RateLimiter, RateLimiterStore } from "effect-resilience"
 *
 * class ApiLimiter extends Context.Tag("app/ApiLimiter")<ApiLimiter, RateLimiter.RateLimiter>() {}
 * const ApiLimiterLive = RateLimiter.layer(ApiLimiter, {
 *   name: "api",
 *   algorithm: RateLimiter.gcra({ limit: 100, period: "1 second" })
 * }).pipe(Layer.provide(RateLimiterStore.layerMemory()))
 * ```
 */
export const layer = <I>(
  tag: Context.Tag<I, RateLimiter>,
  options: Options
): Layer.Layer<I, InvalidOptionsError, RateLimiterStore> => Layer.effect(tag, make(options))

/**
 * Limiters per tier (seed pattern: free / basic / premium plans, each with its own rate). A
 * request names its tier and its key; an unknown tier uses `fallback`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tiered<T extends string> {
  /** each tier's limiter; for a tier of several limits, the first of them */
  readonly limiters: { readonly [K in T]: RateLimiter }
  /**
   * the tiers of several limits, applied all-or-nothing (`all`) by `take` and `protect`
   *
   * @since 0.3.0
   */
  readonly groups: { readonly [K in T]?: All }
  readonly limiter: (tier: string) => RateLimiter
  readonly take: (tier: string, key: string, cost?: number) => Effect.Effect<Decision, StoreError | RateLimitedError>
  readonly protect: (
    tier: string,
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimitedError | StoreError, R>
}

/**
 * Builds one limiter per tier, named `${name}.${tier}` (so metrics are per tier).
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { RateLimiter } from "effect-resilience"
 *
 * const plans = RateLimiter.tiered({
 *   name: "api",
 *   tiers: {
 *     free: RateLimiter.tokenBucket({ rate: 10, burst: 20 }),
 *     basic: RateLimiter.tokenBucket({ rate: 50, burst: 100 }),
 *     premium: RateLimiter.tokenBucket({ rate: 200, burst: 400 })
 *   },
 *   fallback: "free"
 * })
 * // const tiers = yield* plans; yield* handler.pipe(tiers.protect(user.plan, user.id))
 * ```
 */
export const tiered = <T extends string>(options: {
  readonly name: string
  /** a tier's algorithm, or several (per second and per day) applied all-or-nothing */
  readonly tiers: { readonly [K in T]: Algorithm | ReadonlyArray<Algorithm> }
  readonly fallback: NoInfer<T>
  readonly onExceeded?: "fail" | "wait" | undefined
  readonly maxWait?: Duration.DurationInput | undefined
  readonly deadline?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}): Effect.Effect<Tiered<T>, InvalidOptionsError, RateLimiterStore> => makeTiered(options, make, all)

/**
 * A `Schedule` that spaces recurrences at `rate` per second (or `limit` per `per`), like a
 * ticker: `Stream.schedule(stream, RateLimiter.pacing(10))` emits at most ten elements a second,
 * `Effect.repeat(task, RateLimiter.pacing(2))` runs a loop twice a second. Missed ticks are not
 * replayed (`Schedule.fixed`).
 *
 * @since 0.1.0
 * @category schedules
 */
export const pacing = (
  rate: number | { readonly limit: number; readonly per: Duration.DurationInput }
): Schedule.Schedule<number> => Make.pacing(rate)
