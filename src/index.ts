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
 * Circuit breakers: the adaptive Google SRE breaker (go-zero's default, with fast recovery) and
 * state-machine breakers (consecutive failures, failure / slow-call rate over a count or time
 * window, custom), as services, layers and a registry of per-key breakers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"
