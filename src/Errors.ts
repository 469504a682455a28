/**
 * Every error the toolkit produces, in one place.
 *
 * Rejections (`CircuitOpenError`, `BulkheadFullError`, `RateLimitedError`, `OverloadedError`,
 * `TaskRunnerBusyError`) mean the protected work never ran, so it is safe to try elsewhere; they
 * carry `retryAfter` when the rejecting primitive knows when capacity returns.
 *
 * @since 0.1.0
 */
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { hasRejectionTag } from "./internal/rejection.js"

/**
 * `@effect/platform`'s `HttpServerRespondable.symbol`, a global symbol: naming it here keeps
 * `@effect/platform` out of everything that only needs the error classes.
 */
const respondableSymbol: unique symbol = Symbol.for("@effect/platform/HttpServerRespondable") as any

/** Loads the HTTP helpers on first use: only an HTTP server asks an error for its response. */
const withHttp = (
  f: (http: typeof import("./internal/http.js")) => HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.map(Effect.promise(() => import("./internal/http.js")), f)

const formatRetryAfter = (retryAfter: Duration.Duration | undefined): string =>
  retryAfter === undefined ? "" : `, retry after ${Duration.format(retryAfter)}`

/**
 * A circuit breaker refused the call: it is open, isolated, or half-open with every probe slot taken.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>()("CircuitOpenError", {
  breaker: Schema.String,
  state: Schema.Literal("Open", "HalfOpen", "Isolated"),
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  /**
   * `"ramp"`: the breaker closed recently and admits a growing share of calls (`admitting`); the
   * error then reports state `HalfOpen`, since part of the traffic passes.
   */
  reason: Schema.optional(Schema.Literal("ramp")),
  /** with `reason: "ramp"`, the share of calls admitted when this one was refused */
  admitting: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    if (this.reason === "ramp") {
      const share = Math.round((this.admitting ?? 0) * 100)
      return `circuit breaker "${this.breaker}" is ramping up after closing, admitting ${share} % of calls`
    }
    return `circuit breaker "${this.breaker}" is ${this.state}${formatRetryAfter(this.retryAfter)}`
  }

  /**
   * An `@effect/platform` handler failing with it answers `503 circuit_open` (the JSON rejection body of
   * `ResilientHttpServer`, with `Retry-After` when known), not an empty `500`.
   *
   * @since 0.3.0
   */
  [respondableSymbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return withHttp((http) =>
      http.errorResponse({
        code: "circuit_open",
        status: 503,
        message: this.message,
        retryAfter: Option.fromNullable(this.retryAfter),
        headers: {}
      })
    )
  }
}

/**
 * A bulkhead had no free permit: either every permit and queue slot was taken (`"full"`), or the
 * caller waited in the queue longer than `queueTimeout` (`"queue-timeout"`).
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadFullError extends Schema.TaggedError<BulkheadFullError>()("BulkheadFullError", {
  bulkhead: Schema.String,
  reason: Schema.Literal("full", "queue-timeout"),
  maxConcurrent: Schema.Number,
  maxQueue: Schema.Number
}) {
  override get message(): string {
    return this.reason === "full"
      ? `bulkhead "${this.bulkhead}" is full (${this.maxConcurrent} running, ${this.maxQueue} queued)`
      : `bulkhead "${this.bulkhead}" queue wait timed out`
  }

  /**
   * An `@effect/platform` handler failing with it answers `503 bulkhead_full` (the JSON rejection body of
   * `ResilientHttpServer`), not an empty `500`.
   *
   * @since 0.3.0
   */
  [respondableSymbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return withHttp((http) =>
      http.errorResponse({
        code: "bulkhead_full",
        status: 503,
        message: this.message,
        retryAfter: Option.none(),
        headers: {}
      })
    )
  }
}

/**
 * A rate limiter refused the call for `key`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>()("RateLimitedError", {
  limiter: Schema.String,
  key: Schema.String,
  limit: Schema.Number,
  remaining: Schema.Number,
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  resetAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message(): string {
    return `rate limit "${this.limiter}" exceeded for key "${this.key}" (limit ${this.limit})${
      formatRetryAfter(this.retryAfter)
    }`
  }

  /**
   * An `@effect/platform` handler failing with it answers `429 rate_limited` with `Retry-After` and the
   * `RateLimit-*` headers (the JSON rejection body of `ResilientHttpServer`), not an empty `500`.
   *
   * @since 0.3.0
   */
  [respondableSymbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return withHttp((http) => {
      const retryAfter = this.retryAfter ?? Duration.seconds(1)
      return http.errorResponse({
        code: "rate_limited",
        status: 429,
        message: this.message,
        retryAfter: Option.some(retryAfter),
        headers: http.rateLimitHeaders({
          limit: this.limit,
          remaining: this.remaining,
          resetAfter: this.resetAfter ?? retryAfter
        })
      })
    })
  }
}

/**
 * A load shedder or adaptive concurrency limiter refused the call because the service is overloaded.
 *
 * @since 0.1.0
 * @category errors
 */
export class OverloadedError extends Schema.TaggedError<OverloadedError>()("OverloadedError", {
  shedder: Schema.String,
  reason: Schema.Literal(
    "cpu",
    "event-loop-utilization",
    "event-loop-delay",
    "queue-delay",
    "concurrency",
    "connections"
  ),
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message(): string {
    return `"${this.shedder}" is overloaded (${this.reason})${formatRetryAfter(this.retryAfter)}`
  }

  /**
   * An `@effect/platform` handler failing with it answers `503 overloaded` (the JSON rejection body of
   * `ResilientHttpServer`, with `Retry-After` when known), not an empty `500`.
   *
   * @since 0.3.0
   */
  [respondableSymbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return withHttp((http) =>
      http.errorResponse({
        code: "overloaded",
        status: 503,
        message: this.message,
        retryAfter: Option.fromNullable(this.retryAfter),
        headers: {}
      })
    )
  }
}

/**
 * Why a `TimeoutError` happened, as `Timeout.within` measured it:
 * - `"timeout"`: the work ran for its whole timeout on a timer that fired on time — the work was slow;
 * - `"deadline"`: the caller's own deadline had less left than the operation's timeout, and it ran out;
 * - `"lag"`: the timer fired late by more than its share of the budget — this process's event loop
 *   was blocked or starved of CPU, so an answer may have been waiting unread.
 *
 * A circuit breaker counts only `"timeout"` (or no reason) as a failure of the downstream.
 *
 * @since 0.1.0
 * @category errors
 */
export type TimeoutReason = "timeout" | "deadline" | "lag"

/**
 * The work did not finish within `duration` and was interrupted. `reason` tells a slow downstream
 * (`"timeout"`) from the caller's own short deadline (`"deadline"`) and this process's own event-loop
 * lag (`"lag"`); errors made by hand may leave it out, which means `"timeout"`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  duration: Schema.DurationFromSelf,
  operation: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.Literal("timeout", "deadline", "lag")),
  /** with `reason: "lag"`, how late the timer fired */
  lateBy: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message(): string {
    const base = `${this.operation ?? "operation"} timed out after ${Duration.format(this.duration)}`
    if (this.reason === "deadline") return `${base} (the caller's deadline ran out)`
    if (this.reason === "lag") {
      const late = this.lateBy === undefined ? "" : ` by ${Duration.format(this.lateBy)}`
      return `${base} (the event loop fired the timer late${late})`
    }
    return base
  }

  /**
   * Whether the timeout says nothing about the downstream: the caller's own deadline or this
   * process's event-loop lag ended the wait (`reason` `"deadline"` or `"lag"`).
   *
   * @since 0.1.0
   */
  get selfInflicted(): boolean {
    return this.reason === "deadline" || this.reason === "lag"
  }

  /**
   * An `@effect/platform` handler that fails with a `TimeoutError` answers `504` with the JSON
   * rejection body of `ResilientHttpServer` (code `upstream_timeout`) instead of an empty `500`.
   * Behind the `ResilientHttpServer` middleware it becomes `503 timeout` when the request's own
   * deadline is spent.
   *
   * @since 0.1.0
   */
  [respondableSymbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return withHttp((http) => http.upstreamTimeoutResponse(this.message))
  }
}

/**
 * `TaskRunner.scheduleImmediately` found no free slot.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskRunnerBusyError extends Schema.TaggedError<TaskRunnerBusyError>()("TaskRunnerBusyError", {
  concurrency: Schema.Number
}) {
  override get message(): string {
    return `task runner is busy (all ${this.concurrency} slots taken)`
  }
}

/**
 * A shared store (Redis) failed or did not answer in time. Kept apart from `RateLimitedError` so a
 * broken store is never mistaken for a client over its limit.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  store: Schema.String,
  operation: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `${this.store} ${this.operation} failed: ${this.reason}`
  }
}

/**
 * An option passed to a constructor failed validation. `option` is the path of the offending field
 * (`"window"`, `"tiers.0.rate"`), `value` the value that was given.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptionsError extends Schema.TaggedError<InvalidOptionsError>()("InvalidOptionsError", {
  module: Schema.String,
  option: Schema.String,
  value: Schema.Unknown,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.module}: invalid option "${this.option}" (got ${formatValue(this.value)}): ${this.reason}`
  }
}

/**
 * A map-reduce reducer finished without writing a result.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoOutputError extends Schema.TaggedError<NoOutputError>()("NoOutputError", {}) {
  override get message(): string {
    return "reducer finished without writing a result"
  }
}

/**
 * A registry was asked for a name it does not hold.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownNameError extends Schema.TaggedError<UnknownNameError>()("UnknownNameError", {
  registry: Schema.String,
  name: Schema.String
}) {
  override get message(): string {
    return `${this.registry} has no entry named "${this.name}"`
  }
}

/**
 * Marks a failure as transient: retry policies built with `Retry.isTransient` retry it, whatever
 * the wrapped `cause` is. Wrap only errors you know are safe to repeat (an idempotent call that
 * failed for a passing reason); `retryAfter` asks the retry to wait at least that long.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RetryableError } from "effect-resilience/Errors"
 *
 * const call = Effect.tryPromise({
 *   try: () => fetch("http://inventory/items"),
 *   catch: (cause) => new RetryableError({ cause })
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RetryableError extends Schema.TaggedError<RetryableError>()("RetryableError", {
  cause: Schema.Defect,
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message(): string {
    const inner = Predicate.hasProperty(this.cause, "message") && typeof this.cause.message === "string"
      ? this.cause.message
      : String(this.cause)
    return `retryable: ${inner}${formatRetryAfter(this.retryAfter)}`
  }
}

/**
 * The errors that mean "the protected work never ran": a caller may safely try another replica,
 * fall back, or retry later without risking a duplicate side effect.
 *
 * @since 0.1.0
 * @category models
 */
export type Rejection =
  | CircuitOpenError
  | BulkheadFullError
  | RateLimitedError
  | OverloadedError
  | TaskRunnerBusyError

/**
 * Whether `u` is a rejection: the work never ran.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRejection = (u: unknown): u is Rejection => hasRejectionTag(u)

/**
 * The `retryAfter` hint of any toolkit error (or any object with a `retryAfter` Duration).
 *
 * @since 0.1.0
 * @category getters
 */
export const retryAfter = (u: unknown): Option.Option<Duration.Duration> =>
  Predicate.hasProperty(u, "retryAfter") && Duration.isDuration(u.retryAfter)
    ? Option.some(u.retryAfter)
    : Option.none()

const formatValue = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "bigint") return `${value}n`
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value)
  if (Duration.isDuration(value)) return Duration.format(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
