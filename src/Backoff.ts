/**
 * Backoff schedules for `Effect.retry`: each one is an ordinary `Schedule` whose output is the
 * delay it chose, so they compose with every `Schedule` combinator.
 *
 * Delays are computed from the retry index (the first retry waits `base`), randomness comes
 * from the `Random` service (deterministic under `TestRandom`) and waiting is done by
 * `Effect.retry` through the `Clock` (deterministic under `TestClock`).
 *
 * Constructors validate their options when they are called and throw `InvalidOptionsError`
 * for a bad one: a schedule is a value usually built once at start-up, so a mistake surfaces
 * there instead of on the first failure.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backoff, Retry } from "effect-resilience"
 *
 * const call = Effect.tryPromise(() => fetch("http://127.0.0.1:8080/quote").then((res) => res.text()))
 *
 * // at most 4 attempts, 100 ms, 200 ms, 400 ms apart (± full jitter), never beyond 2 s
 * const schedule = Backoff.exponential({ base: "100 millis", cap: "2 seconds" }).pipe(
 *   Backoff.jitter("full"),
 *   Backoff.respectRetryAfter,
 *   Backoff.upTo(4)
 * )
 * const resilient = Effect.retry(call, { schedule, while: Retry.isTransient })
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import * as internal from "./internal/backoff.js"
import * as Options from "./internal/options.js"
import { retryAfterMillis } from "./internal/transient.js"

/**
 * How a delay is randomised:
 * - `"none"`: the computed delay;
 * - `"full"`: uniform in `[0, delay)` (AWS "full jitter");
 * - `"equal"`: `delay / 2` plus uniform in `[0, delay / 2)`;
 * - a fraction `f` in `[0, 1]`: uniform in `[delay · (1 − f), delay · (1 + f))`, e.g. `0.1` for ±10 %.
 *
 * @since 0.1.0
 * @category models
 */
export type Jitter = internal.Jitter

/**
 * Options shared by the deterministic backoffs.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions {
  /** largest delay before jitter (default: no cap) */
  readonly cap?: Duration.DurationInput | undefined
  /** jitter applied to every delay (default `"none"`) */
  readonly jitter?: Jitter | undefined
}

const JitterSchema = Schema.Union(Schema.Literal("none", "full", "equal"), Options.Probability)

const decodeOrThrow = <A, I>(module: string, schema: Schema.Schema<A, I>) => {
  const decode = Options.decodeOptionsEither(module, schema)
  return (input: unknown): A => {
    const result = decode(input)
    if (Either.isLeft(result)) throw result.left
    return result.right
  }
}

const millisOf = (d: Duration.Duration | undefined): number => d === undefined ? Infinity : Duration.toMillis(d)

const continueAfter = (now: number, delay: number): ScheduleDecision.ScheduleDecision =>
  ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))

const delayOf = (now: number, decision: ScheduleDecision.ScheduleDecision): number =>
  ScheduleDecision.isDone(decision) ? 0 : ScheduleIntervals.start(decision.intervals) - now

/**
 * A schedule over a counter that waits `delayAt(attempt)` before each retry, forever.
 */
const fromAttempt = (delayAt: (attempt: number) => number): Schedule.Schedule<Duration.Duration> =>
  Schedule.makeWithState(0, (now, _input, attempt: number) => {
    const delay = delayAt(attempt)
    return Effect.succeed([attempt + 1, Duration.millis(delay), continueAfter(now, delay)] as const)
  })

const withJitter = (
  schedule: Schedule.Schedule<Duration.Duration>,
  mode: Jitter | undefined
): Schedule.Schedule<Duration.Duration> => mode === undefined || mode === "none" ? schedule : jitter(schedule, mode)

const ConstantOptions = Schema.Struct({ delay: Options.NonNegativeDuration, jitter: Schema.optional(JitterSchema) })
const decodeConstant = decodeOrThrow("Backoff.constant", ConstantOptions)

/**
 * The same delay before every retry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const constant = (
  delay: Duration.DurationInput,
  options?: { readonly jitter?: Jitter | undefined }
): Schedule.Schedule<Duration.Duration> => {
  const decoded = decodeConstant({ delay, jitter: options?.jitter })
  const millis = Duration.toMillis(decoded.delay)
  return withJitter(fromAttempt(() => millis), decoded.jitter)
}

const LinearOptions = Schema.Struct({
  base: Options.NonNegativeDuration,
  step: Schema.optional(Options.NonNegativeDuration),
  cap: Schema.optional(Options.NonNegativeDuration),
  jitter: Schema.optional(JitterSchema)
})
const decodeLinear = decodeOrThrow("Backoff.linear", LinearOptions)

/**
 * `base`, `base + step`, `base + 2·step`, … (`step` defaults to `base`, so `linear("100 millis")`
 * waits 100, 200, 300 ms …), capped at `cap`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const linear = (
  options:
    | Duration.DurationInput
    | (CommonOptions & { readonly base: Duration.DurationInput; readonly step?: Duration.DurationInput | undefined })
): Schedule.Schedule<Duration.Duration> => {
  const decoded = decodeLinear(isOptions(options) ? options : { base: options })
  const base = Duration.toMillis(decoded.base)
  const step = decoded.step === undefined ? base : Duration.toMillis(decoded.step)
  const cap = millisOf(decoded.cap)
  return withJitter(fromAttempt((n) => internal.linear(n, base, step, cap)), decoded.jitter)
}

const isOptions = (u: unknown): u is { readonly base: Duration.DurationInput } =>
  typeof u === "object" && u !== null && !Duration.isDuration(u) && !Array.isArray(u) && "base" in u

const ExponentialOptions = Schema.Struct({
  base: Options.PositiveDuration,
  factor: Schema.optional(
    Schema.Number.pipe(Schema.filter((n) => (Number.isFinite(n) && n >= 1) || "expected a finite number ≥ 1"))
  ),
  cap: Schema.optional(Options.NonNegativeDuration),
  jitter: Schema.optional(JitterSchema)
})
const decodeExponential = decodeOrThrow("Backoff.exponential", ExponentialOptions)

/**
 * `base · factor^n` before retry `n` (0-based), capped at `cap`: with `base` 100 ms and the default
 * `factor` 2 the delays are 100, 200, 400, 800 ms …
 *
 * @since 0.1.0
 * @category constructors
 */
export const exponential = (
  options: CommonOptions & { readonly base: Duration.DurationInput; readonly factor?: number | undefined }
): Schedule.Schedule<Duration.Duration> => {
  const decoded = decodeExponential(options)
  const base = Duration.toMillis(decoded.base)
  const factor = decoded.factor ?? 2
  const cap = millisOf(decoded.cap)
  return withJitter(fromAttempt((n) => internal.exponential(n, base, factor, cap)), decoded.jitter)
}

const FibonacciOptions = Schema.Struct({
  base: Options.PositiveDuration,
  cap: Schema.optional(Options.NonNegativeDuration),
  jitter: Schema.optional(JitterSchema)
})
const decodeFibonacci = decodeOrThrow("Backoff.fibonacci", FibonacciOptions)

/**
 * `base`, `base`, `2·base`, `3·base`, `5·base`, `8·base`, … capped at `cap`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fibonacci = (
  options: Duration.DurationInput | (CommonOptions & { readonly base: Duration.DurationInput })
): Schedule.Schedule<Duration.Duration> => {
  const decoded = decodeFibonacci(isOptions(options) ? options : { base: options })
  const base = Duration.toMillis(decoded.base)
  const cap = millisOf(decoded.cap)
  const schedule = Schedule.makeWithState(internal.fibonacciInitial(base), (now, _input, state) => {
    const [delay, next] = internal.fibonacci(state, cap)
    return Effect.succeed([next, Duration.millis(delay), continueAfter(now, delay)] as const)
  })
  return withJitter(schedule, decoded.jitter)
}

const DecorrelatedOptions = Schema.Struct({
  base: Options.PositiveDuration,
  cap: Options.PositiveDuration
}).pipe(
  Schema.filter((o) => Duration.lessThanOrEqualTo(o.base, o.cap) || { path: ["cap"], message: "expected cap ≥ base" })
)
const decodeDecorrelated = decodeOrThrow("Backoff.decorrelatedJitter", DecorrelatedOptions)

/**
 * "Decorrelated jitter": each delay is uniform in `[base, 3 · previous)` (the first previous is
 * `base`), capped at `cap`. Random by construction, so it takes no `jitter` option.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decorrelatedJitter = (options: {
  readonly base: Duration.DurationInput
  readonly cap: Duration.DurationInput
}): Schedule.Schedule<Duration.Duration> => {
  const decoded = decodeDecorrelated(options)
  const base = Duration.toMillis(decoded.base)
  const cap = Duration.toMillis(decoded.cap)
  return Schedule.makeWithState(base, (now, _input, previous: number) =>
    Effect.map(Random.next, (random) => {
      const delay = internal.decorrelated(previous, base, cap, random)
      return [delay, Duration.millis(delay), continueAfter(now, delay)] as const
    }))
}

/**
 * Rewrites the delay of every continuing decision of `self`; `f` sees the delay (millis), the
 * input (the failure, under `Effect.retry`) and the time.
 */
const mapDelay = <Out, In, R, R2>(
  self: Schedule.Schedule<Out, In, R>,
  f: (delay: number, input: In, now: number) => Effect.Effect<number, never, R2>
): Schedule.Schedule<Out, In, R | R2> =>
  Schedule.makeWithState(
    self.initial,
    (now, input: In, state) =>
      Effect.flatMap(self.step(now, input, state), ([next, out, decision]) =>
        ScheduleDecision.isDone(decision)
          ? Effect.succeed([next, out, decision] as const)
          : Effect.map(
            f(delayOf(now, decision), input, now),
            (delay) => [next, out, continueAfter(now, delay)] as const
          ))
  )

/**
 * Randomises the delays of `self` (see `Jitter`). Draws from the `Random` service.
 *
 * @since 0.1.0
 * @category combinators
 */
export const jitter: {
  (mode: Jitter): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, mode: Jitter): Schedule.Schedule<Out, In, R>
} = dual(2, <Out, In, R>(self: Schedule.Schedule<Out, In, R>, mode: Jitter): Schedule.Schedule<Out, In, R> => {
  const decoded = decodeOrThrow("Backoff.jitter", Schema.Struct({ jitter: JitterSchema }))({ jitter: mode }).jitter
  if (decoded === "none") return self
  return mapDelay(self, (delay) => Effect.map(Random.next, (random) => internal.jitter(delay, decoded, random)))
})

const decodeAttempts = decodeOrThrow("Backoff.upTo", Schema.Struct({ attempts: Options.PositiveInt }))

/**
 * Limits `self` to `attempts` **attempts in total** — the first call plus `attempts − 1`
 * retries. `upTo(1)` never retries; `upTo(3)` runs the effect at most three times.
 *
 * @since 0.1.0
 * @category combinators
 */
export const upTo: {
  (attempts: number): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, attempts: number): Schedule.Schedule<Out, In, R>
} = dual(2, <Out, In, R>(self: Schedule.Schedule<Out, In, R>, attempts: number): Schedule.Schedule<Out, In, R> => {
  const retries = decodeAttempts({ attempts }).attempts - 1
  return Schedule.zipLeft(self, Schedule.recurs(retries))
})

const decodeMaxElapsed = decodeOrThrow("Backoff.maxElapsed", Schema.Struct({ duration: Options.NonNegativeDuration }))

/**
 * Stops `self` once a retry would start more than `duration` after the first failure: the
 * retry is taken only if `elapsed + delay ≤ duration`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const maxElapsed: {
  (duration: Duration.DurationInput): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, duration: Duration.DurationInput): Schedule.Schedule<Out, In, R>
} = dual(
  2,
  <Out, In, R>(
    self: Schedule.Schedule<Out, In, R>,
    duration: Duration.DurationInput
  ): Schedule.Schedule<Out, In, R> => {
    const max = Duration.toMillis(decodeMaxElapsed({ duration }).duration)
    return Schedule.makeWithState(
      [self.initial, undefined as number | undefined] as const,
      (now, input: In, [state, startedAt]) => {
        const start = startedAt ?? now
        return Effect.map(
          self.step(now, input, state),
          ([next, out, decision]) =>
            ScheduleDecision.isContinue(decision) && internal.withinElapsed(start, now, delayOf(now, decision), max)
              ? [[next, start] as const, out, decision] as const
              : [[next, start] as const, out, ScheduleDecision.done] as const
        )
      }
    )
  }
)

/**
 * When the failure names a `retryAfter` (every rejection of this toolkit that knows one, a
 * `RetryableError`, or an HTTP response error with a `Retry-After` header), waits at least that
 * long before the next retry. Apply it after `jitter` so jitter cannot shorten the wait.
 *
 * @since 0.1.0
 * @category combinators
 */
export const respectRetryAfter = <Out, In, R>(self: Schedule.Schedule<Out, In, R>): Schedule.Schedule<Out, In, R> =>
  mapDelay(self, (delay, input, now) => Effect.succeed(internal.atLeast(delay, retryAfterMillis(input, now))))
