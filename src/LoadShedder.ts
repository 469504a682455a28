/**
 * Adaptive load shedding driven by CPU (go-zero's AdaptiveShedder): when the CPU is over
 * `cpuThreshold` and more requests are in flight than the service has recently shown it can turn
 * around, new requests are rejected with `OverloadedError` before they use any CPU.
 *
 * Over a rolling window of `window` in `buckets` (5 s in 50 buckets of 100 ms by default), counting
 * only completed buckets:
 *
 * - `maxPass` = the most successful requests in one bucket (at least 1);
 * - `minRt` = the lowest average round-trip time of a bucket, ms (1000 when there is none);
 * - `maxFlight = max(1, maxPass · minRt · bucketsPerSecond / 1000)`: the concurrency the best
 *   recent throughput at the best recent latency needs (Little's law);
 * - `overloadFactor = clamp((1000 − cpu) / (1000 − cpuThreshold), 0.1, 1)`;
 * - a request is dropped when `(cpu ≥ cpuThreshold || hot) && avgFlying > maxFlight · factor &&
 *   flying > maxFlight · factor`, where `hot` means requests were dropped and the CPU was over the
 *   threshold less than 1 s ago, and `avgFlying` is a moving average (β = 0.9) of the in-flight
 *   count taken when requests complete.
 *
 * Shedding is on only in `ResilienceMode` `"pro"` (the default when `RESILIENCE_MODE` is unset): a
 * shedder built in `"dev"`, `"test"`, `"rt"` or `"pre"` admits everything.
 *
 * Metrics: `resilience_shed_requests_total{name}`, `resilience_requests_in_flight{name}`. Once a
 * minute, when there was traffic, it logs `shedding_stat` with `cpu`, `total`, `pass` and `drop`.
 *
 * @since 0.1.0
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as CpuUsage from "./CpuUsage.js"
import { InvalidOptionsError, OverloadedError } from "./Errors.js"
import { decodeOptions, Name, PositiveDuration, PositiveInt } from "./internal/options.js"
import * as Shedder from "./internal/shedder.js"
import * as Metrics from "./internal/sheddingMetrics.js"
import * as ResilienceMode from "./ResilienceMode.js"

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
  readonly cpu: number
  readonly cpuThreshold: number
  readonly flying: number
  readonly avgFlying: number
  readonly maxPass: number
  readonly minRt: number
  readonly maxFlight: number
  readonly overloadFactor: number
  /** requests were dropped and the CPU was over the threshold less than 1 s ago */
  readonly hot: boolean
  readonly total: number
  readonly passed: number
  readonly dropped: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LoadShedder {
  readonly name: string
  /** admits (a `Ticket`) or rejects with `OverloadedError` */
  readonly allow: Effect.Effect<Ticket, OverloadedError>
  /** runs `effect` if admitted: success passes, failure, defect and interruption fail */
  readonly protect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OverloadedError, R>
  readonly stats: Effect.Effect<Stats>
}

/**
 * Options of `make`. Defaults: `cpuThreshold` 900 (per-mille), `window` 5 seconds, `buckets` 50.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly name: string
  /** per-mille of the CPU at which shedding may start, an integer in [0, 999] */
  readonly cpuThreshold?: number
  readonly window?: Duration.DurationInput
  readonly buckets?: number
}

const Threshold = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 0 && n < 1000) || "expected an integer in [0, 999]")
)

const OptionsSchema = Schema.Struct({
  name: Name,
  cpuThreshold: Schema.optional(Threshold),
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
export const defaults = { cpuThreshold: 900, window: Duration.seconds(5), buckets: 50 } as const

const decode = (options: Options): Effect.Effect<Shedder.Params & { readonly name: string }, InvalidOptionsError> =>
  Effect.flatMap(decodeSchema(options), (decoded) => {
    const window = Duration.toMillis(decoded.window ?? defaults.window)
    const buckets = decoded.buckets ?? defaults.buckets
    const bucketMillis = window / buckets
    if (bucketMillis < 1) {
      return Effect.fail(
        new InvalidOptionsError({
          module: "LoadShedder",
          option: "window",
          value: options.window,
          reason: `window is shorter than ${buckets} buckets of 1 ms`
        })
      )
    }
    return Effect.succeed({
      name: decoded.name,
      cpuThreshold: decoded.cpuThreshold ?? defaults.cpuThreshold,
      buckets,
      bucketMillis
    })
  })

const noopTicket: Ticket = { pass: Effect.void, fail: Effect.void }

const disabled = (name: string, cpuThreshold: number): LoadShedder => {
  const stats: Stats = {
    name,
    enabled: false,
    cpu: 0,
    cpuThreshold,
    flying: 0,
    avgFlying: 0,
    maxPass: 1,
    minRt: Shedder.defaultMinRt,
    maxFlight: 1,
    overloadFactor: 1,
    hot: false,
    total: 0,
    passed: 0,
    dropped: 0
  }
  return { name, allow: Effect.succeed(noopTicket), protect: (effect) => effect, stats: Effect.succeed(stats) }
}

const build = (
  params: Shedder.Params & { readonly name: string },
  cpu: CpuUsage.Service,
  clock: Clock.Clock
): { readonly shedder: LoadShedder; readonly report: Effect.Effect<void> } => {
  const { name } = params
  const state = Shedder.make(params, clock.unsafeCurrentTimeMillis())
  const shed = Metrics.shedRequests(name)
  const inFlight = Metrics.requestsInFlight(name)
  const rejected = Effect.fail(new OverloadedError({ shedder: name, reason: "cpu" }, true))
  const unsafeCpu = cpu.unsafeCurrent

  const onDrop = (cpuNow: number, wasHot: boolean): Effect.Effect<never, OverloadedError> => {
    shed.unsafeUpdate(1, [])
    if (wasHot) return rejected
    return Effect.zipRight(
      Effect.logWarning("load shedding started").pipe(
        Effect.annotateLogs({ shedder: name, cpu: cpuNow, flying: state.flying, avgFlying: state.avgFlying })
      ),
      rejected
    )
  }

  const decide = <A, E, R>(
    cpuNow: number,
    now: number,
    admitted: (start: number) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | OverloadedError, R> => {
    const wasHot = state.droppedRecently
    if (!Shedder.allow(state, now, cpuNow)) return onDrop(cpuNow, wasHot)
    inFlight.unsafeUpdate(state.flying, [])
    return admitted(now)
  }

  const withAdmission: <A, E, R>(
    admitted: (start: number) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | OverloadedError, R> = unsafeCpu !== undefined
    ? (admitted) => Effect.suspend(() => decide(unsafeCpu(), clock.unsafeCurrentTimeMillis(), admitted))
    : (admitted) =>
      Effect.flatMap(
        cpu.current,
        (cpuNow) => Effect.suspend(() => decide(cpuNow, clock.unsafeCurrentTimeMillis(), admitted))
      )

  const unsafePass = (start: number): void => {
    Shedder.pass(state, start, clock.unsafeCurrentTimeMillis())
    inFlight.unsafeUpdate(state.flying, [])
  }

  const unsafeFail = (): void => {
    Shedder.fail(state)
    inFlight.unsafeUpdate(state.flying, [])
  }

  const passFrom = (start: number): Effect.Effect<void> => Effect.sync(() => unsafePass(start))
  const failNow: Effect.Effect<void> = Effect.sync(unsafeFail)

  const allow: Effect.Effect<Ticket, OverloadedError> = withAdmission((start) => {
    let done = false
    const once = (effect: Effect.Effect<void>) =>
      Effect.suspend(() => {
        if (done) return Effect.void
        done = true
        return effect
      })
    return Effect.succeed<Ticket>({ pass: once(passFrom(start)), fail: once(failNow) })
  })

  const protect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | OverloadedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      withAdmission((start) =>
        Effect.matchCauseEffect(restore(effect), {
          onFailure: (cause) => {
            unsafeFail()
            return Effect.failCause(cause)
          },
          onSuccess: (a) => {
            unsafePass(start)
            return Effect.succeed(a)
          }
        })
      )
    )

  const stats: Effect.Effect<Stats> = Effect.flatMap(cpu.current, (cpuNow) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const maxPass = Shedder.maxPass(state, now)
      const minRt = Shedder.minRt(state, now)
      return Effect.succeed<Stats>({
        name,
        enabled: true,
        cpu: cpuNow,
        cpuThreshold: params.cpuThreshold,
        flying: state.flying,
        avgFlying: state.avgFlying,
        maxPass,
        minRt,
        maxFlight: Shedder.maxFlightOf(maxPass, minRt, params.bucketMillis),
        overloadFactor: Shedder.overloadFactor(cpuNow, params.cpuThreshold),
        hot: Shedder.isHot(state, now),
        total: state.total,
        passed: state.passed,
        dropped: state.dropped
      })
    }))

  let last = { total: 0, passed: 0, dropped: 0 }
  const report = Effect.flatMap(cpu.current, (cpuNow) =>
    Effect.suspend(() => {
      const total = state.total - last.total
      const pass = state.passed - last.passed
      const drop = state.dropped - last.dropped
      last = { total: state.total, passed: state.passed, dropped: state.dropped }
      if (total === 0) return Effect.void
      return Effect.logInfo("shedding_stat").pipe(
        Effect.annotateLogs({ shedder: name, cpu: cpuNow, total, pass, drop })
      )
    }))

  return { shedder: { name, allow, protect, stats }, report }
}

const makeWith = (
  options: Options,
  priority: boolean
): Effect.Effect<LoadShedder, InvalidOptionsError, CpuUsage.CpuUsage | Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const params = priority ? { ...decoded, cpuThreshold: Shedder.priorityThreshold(decoded.cpuThreshold) } : decoded
    const mode = yield* ResilienceMode.current
    if (!ResilienceMode.isSheddingEnabled(mode)) return disabled(params.name, params.cpuThreshold)
    const cpu = yield* CpuUsage.CpuUsage
    const clock = yield* Effect.clock
    const { report, shedder } = build(params, cpu, clock)
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(statInterval), report)))
    return shedder
  })

/**
 * How often the `shedding_stat` line is logged.
 *
 * @since 0.1.0
 * @category constants
 */
export const statInterval = Duration.minutes(1)

/**
 * Builds a shedder reading the CPU from `CpuUsage` and the time from the `Clock` of the fiber that
 * builds it. The scope owns the fiber that logs `shedding_stat`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CpuUsage, LoadShedder } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const shedder = yield* LoadShedder.make({ name: "api" })
 *   return yield* Effect.succeed("ok").pipe(shedder.protect) // OverloadedError when shed
 * }).pipe(Effect.scoped, Effect.provide(CpuUsage.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<LoadShedder, InvalidOptionsError, CpuUsage.CpuUsage | Scope.Scope> => makeWith(options, false)

/**
 * A shedder for priority routes: its threshold is halfway between `cpuThreshold` and 1000
 * (950 by default), so it keeps admitting after the normal shedders have started dropping.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePriority = (
  options: Options
): Effect.Effect<LoadShedder, InvalidOptionsError, CpuUsage.CpuUsage | Scope.Scope> => makeWith(options, true)

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
 * A group whose shedders live as long as the scope; `priority` builds them with `makePriority`.
 * The options are checked here, so `get` can only fail on an empty name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGroup = (
  options: Omit<Options, "name"> & { readonly priority?: boolean } = {}
): Effect.Effect<Group, InvalidOptionsError, CpuUsage.CpuUsage | Scope.Scope> =>
  Effect.gen(function*() {
    yield* decode({ ...options, name: "group" })
    const context = yield* Effect.context<CpuUsage.CpuUsage | Scope.Scope>()
    const shedders = new Map<string, LoadShedder>()
    const lock = yield* Effect.makeSemaphore(1)
    const create = (name: string) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const existing = shedders.get(name)
        if (existing !== undefined) return Effect.succeed(existing)
        return makeWith({ ...options, name }, options.priority === true).pipe(
          Effect.tap((shedder) => Effect.sync(() => shedders.set(name, shedder))),
          Effect.provide(context)
        )
      }))
    return {
      get: (name) =>
        Effect.suspend(() => {
          const existing = shedders.get(name)
          return existing !== undefined ? Effect.succeed(existing) : create(name)
        })
    }
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
): Layer.Layer<LoadShedderGroup, InvalidOptionsError, CpuUsage.CpuUsage> =>
  Layer.scoped(LoadShedderGroup, makeGroup(options))
