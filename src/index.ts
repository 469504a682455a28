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
 * The CPU signal of the load shedder: per-mille of the CPU the process may use, sampled from
 * cgroup v1/v2 or the process, with `layerTest` for tests.
 *
 * @since 0.1.0
 */
export * as CpuUsage from "./CpuUsage.js"

/**
 * Adaptive load shedding driven by CPU (go-zero's AdaptiveShedder), with priority shedders and
 * groups keyed by name.
 *
 * @since 0.1.0
 */
export * as LoadShedder from "./LoadShedder.js"

/**
 * The deployment mode (`RESILIENCE_MODE`): load shedding is on only in `"pro"`.
 *
 * @since 0.1.0
 */
export * as ResilienceMode from "./ResilienceMode.js"

/**
 * Adaptive concurrency: an in-flight limit driven by latency (gradient2, vegas, aimd), for
 * services a CPU signal cannot see.
 *
 * @since 0.1.0
 */
export * as AdaptiveLimiter from "./AdaptiveLimiter.js"
