/**
 * Adaptive load shedding (go-zero's AdaptiveShedder) driven by an overload signal: when the signal
 * is over its threshold and more requests are in flight than the service has recently shown it can
 * turn around, new requests are rejected with `OverloadedError` before they use any CPU.
 *
 * Over a rolling window of `window` in `buckets` (5 s in 50 buckets of 100 ms by default), counting
 * only completed buckets:
 *
 * - `maxPass` = the most successful requests in one bucket (at least 1);
 * - `minRt` = the lowest average round-trip time of a bucket, ms (1000 when there is none);
 * - `maxFlight = max(1, maxPass · (minRt + allowance) · bucketsPerSecond / 1000)`: the concurrency
 *   the best recent throughput needs when each request may wait `allowance` on top of the best
 *   recent latency (Little's law; go-zero's allowance is 0);
 * - a request is dropped when `(signal ≥ threshold || hot) && avgFlying > maxFlight · factor &&
 *   flying > maxFlight · factor` (go-zero's rule; see the departures below), where `hot` means requests were dropped and the signal was over
 *   the threshold less than 1 s ago, `avgFlying` is a moving average (β = 0.9) of the in-flight
 *   count taken when requests complete, and `factor` in [0.1, 1] shrinks the limit as the signal
 *   rises past its threshold.
 *
 * Signals (`signal` option):
 *
 * - `eventLoopUtilization()` (the default): the share of time this process's event loop is busy,
 *   threshold 0.9, allowance 50 ms. It reads busy within tens of milliseconds of an overload, so
 *   the shedder protects from a cold start, and it follows this process alone: a neighbour that
 *   hogs the CPU does not make an unsaturated server shed.
 * - `eventLoopDelay()`: how late the loop runs timers, threshold 25 ms; the queueing every request
 *   feels, but also time the host keeps the process off the CPU.
 * - `queueDelay()`: CoDel's standing queue delay of requests between arrival and handler start,
 *   threshold 5 ms; for servers with a queue in front of the handler.
 * - `cpu()`: go-zero's CPU signal and constants (threshold 900 per-mille, no allowance). The CPU
 *   average needs about 10 s of full load to cross 900, and a container's CPU counts neighbours.
 *
 * Priority tiers: `admit("sheddable")` requests may use half of the flight limit, `"standard"` all
 * of it, and `"critical"` requests are shed only once the signal passes a higher threshold
 * (halfway to the maximum for the CPU and utilization, twice the threshold for delays) and, with
 * an event-loop signal, only past twice the limit; so under overload the lowest tier is shed first
 * and critical last.
 *
 * Three departures from go-zero apply to the event-loop signals (the CPU signal keeps go-zero's
 * algorithm and constants): the allowance (50 ms); the in-flight count is compared alone, without
 * go-zero's moving-average guard, because an event loop reads arrivals in batches between the
 * completions that move the average; and `maxPass` is the best average over five consecutive
 * buckets (half a second), because requests sharing a loop also complete in batches.
 *
 * Shedding is on only in `ResilienceMode` `"pro"` (the default when `RESILIENCE_MODE` is unset): a
 * shedder built in `"dev"`, `"test"`, `"rt"` or `"pre"` admits everything.
 *
 * Metrics: `resilience_shed_requests_total{name,priority}`, `resilience_shedder_requests_in_flight{name}`.
 * Once a minute, when there was traffic, it logs `shedding_stat` with `signal`, `value`, `total`,
 * `pass` and `drop`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Subscribable from "effect/Subscribable"
import type { InvalidOptionsError, OverloadedError } from "./Errors.js"
import * as Build from "./internal/loadShedder/build.js"
import { makeGroup as makeGroupWith } from "./internal/loadShedder/group.js"
import * as ShedderOptions from "./internal/loadShedder/options.js"
import * as Shedder from "./internal/shedder.js"
import type * as Signal from "./internal/shedderSignal.js"

/**
 * A request's tier: under overload `"sheddable"` requests are shed first and `"critical"` last.
 *
 * @since 0.2.0
 * @category models
 */
export type Priority = Shedder.Priority

/**
 * Every tier, lowest first.
 *
 * @since 0.2.0
 * @category constants
 */
export const priorities: ReadonlyArray<Priority> = Shedder.priorities

/**
 * The signal that makes a shedder hot; build one with `eventLoopUtilization`, `eventLoopDelay`,
 * `queueDelay` or `cpu`.
 *
 * @since 0.2.0
 * @category models
 */
export type OverloadSignal = Signal.Choice

/**
 * Which signal a shedder reads, as `OverloadedError.reason` and `Stats.signal` name it.
 *
 * @since 0.2.0
 * @category models
 */
export type SignalKind = Signal.Kind

/**
 * The busy share of this process's event loop (`EventLoopUtilization`): `threshold` in (0, 1)
 * (default 0.9), `allowance` the wait per request the flight limit allows for (default 50 ms).
 * The default signal. Uses the `EventLoopUtilization` in context, or its own live sampler.
 *
 * @since 0.2.0
 * @category signals
 */
export const eventLoopUtilization = (
  options: { readonly threshold?: number; readonly allowance?: Duration.DurationInput } = {}
): OverloadSignal => ({ _tag: "EventLoopUtilization", ...options })

/**
 * The event-loop delay (`EventLoopDelay`): `threshold` default 25 ms, `allowance` default 50 ms.
 * Uses the `EventLoopDelay` in context, or its own live sampler.
 *
 * @since 0.2.0
 * @category signals
 */
export const eventLoopDelay = (
  options: { readonly threshold?: Duration.DurationInput; readonly allowance?: Duration.DurationInput } = {}
): OverloadSignal => ({ _tag: "EventLoopDelay", ...options })

/**
 * CoDel's standing queue delay (`QueueDelay`): `threshold` default 5 ms (CoDel's target),
 * `allowance` default 50 ms. The shedder records the wait of each request admitted with an
 * arrival time. Uses the `QueueDelay` in context, or its own.
 *
 * @since 0.2.0
 * @category signals
 */
export const queueDelay = (
  options: { readonly threshold?: Duration.DurationInput; readonly allowance?: Duration.DurationInput } = {}
): OverloadSignal => ({ _tag: "QueueDelay", ...options })

/**
 * go-zero's CPU signal (`CpuUsage`), `threshold` in per-mille, an integer in [0, 999] (default
 * 900), with go-zero's constants. Uses the `CpuUsage` in context, or its own live sampler.
 *
 * @since 0.2.0
 * @category signals
 */
export const cpu = (options: { readonly threshold?: number } = {}): OverloadSignal => ({ _tag: "Cpu", ...options })

/**
 * An admission: call `pass` when the request completed well (its round-trip time is recorded)
 * or `fail` when it did not (it only leaves the in-flight count). Only the first call counts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ticket {
  readonly pass: Effect.Effect<void>
  readonly fail: Effect.Effect<void>
}

/**
 * A snapshot of a shedder. `total`, `passed` and `dropped` count since it was built.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  /** `false` when built in a mode other than `"pro"` */
  readonly enabled: boolean
  readonly signal: SignalKind
  /** the signal's reading (per-mille for the CPU, a ratio for utilization, ms for delays) */
  readonly value: number
  readonly threshold: number
  /** the threshold of `"critical"` requests */
  readonly priorityThreshold: number
  readonly flying: number
  readonly avgFlying: number
  readonly maxPass: number
  readonly minRt: number
  readonly maxFlight: number
  readonly overloadFactor: number
  /** `"standard"` requests were dropped and the signal was over the threshold less than 1 s ago */
  readonly hot: boolean
  readonly total: number
  readonly passed: number
  readonly dropped: number
  readonly droppedByPriority: Readonly<Record<Priority, number>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LoadShedder {
  readonly name: string
  /** admits a request of the shedder's default tier (a `Ticket`) or rejects with `OverloadedError` */
  readonly allow: Effect.Effect<Ticket, OverloadedError>
  /**
   * admits a request of `priority` (default: the shedder's tier) that arrived at `arrivedAt`
   * (epoch ms from `Clock`; a `queueDelay` shedder records the wait), in one step
   */
  readonly admit: (priority?: Priority, arrivedAt?: number) => Effect.Effect<Ticket, OverloadedError>
  /** runs `effect` if admitted: success passes, failure, defect and interruption fail */
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    priority?: Priority
  ) => Effect.Effect<A, E | OverloadedError, R>
  readonly stats: Effect.Effect<Stats>
  /**
   * The live state, read-only: `view.get` is `stats`; `view.changes` emits it at once and at every
   * request dropped (the moves into and within shedding; the cooling-down is seen by `get`). Free
   * while nobody subscribes.
   *
   * @since 0.3.0
   */
  readonly view: Subscribable.Subscribable<Stats>
}

/**
 * Options of `make`. Defaults: `signal` `eventLoopUtilization()`, `window` 5 seconds, `buckets` 50.
 * `cpuThreshold` (go-zero's `CpuThreshold`) is short for `signal: cpu({ threshold })` and cannot
 * be combined with `signal`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly name: string
  readonly signal?: OverloadSignal
  readonly cpuThreshold?: number
  readonly window?: Duration.DurationInput
  readonly buckets?: number
}

/**
 * Defaults of `make`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: {
  readonly signal: OverloadSignal
  readonly window: Duration.Duration
  readonly buckets: 50
} = ShedderOptions.defaults

/**
 * How often the `shedding_stat` line is logged.
 *
 * @since 0.1.0
 * @category constants
 */
export const statInterval: Duration.Duration = ShedderOptions.statInterval

/**
 * Builds a shedder reading its signal from the service in context (`EventLoopUtilization` by
 * default) — or, when there is none, from a live sampler that the scope owns — and the time from
 * the `Clock` of the fiber that builds it. The scope owns the fiber that logs `shedding_stat`.
 * Provide the signal's layer once when several shedders share a process.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLoopUtilization, LoadShedder } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const shedder = yield* LoadShedder.make({ name: "api" })
 *   const report = yield* Effect.succeed("report").pipe(shedder.protect) // OverloadedError when shed
 *   const ticket = yield* shedder.admit("critical") // a checkout request: shed last
 *   yield* ticket.pass
 *   return report
 * }).pipe(Effect.scoped, Effect.provide(EventLoopUtilization.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<LoadShedder, InvalidOptionsError, Scope.Scope> =>
  Build.make(options, "standard")

/**
 * A shedder whose requests are `"critical"` unless `admit` says otherwise: with the CPU signal its
 * threshold is go-zero's priority threshold, halfway between `cpuThreshold` and 1000.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePriority = (options: Options): Effect.Effect<LoadShedder, InvalidOptionsError, Scope.Scope> =>
  Build.make(options, "critical")

/**
 * Runs `effect` through `shedder`: success passes, failure, defect and interruption fail.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (shedder: LoadShedder): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OverloadedError, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, shedder: LoadShedder): Effect.Effect<A, E | OverloadedError, R>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, shedder: LoadShedder): Effect.Effect<A, E | OverloadedError, R> =>
    shedder.protect(effect)
)

/**
 * Shedders keyed by name, built on first use with the same options (go-zero's ShedderGroup): one
 * per route or per downstream.
 *
 * @since 0.1.0
 * @category models
 */
export interface Group {
  readonly get: (name: string) => Effect.Effect<LoadShedder, InvalidOptionsError>
}

/**
 * A group whose shedders live as long as the scope and share one signal; `priority` builds them
 * with `makePriority`. The options are checked here, so `get` can only fail on an empty name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGroup = (
  options: Omit<Options, "name"> & { readonly priority?: boolean } = {}
): Effect.Effect<Group, InvalidOptionsError, Scope.Scope> => makeGroupWith(options)

/**
 * The group as a service.
 *
 * @since 0.1.0
 * @category tags
 */
export class LoadShedderGroup extends Context.Tag("effect-resilience/LoadShedderGroup")<LoadShedderGroup, Group>() {}

/**
 * A `LoadShedderGroup` layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerGroup = (
  options: Omit<Options, "name"> & { readonly priority?: boolean } = {}
): Layer.Layer<LoadShedderGroup, InvalidOptionsError> => Layer.scoped(LoadShedderGroup, makeGroup(options))
