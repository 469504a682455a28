/**
 * Circuit breakers: the adaptive breaker of Google's SRE book (go-zero's default), and
 * state-machine breakers (gobreaker, resilience4j) tripping on consecutive failures, on a failure
 * or slow-call rate over a count or time window, or on a predicate of your own.
 *
 * A breaker is a plain service value: build it with `make` (scoped), provide it with `layer`, or
 * keep one per key in a `Registry`. Wrap work with `protect`; callers that cannot wrap the work in
 * one effect (HTTP middleware) use the two-step `allow`, which yields a `Permit`.
 *
 * Outcomes: a success counts as success; a failure counts as failure unless `isFailure(error)`
 * says otherwise (then it counts as success: the downstream answered) or `isExcluded(error)` says
 * to ignore it; a defect and a `TimeoutError` always count as failures (the defect is re-raised);
 * interruption of the caller counts as neither and gives a half-open probe slot back.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { CircuitOpenError, TimeoutError } from "./Errors.js"
import type { InvalidOptionsError } from "./Errors.js"
import * as Core from "./internal/breaker/core.js"
import * as Machine from "./internal/breaker/machine.js"
import * as IdleCache from "./internal/idleCache.js"
import {
  decodeOptions,
  Name,
  NonNegativeDuration,
  NonNegativeNumber,
  parseDurationInput,
  PositiveDuration,
  PositiveInt,
  PositiveNumber,
  Probability
} from "./internal/options.js"

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
  readonly allow: Effect.Effect<Permit, CircuitOpenError>
  readonly state: Effect.Effect<State>
  readonly stats: Effect.Effect<Stats>
  readonly changes: Stream.Stream<StateChange>
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

const PolicyTypeId: unique symbol = Symbol.for("effect-resilience/CircuitBreaker/Policy")

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
// Option decoding
// ---------------------------------------------------------------------------------------------

const Fn = Schema.declare(
  (u: unknown): u is (...args: ReadonlyArray<any>) => any => typeof u === "function",
  { identifier: "Function", message: () => "expected a function" }
)

const isPositiveDurationInput = (u: unknown): boolean => {
  const parsed = parseDurationInput(u)
  return Either.isRight(parsed) && Duration.isFinite(parsed.right) && Duration.toMillis(parsed.right) > 0
}

const OpenForSchema = Schema.declare(
  (u: unknown): u is OpenFor => Schedule.isSchedule(u) || isPositiveDurationInput(u),
  { identifier: "OpenFor", message: () => "expected a positive duration or a Schedule" }
)

const common = {
  name: Name,
  isFailure: Schema.optional(Fn),
  isExcluded: Schema.optional(Fn)
}

const machineFields = {
  ...common,
  openFor: Schema.optionalWith(OpenForSchema, { default: () => "60 seconds" as OpenFor }),
  halfOpenMaxCalls: Schema.optionalWith(PositiveInt, { default: () => 1 })
}

const slowFields = {
  slowCallDuration: Schema.optional(PositiveDuration),
  slowCallRateThreshold: Schema.optionalWith(Probability, { default: () => 1 })
}

const windowCheck = <A extends { readonly window: Duration.Duration; readonly buckets: number }>(o: A) =>
  Duration.toMillis(o.window) / o.buckets >= 1 ||
  { path: ["window"], message: `window must give each of the ${o.buckets} buckets at least 1 millisecond` }

const SreSchema = Schema.Struct({
  ...common,
  k: Schema.optionalWith(PositiveNumber, { default: () => 1.5 }),
  minK: Schema.optionalWith(PositiveNumber, { default: () => 1.1 }),
  protection: Schema.optionalWith(NonNegativeNumber, { default: () => 5 }),
  window: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(10) }),
  buckets: Schema.optionalWith(PositiveInt, { default: () => 40 }),
  forcePassAfter: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(1) })
}).pipe(
  // below 1 the formula drops calls while every call succeeds: (1 − k) · accepts > protection
  Schema.filter((o) => o.k >= 1 || { path: ["k"], message: "k must be at least 1" }),
  Schema.filter((o) => o.minK <= o.k || { path: ["minK"], message: "minK must not exceed k" }),
  Schema.filter(windowCheck)
)

const ConsecutiveSchema = Schema.Struct({
  ...machineFields,
  threshold: Schema.optionalWith(PositiveInt, { default: () => 5 })
})

const CountWindowSchema = Schema.Struct({
  ...machineFields,
  ...slowFields,
  size: Schema.optionalWith(PositiveInt, { default: () => 100 }),
  minimumCalls: Schema.optional(PositiveInt),
  failureRateThreshold: Schema.optionalWith(Probability, { default: () => 0.5 })
}).pipe(
  Schema.filter((o) =>
    o.minimumCalls === undefined || o.minimumCalls <= o.size ||
    { path: ["minimumCalls"], message: "minimumCalls must not exceed size" }
  )
)

const TimeWindowSchema = Schema.Struct({
  ...machineFields,
  ...slowFields,
  window: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(10) }),
  buckets: Schema.optionalWith(PositiveInt, { default: () => 10 }),
  minimumCalls: Schema.optionalWith(PositiveInt, { default: () => 20 }),
  failureRateThreshold: Schema.optionalWith(Probability, { default: () => 0.5 })
}).pipe(Schema.filter(windowCheck))

const CustomSchema = Schema.Struct({
  ...machineFields,
  readyToTrip: Schema.optional(Fn),
  interval: Schema.optionalWith(NonNegativeDuration, { default: () => Duration.zero })
})

const decodeSre = decodeOptions("CircuitBreaker.sre", SreSchema)
const decodeConsecutive = decodeOptions("CircuitBreaker.consecutive", ConsecutiveSchema)
const decodeCountWindow = decodeOptions("CircuitBreaker.countWindow", CountWindowSchema)
const decodeTimeWindow = decodeOptions("CircuitBreaker.timeWindow", TimeWindowSchema)
const decodeCustom = decodeOptions("CircuitBreaker.custom", CustomSchema)

interface Built {
  readonly name: string
  readonly isFailure: ((error: unknown) => boolean) | undefined
  readonly isExcluded: ((error: unknown) => boolean) | undefined
  readonly core: Core.Core
  /** the machine, for the open-period schedule */
  readonly machine?: Machine.State
  readonly openFor?: OpenFor
}

const slowMillisOf = (o: { readonly slowCallDuration?: Duration.Duration | undefined }): number =>
  o.slowCallDuration === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(o.slowCallDuration)

const slowRateOf = (o: { readonly slowCallDuration?: Duration.Duration | undefined; slowCallRateThreshold: number }) =>
  o.slowCallDuration === undefined ? Number.POSITIVE_INFINITY : o.slowCallRateThreshold

const defaultReadyToTrip = (c: Counts): boolean => c.consecutiveFailures > 5

const buildPolicy = (p: Policy, now: number): Effect.Effect<Built, InvalidOptionsError> => {
  const machine = (
    o: {
      readonly name: string
      readonly isFailure?: any
      readonly isExcluded?: any
      readonly openFor: OpenFor
      readonly halfOpenMaxCalls: number
    },
    rule: Machine.Rule,
    intervalMillis: number,
    slowMillis: number
  ): Built => {
    const core = Core.machine({ intervalMillis, halfOpenMaxCalls: o.halfOpenMaxCalls, rule }, 0, slowMillis, now)
    return {
      name: o.name,
      isFailure: o.isFailure,
      isExcluded: o.isExcluded,
      core,
      machine: core.machine,
      openFor: o.openFor
    }
  }
  switch (p._tag) {
    case "Sre":
      return Effect.map(decodeSre(p.options), (o) => ({
        name: o.name,
        isFailure: o.isFailure,
        isExcluded: o.isExcluded,
        core: Core.sre({
          k: o.k,
          minK: o.minK,
          protection: o.protection,
          windowMillis: Duration.toMillis(o.window),
          buckets: o.buckets,
          forcePassAfterMillis: Duration.toMillis(o.forcePassAfter)
        }, now)
      }))
    case "Consecutive":
      return Effect.map(
        decodeConsecutive(p.options),
        (o) => machine(o, Machine.consecutiveRule(o.threshold), 0, Number.POSITIVE_INFINITY)
      )
    case "CountWindow":
      return Effect.map(decodeCountWindow(p.options), (o) =>
        machine(
          o,
          Machine.countWindowRule(o.size, {
            minimumCalls: o.minimumCalls ?? o.size,
            failureRateThreshold: o.failureRateThreshold,
            slowCallRateThreshold: slowRateOf(o)
          }),
          0,
          slowMillisOf(o)
        ))
    case "TimeWindow":
      return Effect.map(decodeTimeWindow(p.options), (o) =>
        machine(
          o,
          Machine.timeWindowRule(Duration.toMillis(o.window), o.buckets, {
            minimumCalls: o.minimumCalls,
            failureRateThreshold: o.failureRateThreshold,
            slowCallRateThreshold: slowRateOf(o)
          }, now),
          0,
          slowMillisOf(o)
        ))
    case "Custom":
      return Effect.map(decodeCustom(p.options), (o) =>
        machine(
          o,
          Machine.customRule(o.readyToTrip ?? defaultReadyToTrip),
          Duration.toMillis(o.interval),
          Number.POSITIVE_INFINITY
        ))
  }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

const requestsCounter = (name: string, outcome: string) =>
  Metric.fromMetricKey(
    MetricKey.counter("resilience_breaker_requests_total").pipe(
      MetricKey.tagged("name", name),
      MetricKey.tagged("outcome", outcome)
    )
  )

const stateChangesCounter = (name: string, from: State, to: State) =>
  Metric.counter("resilience_breaker_state_changes_total").pipe(
    Metric.tagged("name", name),
    Metric.tagged("from", from),
    Metric.tagged("to", to)
  )

const stateGauge = (name: string) =>
  Metric.fromMetricKey(MetricKey.gauge("resilience_breaker_state").pipe(MetricKey.tagged("name", name)))

/**
 * The value `resilience_breaker_state{name}` takes for each state.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateGaugeValue: Readonly<Record<State, number>> = { Closed: 0, HalfOpen: 1, Open: 2, Isolated: 3 }

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

// Builds match handlers from two arguments. Passing the per-call closures as arguments keeps them
// anonymous, which measures cheaper than object-literal methods under loaders that preserve
// function names (tsx, esbuild's keepNames).
const handlers = <A, E, B, E2>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<B, E2>,
  onSuccess: (a: A) => Effect.Effect<B, E2>
) => ({ onFailure, onSuccess })

const LAST_ERRORS = 5
const everyErrorFails = () => true

const formatReason = (reason: unknown): string => {
  if (reason instanceof Error) return reason.message === "" ? reason.name : `${reason.name}: ${reason.message}`
  if (typeof reason === "object" && reason !== null && "_tag" in reason) return String(reason._tag)
  return String(reason)
}

interface Internal {
  readonly breaker: CircuitBreaker
  /** epoch millis of the last call (admitted or rejected) */
  readonly lastUsed: () => number
  readonly currentState: () => State
}

const makeInternal = (p: Policy): Effect.Effect<Internal, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    // The breaker reads time from the Clock in scope when it is built (a TestClock in tests): one
    // synchronous read per call, no service lookup on the hot path.
    const clock = yield* Effect.clock
    const createdAt = clock.unsafeCurrentTimeMillis()
    const built = yield* buildPolicy(p, createdAt)
    const { core, name } = built
    const defaultIsFailure = built.isFailure ?? everyErrorFails
    const isExcluded = built.isExcluded
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<StateChange>(), PubSub.shutdown)

    const mSuccess = requestsCounter(name, "success")
    const mFailure = requestsCounter(name, "failure")
    const mIgnored = requestsCounter(name, "ignored")
    const mRejected = requestsCounter(name, "rejected")
    const mState = stateGauge(name)
    mState.unsafeUpdate(0, [])

    let isolated = false
    let lastUsed = createdAt
    const lastErrors: Array<RecordedError> = []
    const currentState = (): State => (isolated ? "Isolated" : core.state())

    // The open period of the state machines: a Schedule is stepped after each trip so the next
    // trip uses its next delay; a plain duration is fixed.
    const machine = built.machine
    let stepOpenFor: (now: number) => Effect.Effect<void> = () => Effect.void
    let resetOpenFor: (now: number) => Effect.Effect<void> = () => Effect.void
    if (machine !== undefined && built.openFor !== undefined) {
      const openFor = built.openFor
      if (Schedule.isSchedule(openFor)) {
        const delays = Schedule.delays(openFor)
        let scheduleState: unknown = delays.initial
        stepOpenFor = (now) =>
          Effect.map(delays.step(now, undefined, scheduleState), ([next, delay, decision]) => {
            if (ScheduleDecision.isDone(decision)) return
            scheduleState = next
            machine.openMillis = Duration.toMillis(delay)
          })
        resetOpenFor = (now) =>
          Effect.suspend(() => {
            scheduleState = delays.initial
            return stepOpenFor(now)
          })
      } else {
        machine.openMillis = Duration.toMillis(Duration.decode(openFor))
      }
      yield* resetOpenFor(createdAt)
    }

    const publish = (change: StateChange): Effect.Effect<void> => {
      hub.unsafeOffer(change)
      mState.unsafeUpdate(stateGaugeValue[change.to], [])
      const errors = lastErrors.map((e) => `${new Date(e.at).toISOString()} ${formatReason(e.reason)}`)
      const message = `circuit breaker "${name}" ${change.from} → ${change.to}`
      const log = change.to === "Closed" ? Effect.logInfo(message) : Effect.logWarning(message)
      return Effect.zipRight(
        Metric.increment(stateChangesCounter(name, change.from, change.to)),
        log.pipe(Effect.annotateLogs({ breaker: name, from: change.from, to: change.to, lastErrors: errors }))
      )
    }

    // Publishes the state changes the core recorded in its last synchronous step. Uninterruptible:
    // the changes have left `pending`, so a caller interrupted half-way would lose them (and the
    // step of the open-period schedule). It runs only when the state changed.
    const flush: Effect.Effect<void> = Effect.uninterruptible(Effect.suspend(() => {
      const changes = core.pending.splice(0, core.pending.length)
      return Effect.forEach(changes, (t) => {
        const change: StateChange = { name, from: t.from, to: t.to, at: t.at }
        const step = t.to === "Open" ? stepOpenFor(t.at) : t.to === "Closed" ? resetOpenFor(t.at) : Effect.void
        return Effect.zipRight(step, isolated ? Effect.void : publish(change))
      }, { discard: true })
    }))

    const recordFailure = (token: number, start: number, end: number, reason: unknown) => {
      mFailure.unsafeUpdate(1, [])
      if (lastErrors.length === LAST_ERRORS) lastErrors.shift()
      lastErrors.push({ at: end, reason })
      core.failure(token, end, end - start)
    }

    // Records the outcome of a failed call and returns the cause unchanged.
    const recordCause = <E>(
      cause: Cause.Cause<E>,
      token: number,
      start: number,
      end: number,
      isFailure: (error: E) => boolean
    ): void => {
      if (Cause.isInterruptedOnly(cause)) {
        mIgnored.unsafeUpdate(1, [])
        core.ignore(token, end)
        return
      }
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure)) {
        recordFailure(token, start, end, Cause.squash(cause))
        return
      }
      const error = failure.value
      if (error instanceof TimeoutError) {
        recordFailure(token, start, end, error)
      } else if (isExcluded !== undefined && isExcluded(error)) {
        mIgnored.unsafeUpdate(1, [])
        core.ignore(token, end)
      } else if (isFailure(error)) {
        recordFailure(token, start, end, error)
      } else {
        mSuccess.unsafeUpdate(1, [])
        core.success(token, end, end - start)
      }
    }

    // Rejections are built once per (state, retry-after millisecond): an error value costs
    // microseconds to construct, and a breaker under load rejects many calls per millisecond.
    let lastRejection: CircuitOpenError | undefined
    let lastRejectionState: State = "Closed"
    let lastRejectionMillis = Number.NaN
    const rejection = (now: number): CircuitOpenError => {
      const current = currentState()
      const state = current === "Closed" ? "Open" : current
      const retryAfterMillis = isolated ? Number.NaN : core.retryAfterMillis(now)
      if (
        lastRejection !== undefined && lastRejectionState === state &&
        (lastRejectionMillis === retryAfterMillis ||
          (Number.isNaN(retryAfterMillis) && Number.isNaN(lastRejectionMillis)))
      ) return lastRejection
      lastRejection = new CircuitOpenError(
        Number.isNaN(retryAfterMillis)
          ? { breaker: name, state }
          : { breaker: name, state, retryAfter: Duration.millis(retryAfterMillis) },
        true
      )
      lastRejectionState = state
      lastRejectionMillis = retryAfterMillis
      return lastRejection
    }

    // A call rejected because the breaker is isolated: the core did not decide it, so it is told
    // (the rejection counts in `stats.rejections` like any other).
    const rejectIsolated = (now: number): Effect.Effect<never, CircuitOpenError> => {
      core.rejected(now)
      return reject(now)
    }

    const reject = (now: number): Effect.Effect<never, CircuitOpenError> => {
      mRejected.unsafeUpdate(1, [])
      const error = rejection(now)
      return core.pending.length === 0 ? Effect.fail(error) : Effect.zipRight(flush, Effect.fail(error))
    }

    // An interrupted call counts as neither, so a Closed call (and any call of the adaptive breaker)
    // records its outcome with one plain match — no uninterruptible region on the hot path. The
    // runtime skips that match when the caller is interrupted, so such a call reports nothing: a
    // Closed state machine therefore counts `requests` when an outcome arrives, not at admission,
    // and an interrupted call never enters them (wrapping every call uninterruptibly to observe the
    // interruption measured twice the cost of the happy path). A
    // half-open probe holds a slot that must come back however its caller ends: when a call may take
    // one (HalfOpen, or Open with the open period over), taking the slot, publishing the state change
    // and installing the outcome handler happen in one uninterruptible region, and only the work
    // itself is interruptible.
    const mayProbe = (now: number): boolean =>
      machine !== undefined &&
      (machine.state === "HalfOpen" || (machine.state === "Open" && now >= machine.openUntil))

    const recordFailed = <E>(
      cause: Cause.Cause<E>,
      token: number,
      start: number,
      isFailure: (error: E) => boolean
    ): Effect.Effect<never, E> => {
      recordCause(cause, token, start, clock.unsafeCurrentTimeMillis(), isFailure)
      return core.pending.length === 0 ? Effect.failCause(cause) : Effect.zipRight(flush, Effect.failCause(cause))
    }

    const record = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      token: number,
      start: number,
      isFailure: (error: E) => boolean
    ): Effect.Effect<A, E, R> =>
      Effect.matchCauseEffect(
        effect,
        handlers(
          (cause: Cause.Cause<E>) => recordFailed(cause, token, start, isFailure),
          (a: A) => {
            mSuccess.unsafeUpdate(1, [])
            // outcomes are recorded when they arrive (a trip starts the open period then)
            const end = clock.unsafeCurrentTimeMillis()
            core.success(token, end, end - start)
            return core.pending.length === 0 ? Effect.succeed(a) : Effect.as(flush, a)
          }
        )
      )

    const admitted = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      token: number,
      now: number,
      isFailure: (error: E) => boolean
    ): Effect.Effect<A, E, R> =>
      core.pending.length === 0
        ? record(effect, token, now, isFailure)
        : Effect.zipRight(flush, record(effect, token, now, isFailure))

    const acquireAndRun = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      now: number,
      isFailure: (error: E) => boolean
    ): Effect.Effect<A, E | CircuitOpenError, R> => {
      const token = core.acquire(now)
      if (token >= 0) return admitted(effect, token, now, isFailure)
      if (token === Core.NEED_RANDOM) {
        return Effect.randomWith((random) =>
          Effect.flatMap(random.next, (u): Effect.Effect<A, E | CircuitOpenError, R> => {
            const second = core.acquireRandom(now, u)
            return second >= 0 ? admitted(effect, second, now, isFailure) : reject(now)
          })
        )
      }
      return reject(now)
    }

    const protect = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      options?: ProtectOptions<E>
    ): Effect.Effect<A, E | CircuitOpenError, R> => {
      const isFailure: (error: E) => boolean = options?.isFailure ?? defaultIsFailure
      return Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        lastUsed = now
        if (isolated) return rejectIsolated(now)
        if (mayProbe(now)) {
          return Effect.uninterruptibleMask((restore) => acquireAndRun(restore(effect), now, isFailure))
        }
        return acquireAndRun(effect, now, isFailure)
      })
    }

    const makePermit = (token: number, start: number): Permit => {
      let done = false
      const settle = (f: (end: number) => void): Effect.Effect<void> =>
        Effect.suspend(() => {
          if (done) return Effect.void
          done = true
          f(clock.unsafeCurrentTimeMillis())
          return core.pending.length === 0 ? Effect.void : flush
        })
      return {
        success: settle((end) => {
          mSuccess.unsafeUpdate(1, [])
          core.success(token, end, end - start)
        }),
        failure: (reason) => settle((end) => recordFailure(token, start, end, reason)),
        ignore: settle((end) => {
          mIgnored.unsafeUpdate(1, [])
          core.ignore(token, end)
        })
      }
    }

    const permitted = (token: number, now: number): Effect.Effect<Permit> =>
      core.pending.length === 0
        ? Effect.succeed(makePermit(token, now))
        : Effect.as(flush, makePermit(token, now))

    const acquirePermit = (now: number): Effect.Effect<Permit, CircuitOpenError> => {
      const token = core.acquire(now)
      if (token >= 0) return permitted(token, now)
      if (token === Core.NEED_RANDOM) {
        return Effect.randomWith((random) =>
          Effect.flatMap(random.next, (u) => {
            const second = core.acquireRandom(now, u)
            return second >= 0 ? permitted(second, now) : reject(now)
          })
        )
      }
      return reject(now)
    }

    const allow: Effect.Effect<Permit, CircuitOpenError> = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      lastUsed = now
      if (isolated) return rejectIsolated(now)
      // a probe slot reaches the caller as a permit, or is given back if the caller is interrupted
      if (mayProbe(now)) {
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            acquirePermit(now),
            (permit) => Effect.onInterrupt(restore(Effect.succeed(permit)), () => permit.ignore)
          )
        )
      }
      return acquirePermit(now)
    })

    const isolate: Effect.Effect<void> = Effect.suspend(() => {
      if (isolated) return Effect.void
      const now = clock.unsafeCurrentTimeMillis()
      const from = core.state()
      isolated = true
      return publish({ name, from, to: "Isolated", at: now })
    })

    const reset: Effect.Effect<void> = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const from = currentState()
      isolated = false
      core.pending.length = 0
      core.reset(now)
      lastErrors.length = 0
      const announce = from === "Closed" ? Effect.void : publish({ name, from, to: "Closed", at: now })
      return Effect.zipRight(resetOpenFor(now), announce)
    })

    // `state` and `stats` see the changes time alone causes (Open → HalfOpen once the open period
    // is over), as a call would, and publish them: an idle breaker does not report Open forever.
    const state: Effect.Effect<State> = Effect.suspend(() => {
      core.tick(clock.unsafeCurrentTimeMillis())
      return core.pending.length === 0 ? Effect.succeed(currentState()) : Effect.as(flush, currentState())
    })

    const stats: Effect.Effect<Stats> = Effect.suspend(() => {
      const s = core.stats(clock.unsafeCurrentTimeMillis())
      const snapshot: Stats = { name, state: currentState(), ...s, lastErrors: lastErrors.slice() }
      return core.pending.length === 0 ? Effect.succeed(snapshot) : Effect.as(flush, snapshot)
    })

    const breaker: CircuitBreaker = {
      name,
      protect,
      allow,
      state,
      stats,
      changes: Stream.fromPubSub(hub),
      isolate,
      reset
    }
    return { breaker, lastUsed: () => lastUsed, currentState }
  })

/**
 * Builds a breaker from a policy, failing with `InvalidOptionsError` (naming the option) when an
 * option is invalid. Scoped: closing the scope ends the `changes` stream.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (policy: Policy): Effect.Effect<CircuitBreaker, InvalidOptionsError, Scope.Scope> =>
  Effect.map(makeInternal(policy), (internal) => internal.breaker)

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

const optional = <A>(config: Config.Config<A>) => Config.option(config)

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
export const policyConfig: Config.Config<Policy> = Config.all({
  policy: Config.literal("sre", "consecutive", "countWindow", "timeWindow")("policy").pipe(Config.withDefault("sre")),
  name: Config.string("name"),
  k: optional(Config.number("k")),
  minK: optional(Config.number("minK")),
  protection: optional(Config.number("protection")),
  window: optional(Config.duration("window")),
  buckets: optional(Config.integer("buckets")),
  forcePassAfter: optional(Config.duration("forcePassAfter")),
  threshold: optional(Config.integer("threshold")),
  openFor: optional(Config.duration("openFor")),
  halfOpenMaxCalls: optional(Config.integer("halfOpenMaxCalls")),
  size: optional(Config.integer("size")),
  minimumCalls: optional(Config.integer("minimumCalls")),
  failureRateThreshold: optional(Config.number("failureRateThreshold")),
  slowCallDuration: optional(Config.duration("slowCallDuration")),
  slowCallRateThreshold: optional(Config.number("slowCallRateThreshold"))
}).pipe(Config.map(({ policy: kind, ...rest }) => {
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(rest)) {
    if (typeof value === "string") options[key] = value
    else if (Option.isOption(value)) {
      const v = value as Option.Option<unknown>
      if (Option.isSome(v)) options[key] = v.value
    }
  }
  const o = options as unknown as CommonOptions
  switch (kind) {
    case "sre":
      return sre(o)
    case "consecutive":
      return consecutive(o)
    case "countWindow":
      return countWindow(o)
    case "timeWindow":
      return timeWindow(o)
  }
}))

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
 * Breakers by name, created on first use (go-zero's `breaker.Do(name, …)`), for per-host or
 * per-route breakers. Breakers idle longer than `idleTimeToLive` are evicted (an isolated breaker
 * is kept), so the number of keys cannot grow memory without bound.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistryService {
  /** the breaker for `name`, created from the registry's policy on first use */
  readonly get: (name: string) => Effect.Effect<CircuitBreaker>
  /** runs `effect` through the breaker for `name` */
  readonly protect: (
    name: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /** the names currently held */
  readonly names: Effect.Effect<ReadonlyArray<string>>
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
  /** evict breakers unused for this long (default 10 minutes) */
  readonly idleTimeToLive?: Duration.DurationInput
}

const RegistryOptionsSchema = Schema.Struct({
  policy: Fn,
  idleTimeToLive: Schema.optionalWith(PositiveDuration, { default: () => Duration.minutes(10) })
})

const decodeRegistryOptions = decodeOptions("CircuitBreaker.layerRegistry", RegistryOptionsSchema)

/**
 * Makes a `Registry`. A background fiber, owned by the layer's scope, sweeps idle breakers every
 * half `idleTimeToLive`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (
  options: RegistryOptions
): Effect.Effect<RegistryService, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const o = yield* decodeRegistryOptions(options)
    const policyOf = o.policy as (name: string) => Policy
    // an isolated breaker is kept however long it is idle
    const cache = yield* IdleCache.make<Internal, never>({
      ttl: Duration.toMillis(o.idleTimeToLive),
      build: (name) => Effect.orDie(makeInternal(policyOf(name))),
      lastUsed: (internal) => internal.lastUsed(),
      keep: (internal) => internal.currentState() === "Isolated"
    })
    const get = (name: string): Effect.Effect<CircuitBreaker> => Effect.map(cache.get(name), (i) => i.breaker)

    return {
      get,
      protect: (name) => (effect) => Effect.flatMap(get(name), (breaker) => breaker.protect(effect)),
      names: Effect.sync(cache.keys),
      remove: cache.remove
    }
  })

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
 *   idleTimeToLive: "5 minutes"
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
