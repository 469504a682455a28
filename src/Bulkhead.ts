/**
 * Bulkheads: a fixed number of permits per downstream, so one slow dependency cannot take every
 * fiber of the service with it.
 *
 * A call with a free permit runs at once. A call without one waits in a FIFO queue of at most
 * `maxQueue` callers (for at most `queueTimeout`), or is rejected with `BulkheadFullError`. A permit
 * comes back when the protected work stops — on success, failure, defect or interruption — and goes
 * straight to the oldest waiter. A waiter that is interrupted leaves the queue at once. Work that is
 * still running after its caller gave up (an uninterruptible region, a slow finalizer, a
 * `Effect.disconnect`) keeps its permit until it really stops: the permit belongs to the work, not
 * to whoever waits for it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 10, maxQueue: 20, queueTimeout: "1 second" })
 *   return yield* callPayments.pipe(bulkhead.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { BulkheadFullError, InvalidOptionsError, UnknownNameError } from "./Errors.js"
import { decodeOptions, Name, NonNegativeInt, PositiveDuration, PositiveInt } from "./internal/options.js"
import * as Q from "./internal/waitQueue.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** identifies the bulkhead in errors, metrics and the registry */
  readonly name: string
  /** permits: how many calls may run at once (a positive integer) */
  readonly maxConcurrent: number
  /** how many callers may wait for a permit (default 0: reject at once when full) */
  readonly maxQueue?: number | undefined
  /** how long a queued caller waits before it is rejected with reason `"queue-timeout"` (default: no limit) */
  readonly queueTimeout?: Duration.DurationInput | undefined
}

/**
 * A snapshot of a bulkhead. `rejected` counts callers turned away at once (`"full"`), `timedOut`
 * those that gave up waiting in the queue (`"queue-timeout"`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly active: number
  readonly queued: number
  readonly rejected: number
  readonly timedOut: number
  readonly maxConcurrent: number
  readonly maxQueue: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  /** runs `effect` under a permit, queueing when allowed; fails `BulkheadFullError` when rejected */
  readonly protect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError, R>
  /** runs `effect` only if a permit is free right now; never queues */
  readonly tryProtect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError, R>
  readonly stats: Effect.Effect<Stats>
}

const OptionsSchema = Schema.Struct({
  name: Name,
  maxConcurrent: PositiveInt,
  maxQueue: Schema.optionalWith(NonNegativeInt, { default: () => 0 }),
  queueTimeout: Schema.optional(PositiveDuration)
})

const decode = decodeOptions("Bulkhead", OptionsSchema)

const activeKey = (name: string) => MetricKey.gauge("resilience_bulkhead_active").pipe(MetricKey.tagged("name", name))
const rejectedKey = (name: string) =>
  MetricKey.counter("resilience_bulkhead_rejected_total").pipe(MetricKey.tagged("name", name))

/**
 * Builds a bulkhead. Closing the scope rejects the callers still queued (reason `"full"`) and every
 * later call; work already running keeps its permit until it stops.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Bulkhead, InvalidOptionsError, Scope.Scope> =>
  Effect.flatMap(decode(options), (decoded) => {
    const { maxConcurrent, maxQueue, name, queueTimeout } = decoded
    const permits = Q.makePermits(maxConcurrent)
    // fromMetricKey on a pre-tagged key caches its hook: an update is a plain field write
    const activeGauge = Metric.fromMetricKey(activeKey(name))
    const rejectedCounter = Metric.fromMetricKey(rejectedKey(name))
    let rejected = 0
    let timedOut = 0
    let closed = false

    const fullError = new BulkheadFullError({ bulkhead: name, reason: "full", maxConcurrent, maxQueue }, true)
    const timeoutError = new BulkheadFullError(
      { bulkhead: name, reason: "queue-timeout", maxConcurrent, maxQueue },
      true
    )
    const failFull = Effect.fail(fullError)
    const failTimeout = Effect.fail(timeoutError)

    // one warning per overload episode: set on the first rejection, cleared once a permit is free
    let saturated = false
    const logSaturated = Effect.logWarning("bulkhead saturated: rejecting calls").pipe(
      Effect.annotateLogs({ module: "Bulkhead", bulkhead: name, maxConcurrent, maxQueue })
    )
    const failFullAndLog = Effect.zipRight(logSaturated, failFull)

    const reject = () => {
      rejected++
      rejectedCounter.unsafeUpdate(1, [])
      if (saturated) return failFull
      saturated = true
      return failFullAndLog
    }

    const releasePermit = () => {
      Q.release(permits)
      activeGauge.unsafeUpdate(permits.active, [])
      if (saturated && permits.active < maxConcurrent) saturated = false
    }

    // the permit is returned however the work ends; one handler pair shared by every call
    const heldHandlers = {
      onFailure: (cause: Cause.Cause<unknown>) => {
        releasePermit()
        return Effect.failCause(cause)
      },
      onSuccess: (a: unknown) => {
        releasePermit()
        return Effect.succeed(a)
      }
    }

    // runs `effect` while holding a permit (called in an uninterruptible region)
    const runHeld = <A, E, R>(
      restore: <AX, EX, RX>(self: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E, R> => Effect.matchCauseEffect(restore(effect), heldHandlers) as Effect.Effect<A, E, R>

    const enqueue = <A, E, R>(
      restore: <AX, EX, RX>(self: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | BulkheadFullError, R> => {
      const waiter = Q.makeWaiter()
      Q.push(permits.queue, waiter)
      let expired = false
      const wait = queueTimeout === undefined
        ? Q.awaitPermit(waiter)
        : Effect.timeoutFail(Q.awaitPermit(waiter), {
          duration: queueTimeout,
          onTimeout: () => {
            expired = true
            return timeoutError
          }
        })
      return Effect.matchCauseEffect(restore(wait), {
        onFailure: (cause) => {
          // interrupted or timed out: leave the queue, or pass on a permit handed over meanwhile
          Q.abandon(permits, waiter)
          activeGauge.unsafeUpdate(permits.active, [])
          if (expired && !Cause.isInterrupted(cause)) {
            timedOut++
            rejectedCounter.unsafeUpdate(1, [])
            return failTimeout
          }
          return Effect.failCause(cause)
        },
        onSuccess: (): Effect.Effect<A, E | BulkheadFullError, R> => {
          if (!waiter.granted) return reject() // the bulkhead closed while we waited
          waiter.granted = false
          return runHeld(restore, effect)
        }
      })
    }

    const protect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R> =>
      // the mask callback runs synchronously when the effect runs: check, take and guard the permit
      // in one step, with no interruption point between taking it and installing its release
      Effect.uninterruptibleMask((restore): Effect.Effect<A, E | BulkheadFullError, R> => {
        if (!closed && Q.tryAcquire(permits)) {
          activeGauge.unsafeUpdate(permits.active, [])
          return runHeld(restore, effect)
        }
        if (closed || permits.queue.length >= maxQueue) return reject()
        return enqueue(restore, effect)
      })

    const tryProtect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R> =>
      Effect.uninterruptibleMask((restore): Effect.Effect<A, E | BulkheadFullError, R> => {
        if (!closed && Q.tryAcquire(permits)) {
          activeGauge.unsafeUpdate(permits.active, [])
          return runHeld(restore, effect)
        }
        return reject()
      })

    const stats: Effect.Effect<Stats> = Effect.sync(() => ({
      active: permits.active,
      queued: permits.queue.length,
      rejected,
      timedOut,
      maxConcurrent,
      maxQueue
    }))

    const bulkhead: Bulkhead = { name, maxConcurrent, maxQueue, protect, tryProtect, stats }
    return Effect.as(
      Effect.addFinalizer(() =>
        Effect.sync(() => {
          closed = true
          Q.wakeAll(permits.queue)
        })
      ),
      bulkhead
    )
  })

// data-first (either argument order) and data-last forms of a bulkhead's protect / tryProtect
const dualRun = (select: (bulkhead: Bulkhead) => Bulkhead["protect"]): any =>
  dual(2, (a: unknown, b: unknown) =>
    Effect.isEffect(a)
      ? select(b as Bulkhead)(a)
      : select(a as Bulkhead)(b as Effect.Effect<unknown, unknown, unknown>))

/**
 * Runs `effect` under `bulkhead`. Both `protect(bulkhead, effect)` and
 * `effect.pipe(protect(bulkhead))` work.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (bulkhead: Bulkhead): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError, R>
  <A, E, R>(bulkhead: Bulkhead, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadFullError, R>
} = dualRun((bulkhead) => bulkhead.protect)

/**
 * Like {@link protect}, but never queues: rejected at once when no permit is free.
 *
 * @since 0.1.0
 * @category combinators
 */
export const tryProtect: {
  (bulkhead: Bulkhead): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError, R>
  <A, E, R>(bulkhead: Bulkhead, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadFullError, R>
} = dualRun((bulkhead) => bulkhead.tryProtect)

/**
 * A layer providing a bulkhead under your own tag.
 *
 * @example
 * ```ts
 * class PaymentsBulkhead extends Context.Tag("app/PaymentsBulkhead")<PaymentsBulkhead, Bulkhead.Bulkhead>() {}
 * const PaymentsBulkheadLive = Bulkhead.layer(PaymentsBulkhead, { name: "payments", maxConcurrent: 10 })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(tag: Context.Tag<I, Bulkhead>, options: Options): Layer.Layer<I, InvalidOptionsError> =>
  Layer.scoped(tag, make(options))

/**
 * A layer providing a bulkhead whose options are read from `effect/Config`.
 *
 * @example
 * ```ts
 * const PaymentsBulkheadLive = Bulkhead.layerConfig(PaymentsBulkhead, Config.all({
 *   name: Config.succeed("payments"),
 *   maxConcurrent: Config.integer("PAYMENTS_MAX_CONCURRENT").pipe(Config.withDefault(10)),
 *   maxQueue: Config.integer("PAYMENTS_MAX_QUEUE").pipe(Config.withDefault(0))
 * }))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, Bulkhead>,
  config: Config.Config<Options>
): Layer.Layer<I, InvalidOptionsError | ConfigError.ConfigError> => Layer.scoped(tag, Effect.flatMap(config, make))

/**
 * Many named bulkheads in one place, one per downstream.
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkheadRegistry {
  /** builds and registers a bulkhead; a name already taken fails with `InvalidOptionsError` */
  readonly register: (options: Options) => Effect.Effect<Bulkhead, InvalidOptionsError>
  readonly get: (name: string) => Effect.Effect<Bulkhead, UnknownNameError>
  /** runs `effect` under the bulkhead called `name` */
  readonly protect: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | BulkheadFullError | UnknownNameError, R>
  /** a snapshot of every registered bulkhead, by name */
  readonly stats: Effect.Effect<Readonly<Record<string, Stats>>>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Registry extends Context.Tag("effect-resilience/BulkheadRegistry")<Registry, BulkheadRegistry>() {}

/**
 * Builds a registry; its bulkheads live as long as the enclosing scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (
  bulkheads: ReadonlyArray<Options> = []
): Effect.Effect<BulkheadRegistry, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const entries = new Map<string, Bulkhead>()
    const unknown = (name: string) => new UnknownNameError({ registry: "BulkheadRegistry", name }, true)

    // names being built: reserved in the same synchronous step as the check, so two concurrent
    // registrations of one name cannot both pass it; released however the build ends
    const reserved = new Set<string>()

    const register = (options: Options): Effect.Effect<Bulkhead, InvalidOptionsError> =>
      Effect.uninterruptibleMask((restore) => {
        const name = options.name
        if (entries.has(name) || reserved.has(name)) {
          return Effect.fail(
            new InvalidOptionsError({
              module: "Bulkhead.Registry",
              option: "name",
              value: name,
              reason: "a bulkhead with this name is already registered"
            })
          )
        }
        reserved.add(name)
        return Effect.onExit(restore(Scope.extend(make(options), scope)), (exit) =>
          Effect.sync(() => {
            reserved.delete(name)
            if (exit._tag === "Success") entries.set(exit.value.name, exit.value)
          }))
      })

    const get = (name: string): Effect.Effect<Bulkhead, UnknownNameError> =>
      Effect.suspend(() => {
        const bulkhead = entries.get(name)
        return bulkhead === undefined ? Effect.fail(unknown(name)) : Effect.succeed(bulkhead)
      })

    const protectNamed = <A, E, R>(
      name: string,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | BulkheadFullError | UnknownNameError, R> =>
      Effect.suspend((): Effect.Effect<A, E | BulkheadFullError | UnknownNameError, R> => {
        const bulkhead = entries.get(name)
        return bulkhead === undefined ? Effect.fail(unknown(name)) : bulkhead.protect(effect)
      })

    const stats = Effect.suspend(() =>
      Effect.map(
        Effect.forEach(entries.values(), (bulkhead) => Effect.map(bulkhead.stats, (s) => [bulkhead.name, s] as const)),
        (pairs) => Object.fromEntries(pairs) as Readonly<Record<string, Stats>>
      )
    )

    yield* Effect.forEach(bulkheads, register, { discard: true })
    return { register, get, protect: protectNamed, stats }
  })

/**
 * A layer providing the {@link Registry}, with `bulkheads` registered up front.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRegistry = (
  options: { readonly bulkheads?: ReadonlyArray<Options> } = {}
): Layer.Layer<Registry, InvalidOptionsError> => Layer.scoped(Registry, makeRegistry(options.bulkheads))

/**
 * Runs `effect` under the registered bulkhead called `name`.
 *
 * @example
 * ```ts
 * const user = fetchUser(id).pipe(Bulkhead.protectNamed("user-service"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const protectNamed = (name: string) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | BulkheadFullError | UnknownNameError, R | Registry> =>
  Effect.flatMap(Registry, (registry) => registry.protect(name, effect))
