/**
 * Retry predicates and policies: which failures are worth another attempt, a policy that turns a
 * backoff schedule into what `Effect.retry` takes (with logging, a metric and an `onRetry` hook),
 * and a shared retry budget so a fleet of clients cannot turn an outage into a retry storm.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backoff, Retry } from "effect-resilience"
 *
 * const call = Effect.tryPromise(() => fetch("http://127.0.0.1:8080/quote").then((res) => res.text()))
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Retry.Budget
 *   return yield* Retry.retry(call, {
 *     name: "inventory",
 *     schedule: Backoff.exponential({ base: "100 millis", cap: "2 seconds", jitter: "full" }).pipe(Backoff.upTo(4)),
 *     budget
 *   })
 * }).pipe(Effect.provide(Retry.layerBudget({ ratio: 0.2, minPerSecond: 10 })))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import type { InvalidOptionsError } from "./Errors.js"
import { RetryableError } from "./Errors.js"
import * as internalDeadline from "./internal/deadline.js"
import { describeError } from "./internal/describeError.js"
import * as Options from "./internal/options.js"
import * as internalBudget from "./internal/retryBudget.js"
import * as transient from "./internal/transient.js"

/**
 * Whether a failure is worth retrying:
 * - transient: a `RetryableError`; a `TimeoutError` (and Effect's `TimeoutException`); a rejection
 *   of this toolkit that names a `retryAfter` (`RateLimitedError`, `OverloadedError`,
 *   `CircuitOpenError` … carrying one); a network error (Node/undici codes such as `ECONNRESET`,
 *   `ECONNREFUSED`, `ETIMEDOUT`, `EAI_AGAIN`, also when found in the `cause` chain, and an
 *   `@effect/platform` `RequestError` with reason `"Transport"`); an HTTP status 5xx or 429 (an
 *   `@effect/platform` `ResponseError`, or any error with a numeric `status` / `statusCode`);
 * - not transient: a rejection without `retryAfter` (an open breaker, a full bulkhead),
 *   `InvalidOptionsError`, a `RequestError` for a bad URL or body, any other 4xx, and anything else.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTransient: (u: unknown) => boolean = transient.isTransient

/**
 * The wrapper that marks a failure as transient (an alias of `Errors.RetryableError`).
 *
 * @since 0.1.0
 * @category errors
 */
export const Retryable = RetryableError

/**
 * @since 0.1.0
 * @category errors
 */
export type Retryable = RetryableError

/**
 * Wraps a failure in `RetryableError` so `isTransient` retries it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const retryable = (cause: unknown, options?: { readonly retryAfter?: Duration.DurationInput }): RetryableError =>
  new RetryableError(
    options?.retryAfter === undefined ? { cause } : { cause, retryAfter: Duration.decode(options.retryAfter) },
    true
  )

/**
 * Marks the failures `when` selects (all by default) as transient by wrapping them in
 * `RetryableError`; the others pass through unchanged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const markRetryable: {
  <E>(when?: (error: E) => boolean): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RetryableError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, when?: (error: E) => boolean): Effect.Effect<A, E | RetryableError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, when?: (error: E) => boolean): Effect.Effect<A, E | RetryableError, R> =>
    Effect.mapError(self, (error) => (when === undefined || when(error) ? retryable(error) : error))
)

/**
 * How long a failure asks the caller to wait: the `retryAfter` of a toolkit rejection or a
 * `RetryableError`, or the `Retry-After` header of an HTTP response error (delta seconds; an
 * HTTP-date header is read only when `now`, the current Clock time in millis, is given).
 *
 * @since 0.1.0
 * @category getters
 */
export const retryAfter = (u: unknown, now?: number): Option.Option<Duration.Duration> => {
  const millis = transient.retryAfterMillis(u, now)
  return millis === undefined ? Option.none() : Option.some(Duration.millis(millis))
}

// ---------------------------------------------------------------------------------------------
// budget
// ---------------------------------------------------------------------------------------------

/**
 * What a retry budget reports: requests and retries seen in the window, and how many retries
 * the window allows in total.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetStats {
  readonly requests: number
  readonly retries: number
  readonly capacity: number
}

/**
 * A retry budget: retries may be at most `ratio` of the requests seen over a rolling window plus
 * `minPerSecond` per second of that window. Share one between every caller of a downstream.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget {
  readonly name: string
  /** counts one original request (not a retry) */
  readonly recordRequest: Effect.Effect<void>
  /** withdraws one retry; `false`, and nothing withdrawn, when the budget is spent */
  readonly tryAcquire: Effect.Effect<boolean>
  readonly stats: Effect.Effect<BudgetStats>
  /** `recordRequest` at a time read from the `Clock` by the caller */
  readonly unsafeRecordRequest: (now: number) => void
  /** `tryAcquire` at a time read from the `Clock` by the caller */
  readonly unsafeTryAcquire: (now: number) => boolean
}

/**
 * The shared retry budget of a service.
 *
 * @since 0.1.0
 * @category services
 */
export class Budget extends Context.Tag("effect-resilience/RetryBudget")<Budget, RetryBudget>() {}

/**
 * Options of a retry budget. Defaults: `ratio` 0.2 (retries ≤ 20 % of requests), `minPerSecond`
 * 10, `window` 10 seconds in 10 buckets.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetOptions {
  readonly name?: string | undefined
  readonly ratio?: number | undefined
  readonly minPerSecond?: number | undefined
  readonly window?: Duration.DurationInput | undefined
  readonly buckets?: number | undefined
}

const BudgetOptionsSchema = () =>
  Schema.Struct({
    name: Schema.optionalWith(Options.Name, { default: () => "default" }),
    ratio: Schema.optionalWith(Options.NonNegativeNumber, { default: () => 0.2 }),
    minPerSecond: Schema.optionalWith(Options.NonNegativeNumber, { default: () => 10 }),
    window: Schema.optionalWith(Options.PositiveDuration, { default: () => Duration.seconds(10) }),
    buckets: Schema.optionalWith(Options.PositiveInt, { default: () => 10 })
  }).pipe(
    Schema.filter((o) =>
      Duration.toMillis(o.window) / o.buckets >= 1 ||
      { path: ["buckets"], message: "expected buckets of at least 1 ms" }
    )
  )
const decodeBudget = Options.decodeOptionsEither("Retry.Budget", BudgetOptionsSchema)

const BudgetExhaustedTotal = Metric.counter("resilience_retry_budget_exhausted_total", {
  description: "retries refused because the retry budget was spent",
  incremental: true
})

/**
 * Builds a retry budget.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeBudget = (options: BudgetOptions = {}): Effect.Effect<RetryBudget, InvalidOptionsError> =>
  Effect.flatMap(
    Effect.suspend(() => {
      const decoded = decodeBudget(options)
      return decoded._tag === "Right" ? Effect.succeed(decoded.right) : Effect.fail(decoded.left)
    }),
    (decoded) =>
      Effect.clockWith((clock) => {
        const params: internalBudget.BudgetParams = {
          ratio: decoded.ratio,
          minPerSecond: decoded.minPerSecond,
          windowMillis: Duration.toMillis(decoded.window)
        }
        const state = internalBudget.make(params, decoded.buckets, clock.unsafeCurrentTimeMillis())
        const unsafeRecordRequest = (now: number) => internalBudget.recordRequest(state, now)
        const unsafeTryAcquire = (now: number) => internalBudget.tryRetry(state, params, now)
        const now = Effect.clockWith((c) => Effect.succeed(c.unsafeCurrentTimeMillis()))
        return Effect.succeed<RetryBudget>({
          name: decoded.name,
          recordRequest: Effect.map(now, unsafeRecordRequest),
          tryAcquire: Effect.map(now, unsafeTryAcquire),
          stats: Effect.map(now, (t) => internalBudget.stats(state, params, t)),
          unsafeRecordRequest,
          unsafeTryAcquire
        })
      })
  )

/**
 * A `Layer` providing the shared `Budget`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerBudget = (options: BudgetOptions = {}): Layer.Layer<Budget, InvalidOptionsError> =>
  Layer.effect(Budget, makeBudget(options))

// ---------------------------------------------------------------------------------------------
// policy
// ---------------------------------------------------------------------------------------------

/**
 * What `onRetry` is told before each retry.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryInfo<E> {
  readonly name: string
  /** 1 for the first retry (the second attempt), 2 for the next, … */
  readonly attempt: number
  readonly delay: Duration.Duration
  readonly error: E
}

/**
 * Options of `policy`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyOptions<Out, E, R, R2> {
  /** the backoff (see `Backoff`); it also decides how many attempts */
  readonly schedule: Schedule.Schedule<Out, E, R>
  /** which failures are retried (default `isTransient`) */
  readonly while?: ((error: E) => boolean) | undefined
  /** runs before each retry, after the retry was granted */
  readonly onRetry?: ((info: RetryInfo<E>) => Effect.Effect<void, never, R2>) | undefined
  /** label for logs and the `resilience_retries_total` metric (default `"default"`) */
  readonly name?: string | undefined
  /** a shared budget each retry must draw from; when it is spent the failure is returned at once */
  readonly budget?: RetryBudget | undefined
  /**
   * inside a `Timeout.deadline` (or `within`), skip a retry whose delay would end at or past the
   * deadline and return the failure at once instead of sleeping into a timeout (default `true`)
   */
  readonly respectDeadline?: boolean | undefined
}

/**
 * `resilience_retries_total{name}`: retries performed by policies named `name`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const retriesTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_retries_total", {
  description: "retries performed",
  incremental: true
})

/** A delay for the logs: whole milliseconds (a jittered delay has a fraction nobody needs to read). */
const formatDelay = (millis: number): string => Duration.format(Duration.millis(Math.round(millis)))

/**
 * A retry policy for `Effect.retry`: `schedule` decides the delays and the attempt count,
 * `while` which failures are retried (default `isTransient`), `budget` whether the fleet may
 * afford another retry; inside a deadline, a retry that could not start before the deadline is
 * not taken (the failure is returned at once). Before each retry the policy counts `resilience_retries_total{name}`,
 * logs at debug level with the attempt, delay (whole milliseconds, written by `Duration.format`) and error as
 * annotations, and runs `onRetry`.
 *
 * A policy only draws on a `budget`; the requests its `ratio` is a fraction of are counted by
 * `Retry.retry` (one per call). Under a plain `Effect.retry`, count them with
 * `budget.recordRequest`, or only the `minPerSecond` floor is available.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backoff, Retry } from "effect-resilience"
 *
 * const call = Effect.tryPromise(() => fetch("http://127.0.0.1:8080/quote").then((res) => res.text()))
 *
 * const policy = Retry.policy({
 *   name: "payments",
 *   schedule: Backoff.exponential({ base: "200 millis" }).pipe(Backoff.upTo(3)),
 *   onRetry: ({ attempt, delay }) => Effect.annotateCurrentSpan({ attempt, delay })
 * })
 * const resilient = Effect.retry(call, policy)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const policy = <Out, E = unknown, R = never, R2 = never>(
  options: PolicyOptions<Out, E, R, R2>
): Schedule.Schedule<Out, E, R | R2> => {
  const schedule = options.schedule
  const predicate: (error: E) => boolean = options.while ?? isTransient
  const name = options.name ?? "default"
  const budget = options.budget
  const onRetry = options.onRetry
  const respectDeadline = options.respectDeadline ?? true
  const retries = Metric.tagged(retriesTotal, "name", name)
  const exhausted = Metric.tagged(BudgetExhaustedTotal, "name", budget?.name ?? name)
  return Schedule.makeWithState(
    [schedule.initial, 0] as readonly [unknown, number],
    (now, input: E, [state, attempt]) =>
      Effect.flatMap(schedule.step(now, input, state), ([next, out, decision]) =>
        Effect.withFiberRuntime((fiber) => {
          const nextState = [next, attempt + 1] as const
          if (ScheduleDecision.isDone(decision) || !predicate(input)) {
            return Effect.succeed([nextState, out, ScheduleDecision.done] as const)
          }
          const delayMillis = ScheduleIntervals.start(decision.intervals) - now
          if (respectDeadline) {
            const deadline = fiber.getFiberRef(internalDeadline.currentDeadline)
            if (internalDeadline.pastDeadline(deadline, now, delayMillis)) {
              return Effect.as(
                Effect.logDebug("retry skipped: the deadline ends before it").pipe(
                  Effect.annotateLogs({
                    "retry.name": name,
                    "retry.delay": formatDelay(delayMillis)
                  })
                ),
                [nextState, out, ScheduleDecision.done] as const
              )
            }
          }
          if (budget !== undefined && !budget.unsafeTryAcquire(now)) {
            return Effect.as(
              Effect.zipRight(
                Metric.increment(exhausted),
                Effect.logDebug("retry budget exhausted").pipe(
                  Effect.annotateLogs({ "retry.name": name, "retry.budget": budget.name })
                )
              ),
              [nextState, out, ScheduleDecision.done] as const
            )
          }
          const info: RetryInfo<E> = {
            name,
            attempt: attempt + 1,
            delay: Duration.millis(delayMillis),
            error: input
          }
          const announce = Effect.zipRight(
            Metric.increment(retries),
            Effect.logDebug("retrying").pipe(
              Effect.annotateLogs({
                "retry.name": name,
                "retry.attempt": info.attempt,
                "retry.delay": formatDelay(delayMillis),
                "retry.error": describeError(input)
              })
            )
          )
          const all = onRetry === undefined ? announce : Effect.zipRight(announce, onRetry(info))
          return Effect.as(all, [nextState, out, decision] as const)
        }))
  )
}

/**
 * Runs `self`, retrying it under `policy(options)`. The retries draw on `options.budget`, or,
 * when none is passed, on the `Retry.Budget` service if the context holds one (it is optional:
 * without it, retries are limited by the schedule alone). With a budget, each call also counts
 * one request, which is what lets retries draw on the budget.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry: {
  <Out, E, R = never, R2 = never>(
    options: PolicyOptions<Out, NoInfer<E>, R, R2>
  ): <A, R3>(self: Effect.Effect<A, E, R3>) => Effect.Effect<A, E, R | R2 | R3>
  <A, E, R3, Out, R = never, R2 = never>(
    self: Effect.Effect<A, E, R3>,
    options: PolicyOptions<Out, NoInfer<E>, R, R2>
  ): Effect.Effect<A, E, R | R2 | R3>
} = dual(
  2,
  <A, E, R3, Out, R, R2>(
    self: Effect.Effect<A, E, R3>,
    options: PolicyOptions<Out, E, R, R2>
  ): Effect.Effect<A, E, R | R2 | R3> => {
    const given = options.budget
    if (given !== undefined) return withBudget(self, given, policy(options))
    // built once per retried effect: the run without a budget in the context, and the one drawing
    // on the last budget seen (a caller's budget rarely changes between calls)
    const plain = retryAfterFailure(self, policy(options))
    let lastBudget: RetryBudget | undefined
    let lastRun: Effect.Effect<A, E, R | R2 | R3> | undefined
    return Effect.withFiberRuntime((fiber) => {
      const found = Context.getOption(fiber.currentContext as Context.Context<never>, Budget)
      if (found._tag === "None") return plain
      const budget = found.value
      if (budget !== lastBudget) {
        lastRun = withBudget(self, budget, policy({ ...options, budget }))
        lastBudget = budget
      }
      return lastRun!
    })
  }
)

const withBudget = <A, E, R, Out, R2>(
  self: Effect.Effect<A, E, R>,
  budget: RetryBudget,
  schedule: Schedule.Schedule<Out, E, R2>
): Effect.Effect<A, E, R | R2> => {
  const run = retryAfterFailure(self, schedule)
  return Effect.clockWith((clock) => {
    budget.unsafeRecordRequest(clock.unsafeCurrentTimeMillis())
    return run
  })
}

/**
 * `Effect.retry` that builds the schedule driver only after a first failure. The success path
 * costs one failure-only frame, which a success passes without a step: the first failure is
 * handed to `Effect.catchAll` only once it has happened (the same treatment of defects and
 * interruptions as `Effect.catchAll` around the whole).
 */
const retryAfterFailure = <A, E, R, Out, R2>(
  self: Effect.Effect<A, E, R>,
  schedule: Schedule.Schedule<Out, E, R2>
): Effect.Effect<A, E, R | R2> => {
  const afterFirst = (first: E): Effect.Effect<A, E, R | R2> =>
    Effect.flatMap(Schedule.driver(schedule), (driver) => {
      const loop = (error: E): Effect.Effect<A, E, R | R2> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(self, loop)
        })
      return loop(first)
    })
  return Effect.catchAllCause(self, (cause) => Effect.catchAll(Effect.failCause(cause), afterFirst))
}
