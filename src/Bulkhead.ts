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
 * declare const callPayments: Effect.Effect<string>
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 10, maxQueue: 20, queueTimeout: "1 second" })
 *   return yield* callPayments.pipe(bulkhead.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import type { UnknownException } from "effect/Cause"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Subscribable from "effect/Subscribable"
import type { BulkheadFullError, InvalidOptionsError, UnknownNameError } from "./Errors.js"
import { BulkheadImpl } from "./internal/bulkhead.js"
import * as internal from "./internal/bulkheadRegistry.js"
import * as InstanceMetrics from "./internal/instanceMetrics.js"
import { decodeOptionsEither, Name, NonNegativeInt, PositiveDuration, PositiveInt } from "./internal/options.js"
import * as Shadow from "./internal/shadow.js"

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
  /**
   * `protect(Effect.tryPromise(evaluate))` with the permit held by the promise itself: taken in the
   * step that starts the promise, given back when it settles. It queues and rejects like `protect`
   * and fails like `Effect.tryPromise` (`UnknownException`, or what `catch` makes of the rejection).
   *
   * Two things differ from wrapping `Effect.tryPromise`. A call admitted at once costs the runtime
   * no step beyond `Effect.tryPromise`'s own (`protect` takes two more). And its permit is the
   * promise's: an interrupted caller aborts the signal passed to `evaluate` but does not give the
   * permit back, since the work the bulkhead bounds is still running — a promise that ignores the
   * signal holds its permit for as long as it runs. A call that had to queue runs as `protect`'s
   * does, its permit held by the caller once granted.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Bulkhead } from "effect-resilience"
   *
   * const program = Effect.gen(function*() {
   *   const bulkhead = yield* Bulkhead.make({ name: "users", maxConcurrent: 10, maxQueue: 50 })
   *   return yield* bulkhead.tryPromise((signal) => fetch("http://127.0.0.1:8080/users/42", { signal }))
   * }).pipe(Effect.scoped)
   * ```
   *
   * @since 0.4.0
   */
  readonly tryPromise: {
    <A>(evaluate: (signal: AbortSignal) => PromiseLike<A>): Effect.Effect<A, UnknownException | BulkheadFullError>
    <A, E>(options: {
      readonly try: (signal: AbortSignal) => PromiseLike<A>
      readonly catch: (error: unknown) => E
    }): Effect.Effect<A, E | BulkheadFullError>
  }
  /**
   * Runs `effect` holding `weight` permits (a large upload weighs more than a small read), queueing
   * like `protect`. The queue stays FIFO: a waiter that does not fit yet holds back the lighter
   * ones behind it, so a heavy call is never starved; a call arriving while anyone waits queues.
   * A weight that is not a whole number from 1 to `maxConcurrent` fails with `InvalidOptionsError`.
   *
   * @since 0.3.0
   */
  readonly protectWeighted: (
    weight: number
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError | InvalidOptionsError, R>
  readonly stats: Effect.Effect<Stats>
  /**
   * The live state, read-only: `view.get` is `stats`; `view.changes` emits it at once and after
   * every change (a call admitted, queued, rejected, timed out or done). Free while nobody
   * subscribes.
   *
   * @since 0.3.0
   */
  readonly view: Subscribable.Subscribable<Stats>
}

const OptionsSchema = () =>
  Schema.Struct({
    name: Name,
    maxConcurrent: PositiveInt,
    maxQueue: Schema.optionalWith(NonNegativeInt, { default: () => 0 }),
    queueTimeout: Schema.optional(PositiveDuration)
  })

const decode = decodeOptionsEither("Bulkhead", OptionsSchema, { exact: true })

/**
 * Builds a bulkhead. Closing the scope rejects the callers still queued (reason `"full"`) and every
 * later call; work already running keeps its permit until it stops.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Bulkhead, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* decode(options)
    const metrics = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    const bulkhead = BulkheadImpl.make(settings, metrics)
    yield* Effect.addFinalizer(() => Effect.sync(() => bulkhead.close()))
    return yield* Shadow.attach<Bulkhead>(bulkhead, Shadow.bulkhead)
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
 * Runs `effect` under `bulkhead` holding `weight` permits (see `Bulkhead.protectWeighted`):
 * `effect.pipe(Bulkhead.protectWeighted(bulkhead, 3))` or `Bulkhead.protectWeighted(effect, bulkhead, 3)`.
 *
 * @since 0.3.0
 * @category combinators
 */
export const protectWeighted: {
  (bulkhead: Bulkhead, weight: number): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | BulkheadFullError | InvalidOptionsError, R>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    bulkhead: Bulkhead,
    weight: number
  ): Effect.Effect<A, E | BulkheadFullError | InvalidOptionsError, R>
} = dual(
  3,
  <A, E, R>(effect: Effect.Effect<A, E, R>, bulkhead: Bulkhead, weight: number) =>
    bulkhead.protectWeighted(weight)(effect)
)

/**
 * A layer providing a bulkhead under your own tag.
 *
 * @example
 * ```ts
 * import { Context } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
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
 * import { Config, Context } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * class PaymentsBulkhead extends Context.Tag("app/PaymentsBulkhead")<PaymentsBulkhead, Bulkhead.Bulkhead>() {}
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
 * Many named bulkheads in one place, one per downstream. At most `maxKeys` are held — the least
 * recently used idle one goes first — and one idle for `idleTimeToLive` is dropped (by default
 * registered bulkheads stay until `remove`d). A bulkhead with calls running or queued is never
 * dropped; a dropped bulkhead's metric series goes with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkheadRegistry {
  /** builds and registers a bulkhead; a name already taken fails with `InvalidOptionsError` */
  readonly register: (options: Options) => Effect.Effect<Bulkhead, InvalidOptionsError>
  /** the bulkhead called `name` (built with `create` on first use when the registry has one) */
  readonly get: (name: string) => Effect.Effect<Bulkhead, UnknownNameError>
  /** runs `effect` under the bulkhead called `name` */
  readonly protect: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | BulkheadFullError | UnknownNameError, R>
  /** drops the bulkhead called `name` (queued callers are rejected); true when there was one */
  readonly remove: (name: string) => Effect.Effect<boolean>
  /** the names currently held */
  readonly names: Effect.Effect<ReadonlyArray<string>>
  /** a snapshot of every registered bulkhead, by name */
  readonly stats: Effect.Effect<Readonly<Record<string, Stats>>>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Registry extends Context.Tag("effect-resilience/BulkheadRegistry")<Registry, BulkheadRegistry>() {}

/**
 * Options of `makeRegistry` and `layerRegistry`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RegistryOptions {
  /** registered up front */
  readonly bulkheads?: ReadonlyArray<Options>
  /**
   * the options of the bulkhead for a name nobody registered: `get` and `protect` build it on
   * first use (default: an unknown name fails with `UnknownNameError`); invalid options make them die
   */
  readonly create?: (name: string) => Options
  /** bulkheads held at most; past it the least recently used idle one is dropped (default 10,000) */
  readonly maxKeys?: number
  /** drop a bulkhead unused for this long (default: never) */
  readonly idleTimeToLive?: Duration.DurationInput
}

/**
 * Builds a registry; its bulkheads live as long as the enclosing scope. Takes the bulkheads to
 * register up front, or `RegistryOptions`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * // one bulkhead per tenant, built on first use, idle ones dropped after 10 minutes
 * const program = Effect.gen(function*() {
 *   const tenants = yield* Bulkhead.makeRegistry({
 *     create: (tenant) => ({ name: `tenant ${tenant}`, maxConcurrent: 8 }),
 *     maxKeys: 50_000,
 *     idleTimeToLive: "10 minutes"
 *   })
 *   return yield* tenants.protect("acme", Effect.succeed("report"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (
  options: ReadonlyArray<Options> | RegistryOptions = []
): Effect.Effect<BulkheadRegistry, InvalidOptionsError, Scope.Scope> =>
  Effect.flatMap(
    internal.makeRegistry(Array.isArray(options) ? { bulkheads: options } : options as RegistryOptions, decode),
    (registry) => Shadow.attach(registry, Shadow.bulkheadRegistry)
  )

/**
 * A layer providing the {@link Registry}, with `bulkheads` registered up front.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRegistry = (options: RegistryOptions = {}): Layer.Layer<Registry, InvalidOptionsError> =>
  Layer.scoped(Registry, makeRegistry(options))

/**
 * Runs `effect` under the registered bulkhead called `name`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * const fetchUser = (id: string) =>
 *   Effect.tryPromise(() => fetch(`http://127.0.0.1:8080/users/${id}`).then((res) => res.json()))
 *
 * const user = fetchUser("42").pipe(Bulkhead.protectNamed("user-service"))
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
