/**
 * @since 0.1.0
 */

/**
 * Every error the toolkit produces, and the `isRejection` guard.
 *
 * @since 0.1.0
 */
export * as Errors from "./Errors.js"

/**
 * Backoff schedules for `Effect.retry`: constant, linear, exponential, fibonacci and decorrelated
 * jitter, with `jitter`, `upTo` (attempts), `maxElapsed` and `respectRetryAfter`.
 *
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.js"

/**
 * Retry predicates (`isTransient`), the `RetryableError` wrapper, retry policies with logging and
 * metrics, and a shared retry budget.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.js"

/**
 * Timeouts that interrupt the work, and deadline budgets that clamp every nested timeout.
 *
 * @since 0.1.0
 */
export * as Timeout from "./Timeout.js"

/**
 * Typed fallbacks: `orElse` for selected errors, ordered chains of alternatives, a last-resort default.
 *
 * @since 0.1.0
 */
export * as Fallback from "./Fallback.js"

/**
 * Hedged requests: speculative extra attempts when the first one is slow; first success wins.
 *
 * @since 0.1.0
 */
export * as Hedge from "./Hedge.js"

/**
 * Circuit breakers: the adaptive Google SRE breaker (go-zero's default, with fast recovery) and
 * state-machine breakers (consecutive failures, failure / slow-call rate over a count or time
 * window, custom), as services, layers and a registry of per-key breakers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * Bulkheads: a fixed number of permits per downstream with an optional FIFO queue, and a registry
 * of named bulkheads.
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * Map-reduce on fibers (go-zero `mr`): bounded concurrent mappers, a reducer, `forEach`, `finish`.
 *
 * @since 0.1.0
 */
export * as MapReduce from "./MapReduce.js"

/**
 * Background task runners (go-zero `threading`): bounded `schedule` / `scheduleImmediately` / `wait`,
 * worker groups, and an ordered runner that returns results in submission order.
 *
 * @since 0.1.0
 */
export * as TaskRunner from "./TaskRunner.js"
