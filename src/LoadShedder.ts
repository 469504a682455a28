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
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Subscribable from "effect/Subscribable"
import { InvalidOptionsError, OverloadedError } from "./Errors.js"
import { decodeOptions, Name, PositiveDuration, PositiveInt } from "./internal/options.js"
import * as ShadowView from "./internal/shadow.js"
import * as Shedder from "./internal/shedder.js"
import * as Signal from "./internal/shedderSignal.js"
import * as Metrics from "./internal/sheddingMetrics.js"
import { EventView } from "./internal/stateView.js"
import * as SyncAdmission from "./internal/syncAdmission.js"
import * as ResilienceMode from "./ResilienceMode.js"

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

const OptionsSchema = () =>
  Schema.Struct({
    name: Name,
    signal: Schema.optional(Schema.Unknown),
    cpuThreshold: Schema.optional(Schema.Unknown),
    window: Schema.optional(PositiveDuration),
    buckets: Schema.optional(PositiveInt)
  })

const decodeSchema = decodeOptions("LoadShedder", OptionsSchema)

/**
 * Defaults of `make`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  signal: eventLoopUtilization(),
  window: Duration.seconds(5),
  buckets: 50
} as const

interface Decoded {
  readonly name: string
  readonly kind: SignalKind
  readonly params: Shedder.Params
}

const invalid = (option: string, value: unknown, reason: string) =>
  new InvalidOptionsError({ module: "LoadShedder", option, value, reason })

const decodeSignal = (options: Options): Effect.Effect<Signal.Decoded, InvalidOptionsError> => {
  if (options.cpuThreshold === undefined) return Signal.decode(options.signal ?? defaults.signal)
  if (options.signal !== undefined) {
    return Effect.fail(invalid("cpuThreshold", options.cpuThreshold, "cpuThreshold and signal cannot both be set"))
  }
  return Effect.mapError(
    Signal.decode(cpu({ threshold: options.cpuThreshold })),
    (e) => invalid("cpuThreshold", options.cpuThreshold, e.reason)
  )
}

const decode = (options: Options): Effect.Effect<Decoded, InvalidOptionsError> =>
  Effect.gen(function*() {
    const decoded = yield* decodeSchema(options)
    const signal = yield* decodeSignal(options)
    const window = Duration.toMillis(decoded.window ?? defaults.window)
    const buckets = decoded.buckets ?? defaults.buckets
    const bucketMillis = window / buckets
    if (bucketMillis < 1) {
      return yield* invalid("window", options.window, `window is shorter than ${buckets} buckets of 1 ms`)
    }
    return { name: decoded.name, kind: signal.kind, params: { ...signal.params, buckets, bucketMillis } }
  })

const noopTicket: Ticket = { pass: Effect.void, fail: Effect.void }

const dropCounts = (dropped: ReadonlyArray<number>): Stats["droppedByPriority"] => ({
  sheddable: dropped[0],
  standard: dropped[1],
  critical: dropped[2]
})

const disabled = (decoded: Decoded): LoadShedder => {
  const { kind, name, params } = decoded
  const stats: Stats = {
    name,
    enabled: false,
    signal: kind,
    value: 0,
    threshold: params.threshold,
    priorityThreshold: params.priorityThreshold,
    flying: 0,
    avgFlying: 0,
    maxPass: 1,
    minRt: Shedder.defaultMinRt,
    maxFlight: 1,
    overloadFactor: 1,
    hot: false,
    total: 0,
    passed: 0,
    dropped: 0,
    droppedByPriority: dropCounts([0, 0, 0])
  }
  return {
    name,
    allow: Effect.succeed(noopTicket),
    admit: () => Effect.succeed(noopTicket),
    protect: (effect) => effect,
    stats: Effect.succeed(stats),
    view: Subscribable.make({ get: Effect.succeed(stats), changes: Stream.succeed(stats) })
  }
}

const statsOf = (decoded: Decoded, state: Shedder.State, value: number, now: number): Stats => {
  const { kind, name, params } = decoded
  const maxPass = Shedder.maxPass(state, now)
  const minRt = Shedder.minRt(state, now)
  return {
    name,
    enabled: true,
    signal: kind,
    value,
    threshold: params.threshold,
    priorityThreshold: params.priorityThreshold,
    flying: state.flying,
    avgFlying: state.avgFlying,
    maxPass,
    minRt,
    maxFlight: Shedder.maxFlightOf(maxPass, minRt, params.bucketMillis, params.allowanceMillis),
    overloadFactor: Shedder.factorOf(params.factor, value, params.threshold),
    hot: Shedder.isHot(state, now),
    total: state.total,
    passed: state.passed,
    dropped: Shedder.droppedTotal(state),
    droppedByPriority: dropCounts(state.dropped)
  }
}

type Admitted = <A, E, R>(
  tier: number,
  arrivedAt: number | undefined,
  admitted: (start: number) => Effect.Effect<A, E, R>
) => Effect.Effect<A, E | OverloadedError, R>

/** Admission in one synchronous step: the start time of an admitted request, or the rejection. */
type AdmitNow = (tier: number, arrivedAt: number | undefined) => number | Effect.Effect<never, OverloadedError>

/**
 * The admission step: reads the signal and decides in one synchronous step when it can (`now`,
 * present when the signal can be read without an effect).
 */
const admission = (
  decoded: Decoded,
  state: Shedder.State,
  signal: Signal.Reader,
  clock: Clock.Clock,
  onAdmit: () => void,
  onDropped: (value: number, now: number) => void
): { readonly run: Admitted; readonly now: AdmitNow | undefined } => {
  const { name } = decoded
  const rejected = Effect.fail(new OverloadedError({ shedder: name, reason: decoded.kind }, true))
  const shed = Shedder.priorities.map((p) => Metrics.shedRequestsOf(name, p))
  const record = signal.record

  const onDrop = (value: number, now: number, tier: number, wasHot: boolean): Effect.Effect<never, OverloadedError> => {
    shed[tier].unsafeUpdate(1, [])
    onDropped(value, now)
    if (wasHot) return rejected
    return Effect.zipRight(
      Effect.logWarning("load shedding started").pipe(
        Effect.annotateLogs({
          shedder: name,
          signal: decoded.kind,
          value,
          priority: Shedder.priorities[tier],
          flying: state.flying,
          avgFlying: state.avgFlying
        })
      ),
      rejected
    )
  }

  // the start time of an admitted request (`now`), or the rejection
  const step = (value: number, now: number, tier: number): number | Effect.Effect<never, OverloadedError> => {
    const wasHot = state.droppedRecently[tier]
    if (!Shedder.allow(state, now, value, tier)) return onDrop(value, now, tier, wasHot)
    onAdmit()
    return now
  }

  const decide = <A, E, R>(
    value: number,
    now: number,
    tier: number,
    admitted: (start: number) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | OverloadedError, R> => {
    const decision = step(value, now, tier)
    return typeof decision === "number" ? admitted(decision) : decision
  }

  const unsafeRead = signal.unsafeRead
  if (unsafeRead === undefined) {
    return {
      run: (tier, arrivedAt, admitted) =>
        Effect.flatMap(signal.read, (value) =>
          Effect.suspend(() => {
            const now = clock.unsafeCurrentTimeMillis()
            if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
            return decide(value, now, tier, admitted)
          })),
      now: undefined
    }
  }
  const admitNow: AdmitNow = (tier, arrivedAt) => {
    const now = clock.unsafeCurrentTimeMillis()
    if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
    return step(unsafeRead(), now, tier)
  }
  return {
    run: (tier, arrivedAt, admitted) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
        return decide(unsafeRead(), now, tier, admitted)
      }),
    now: admitNow
  }
}

const build = (
  decoded: Decoded,
  defaultTier: number,
  signal: Signal.Reader,
  clock: Clock.Clock
): { readonly shedder: LoadShedder; readonly report: Effect.Effect<void> } => {
  const { name } = decoded
  const state = Shedder.make(decoded.params, clock.unsafeCurrentTimeMillis())
  const inFlight = Metrics.requestsInFlight(name)
  const updateGauge = () => inFlight.unsafeUpdate(state.flying, [])
  // the live view hears every drop, as it was then; `stats` is defined below
  const events = new EventView<Stats, Stats>(Effect.suspend(() => stats), Effect.succeed)
  const { now: admitNow, run: withAdmission } = admission(decoded, state, signal, clock, updateGauge, (value, now) => {
    if (events.subscribers > 0) events.offer(statsOf(decoded, state, value, now))
  })

  const unsafePass = (start: number): void => {
    Shedder.pass(state, start, clock.unsafeCurrentTimeMillis())
    updateGauge()
  }
  const unsafeFail = (): void => {
    Shedder.fail(state)
    updateGauge()
  }
  const failNow: Effect.Effect<void> = Effect.sync(unsafeFail)

  const ticketFrom = (start: number): Effect.Effect<Ticket> => {
    let done = false
    const once = (effect: Effect.Effect<void>) =>
      Effect.suspend(() => {
        if (done) return Effect.void
        done = true
        return effect
      })
    return Effect.succeed<Ticket>({ pass: once(Effect.sync(() => unsafePass(start))), fail: once(failNow) })
  }

  const tierOf = (priority: Priority | undefined) => priority === undefined ? defaultTier : Shedder.tierIndex[priority]

  const admit = (priority?: Priority, arrivedAt?: number): Effect.Effect<Ticket, OverloadedError> =>
    withAdmission(tierOf(priority), arrivedAt, ticketFrom)

  const protect = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    priority?: Priority
  ): Effect.Effect<A, E | OverloadedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      withAdmission(tierOf(priority), undefined, (start) =>
        Effect.matchCauseEffect(restore(effect), {
          onFailure: (cause) => {
            unsafeFail()
            return Effect.failCause(cause)
          },
          onSuccess: (a) => {
            unsafePass(start)
            return Effect.succeed(a)
          }
        }))
    )

  const stats: Effect.Effect<Stats> = Effect.flatMap(
    signal.read,
    (value) => Effect.sync(() => statsOf(decoded, state, value, clock.unsafeCurrentTimeMillis()))
  )

  let last = { total: 0, passed: 0, dropped: 0 }
  const report = Effect.flatMap(signal.read, (value) =>
    Effect.suspend(() => {
      const dropped = Shedder.droppedTotal(state)
      const total = state.total - last.total
      const pass = state.passed - last.passed
      const drop = dropped - last.dropped
      last = { total: state.total, passed: state.passed, dropped }
      if (total === 0) return Effect.void
      return Effect.logInfo("shedding_stat").pipe(
        Effect.annotateLogs({ shedder: name, signal: decoded.kind, value, total, pass, drop })
      )
    }))

  const shedder: LoadShedder = { name, allow: admit(), admit, protect, stats, view: events.view }
  if (admitNow !== undefined) {
    SyncAdmission.attach(
      shedder,
      {
        admit: (priority, arrivedAt) => admitNow(tierOf(priority), arrivedAt),
        pass: unsafePass,
        fail: unsafeFail
      } satisfies SyncAdmission.Shedder
    )
  }
  return { shedder, report }
}

/**
 * How often the `shedding_stat` line is logged.
 *
 * @since 0.1.0
 * @category constants
 */
export const statInterval = Duration.minutes(1)

const makeWith = (
  options: Options,
  priority: Priority
): Effect.Effect<LoadShedder, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const mode = yield* ResilienceMode.current
    if (!ResilienceMode.isSheddingEnabled(mode)) return disabled(decoded)
    const signal = yield* Signal.reader(decoded.kind)
    const clock = yield* Effect.clock
    const { report, shedder } = build(decoded, Shedder.tierIndex[priority], signal, clock)
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(statInterval), report)))
    return yield* ShadowView.attach(shedder, ShadowView.loadShedder)
  })

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
  makeWith(options, "standard")

/**
 * A shedder whose requests are `"critical"` unless `admit` says otherwise: with the CPU signal its
 * threshold is go-zero's priority threshold, halfway between `cpuThreshold` and 1000.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePriority = (options: Options): Effect.Effect<LoadShedder, InvalidOptionsError, Scope.Scope> =>
  makeWith(options, "critical")

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
): Effect.Effect<Group, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const { priority, ...shedderOptions } = options
    const decoded = yield* decode({ ...shedderOptions, name: "group" })
    const mode = yield* ResilienceMode.current
    // the signal is found (or its live sampler started) once for the whole group
    const signal = ResilienceMode.isSheddingEnabled(mode) ? yield* Signal.reader(decoded.kind) : undefined
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const tier = Shedder.tierIndex[priority === true ? "critical" : "standard"]
    const shadow = yield* ShadowView.current
    const shedders = new Map<string, LoadShedder>()
    const create = (name: string): Effect.Effect<LoadShedder, InvalidOptionsError> =>
      Effect.gen(function*() {
        if (name.length === 0) return yield* invalid("name", name, "expected a non-empty name")
        const existing = shedders.get(name)
        if (existing !== undefined) return existing
        const named = { ...decoded, name }
        if (signal === undefined) {
          const off = disabled(named)
          shedders.set(name, off)
          return off
        }
        const built = build(named, tier, signal, clock)
        const { report } = built
        const shedder = Option.isNone(shadow) ? built.shedder : ShadowView.loadShedder(built.shedder, shadow.value)
        // registered in the same synchronous step as the lookup: concurrent `get`s share it
        shedders.set(name, shedder)
        yield* Effect.forkIn(Effect.forever(Effect.zipRight(Effect.sleep(statInterval), report)), scope)
        return shedder
      })
    return { get: create }
  })

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
