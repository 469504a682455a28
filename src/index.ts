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
 * Keyed rate limiters: token bucket (x/time/rate), fixed window (go-zero period codes), sliding
 * log, sliding counter and GCRA; `protect`, wait mode, reservations, tiers and `pacing`.
 *
 * @since 0.1.0
 */
export * as RateLimiter from "./RateLimiter.js"

/**
 * Where rate-limit state lives: the `RateLimiterStore` service and its bounded in-memory store.
 *
 * @since 0.1.0
 */
export * as RateLimiterStore from "./RateLimiterStore.js"

/**
 * Prometheus exposure of every `effect/Metric` metric (`/metrics`), through the OpenTelemetry
 * Prometheus exporter.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

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
 * The CPU signal of the load shedder: per-mille of the CPU the process may use, sampled from
 * cgroup v1/v2 or the process, with `layerTest` for tests.
 *
 * @since 0.1.0
 */
export * as CpuUsage from "./CpuUsage.js"

/**
 * Adaptive load shedding (go-zero's AdaptiveShedder) driven by an overload signal — event-loop
 * utilization by default — with priority tiers and groups keyed by name.
 *
 * @since 0.1.0
 */
export * as LoadShedder from "./LoadShedder.js"

/**
 * The event-loop utilization signal: the busy share of this process's event loop, 0 to 1.
 *
 * @since 0.2.0
 */
export * as EventLoopUtilization from "./EventLoopUtilization.js"

/**
 * The event-loop delay signal: how late the event loop runs its timers, in milliseconds.
 *
 * @since 0.2.0
 */
export * as EventLoopDelay from "./EventLoopDelay.js"

/**
 * The queue-delay signal: CoDel's standing delay of requests between arrival and handler start.
 *
 * @since 0.2.0
 */
export * as QueueDelay from "./QueueDelay.js"

/**
 * The deployment mode (`RESILIENCE_MODE`): load shedding is on only in `"pro"`.
 *
 * @since 0.1.0
 */
export * as ResilienceMode from "./ResilienceMode.js"

/**
 * A `RateLimiterStore` on Redis: the five algorithms as Lua scripts, shared by every instance,
 * with fail-open, fail-closed or local-fallback behaviour when Redis fails.
 *
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.js"

/**
 * Circuit breakers: the adaptive Google SRE breaker (go-zero's default, with fast recovery) and
 * state-machine breakers (consecutive failures, failure / slow-call rate over a count or time
 * window, custom), as services, layers and a registry of per-key breakers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * Circuit breakers coordinated across instances through Redis: one shared state, or a quorum of
 * instances that opens the breaker everywhere.
 *
 * @since 0.2.0
 */
export * as CircuitBreakerCluster from "./CircuitBreakerCluster.js"

/**
 * An `HttpMiddleware` applying max connections, a circuit breaker per route, load shedding, rate
 * limiting (with `RateLimit-*` headers) and a request deadline, with JSON rejections.
 *
 * @since 0.1.0
 */
export * as ResilientHttpServer from "./ResilientHttpServer.js"

/**
 * Wraps `HttpClient` with a breaker and a bulkhead per host, per-attempt timeouts within the
 * caller's deadline, and retries with backoff for idempotent requests.
 *
 * @since 0.1.0
 */
export * as ResilientHttpClient from "./ResilientHttpClient.js"

/**
 * go-zero style service configuration read with `effect/Config`, validated with Schema, and
 * `layerConfig` building the whole middleware from it.
 *
 * @since 0.1.0
 */
export * as Config from "./Config.js"

/**
 * Named health checks behind their own breakers, reporting breakers, bulkheads and limiters, and
 * the `/health` route.
 *
 * @since 0.1.0
 */
export * as Health from "./Health.js"

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
 * Background task runners (go-zero `threading`): bounded `schedule` / `scheduleImmediately` / `wait`,
 * worker groups, and an ordered runner that returns results in submission order.
 *
 * @since 0.1.0
 */
export * as TaskRunner from "./TaskRunner.js"

/**
 * Adaptive concurrency: an in-flight limit driven by latency (gradient2, vegas, aimd), for
 * services a CPU signal cannot see.
 *
 * @since 0.1.0
 */
export * as AdaptiveLimiter from "./AdaptiveLimiter.js"

/**
 * Chaos injection: faults, latency, fake outcomes and behaviours injected into a share of calls,
 * switchable at run time, inside Schedule-driven windows, read from `effect/Config`; as effect
 * combinators, an `HttpMiddleware` and an `HttpClient` transform.
 *
 * @since 0.2.0
 */
export * as Chaos from "./Chaos.js"

/**
 * Protection for `@effect/sql` (an optional peer, loaded only when used): a breaker per database,
 * per-statement timeouts within the caller's deadline, retries only when repeating is safe,
 * transactions retried as a whole, metrics; a Layer that protects the `SqlClient` in context.
 *
 * @since 0.2.0
 */
export * as ResilientSql from "./ResilientSql.js"

/**
 * The policy simulator: a policy stack (the keys of `Config`) against a modelled downstream and a
 * traffic profile on a virtual clock, driving the library's own breaker, rate-limit and shedder
 * cores; deterministic by seed; HTML and JSON reports. Also the `effect-resilience simulate` command.
 *
 * @since 0.2.0
 */
export * as Simulator from "./Simulator.js"
