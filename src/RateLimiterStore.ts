/**
 * Where rate-limit state lives. A `RateLimiterStore` runs an algorithm's step for a key; the
 * in-memory store does it synchronously in one `Map` lookup, `RedisStore` does it in one Lua
 * script so that every instance of a service shares the same limits.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { InvalidOptionsError, StoreError } from "./Errors.js"
import { decodeOptions, PositiveDuration, PositiveInt } from "./internal/options.js"
import type { Definition, RawDecision } from "./internal/ratelimit/core.js"
import { toMicros } from "./internal/ratelimit/core.js"
import { KeyWatchers } from "./internal/ratelimit/keyView.js"
import { makeTable, runAll, sweepEvery } from "./internal/ratelimit/memory.js"

/**
 * Runs one step of a limiter's algorithm for `key`: take `cost` (a whole number ≥ 0), or reserve
 * it when the wait would not exceed `maxDelayMs`. The decision is in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stepper {
  (key: string, cost: number, maxDelayMs: number): Effect.Effect<RawDecision, StoreError>
  /**
   * The same step run synchronously at time `now` (ms), offered by stores that decide in-process
   * (the memory store); a limiter uses it to decide with one clock read and no further effect.
   */
  readonly unsafeStep?: ((key: string, now: number, cost: number, maxDelayMs: number) => RawDecision) | undefined
  /**
   * The step followed by `f` of its decision, in one effect: offered by stores that decide in
   * another process (Redis), where it spares the caller's fiber a step after the reply.
   *
   * @since 0.3.0
   */
  readonly stepThen?:
    | (<A, E>(
      key: string,
      cost: number,
      maxDelayMs: number,
      f: (raw: RawDecision) => Effect.Effect<A, E>
    ) => Effect.Effect<A, E | StoreError>)
    | undefined
  /**
   * Gives back a reservation of `cost` (token bucket and GCRA) whose decision reported `timeToAct`
   * (on the store's clock): what x/time/rate's `Reservation.Cancel` gives back.
   *
   * @since 0.2.0
   */
  readonly cancel: (key: string, cost: number, timeToAct: number) => Effect.Effect<void, StoreError>
}

/**
 * Runs several limiters' steps all-or-nothing (see `RateLimiter.all`): takes `cost` from
 * `keys[i]` under limit `i` for every `i` only if every limit admits, and from none otherwise.
 * Returns each limit's decision, in order (an admitting limit's decision tells what it would have
 * left when another one refused).
 *
 * @since 0.3.0
 * @category models
 */
export interface AllStepper {
  (keys: ReadonlyArray<string>, cost: number): Effect.Effect<ReadonlyArray<RawDecision>, StoreError>
  /** the same at time `now` (ms), synchronously, offered by stores that decide in-process */
  readonly unsafeStep?:
    | ((keys: ReadonlyArray<string>, now: number, cost: number) => ReadonlyArray<RawDecision>)
    | undefined
}

/**
 * One limit of an all-or-nothing group, as `prepareAll` sees it.
 *
 * @since 0.3.0
 * @category models
 */
export interface Limit {
  readonly limiter: string
  readonly algorithm: Definition
}

/**
 * Reads a limiter's keys without consuming (`RateLimiter.view`), and tells who watches a key when
 * it changes through this store in this process.
 *
 * @since 0.4.0
 * @category models
 */
export interface KeyReader {
  /** the decision a take of `cost` would get now, taking nothing */
  readonly peek: (key: string, cost: number) => Effect.Effect<RawDecision, StoreError>
  /** the same at time `now` (ms), synchronously, offered by stores that decide in-process */
  readonly unsafePeek?: ((key: string, now: number, cost: number) => RawDecision) | undefined
  /** calls `listener` after each change to `key` made through this store; returns the unwatch */
  readonly watch: (key: string, listener: () => void) => () => void
}

/**
 * The store service. Its one operation, `prepare`, binds a limiter (its name, which namespaces
 * its keys, and its algorithm) and returns the `Stepper` the limiter calls on every request.
 *
 * @since 0.1.0
 * @category services
 */
export class RateLimiterStore extends Context.Tag("effect-resilience/RateLimiterStore")<
  RateLimiterStore,
  {
    readonly name: string
    readonly prepare: (limiter: string, algorithm: Definition) => Effect.Effect<Stepper>
    /**
     * Binds several limiters for all-or-nothing takes (`RateLimiter.all`); a store without it
     * cannot compose limits atomically.
     *
     * @since 0.3.0
     */
    readonly prepareAll?: ((limits: ReadonlyArray<Limit>) => Effect.Effect<AllStepper>) | undefined
    /**
     * Binds a limiter for reads that consume nothing (`RateLimiter.view`); a store without it
     * offers no per-key views.
     *
     * @since 0.4.0
     */
    readonly prepareView?: ((limiter: string, algorithm: Definition) => Effect.Effect<KeyReader>) | undefined
  }
>() {}

/**
 * Options of the in-memory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** most keys kept per limiter; beyond it the least recently used key is evicted (default 100,000) */
  readonly maxKeys?: number | undefined
  /**
   * forget a key after this long without use even if its state still matters (default: only when
   * its state no longer matters, i.e. it is back to full capacity)
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  /**
   * how often `layerMemory`'s background sweeper walks every table and drops dead keys, so memory
   * goes back down after a burst of keys even when no further call arrives (default 10 seconds)
   *
   * @since 0.2.0
   */
  readonly sweepInterval?: Duration.DurationInput | undefined
}

const MemoryOptionsSchema = Schema.Struct({
  maxKeys: Schema.optionalWith(PositiveInt, { default: () => 100_000 }),
  idleTimeToLive: Schema.optional(PositiveDuration),
  sweepInterval: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(10) })
})

type Table = ReturnType<typeof makeTable>

/**
 * An in-memory store. Each limiter gets its own table (limiters built with the same name and
 * algorithm share one, as they would share keys in Redis); a decision is one clock read and a
 * `Map` get/set, synchronous inside one effect. Memory is bounded: a key is dropped once its state is
 * indistinguishable from a fresh key's (every algorithm reports when that is), or after
 * `idleTimeToLive` without use, and at most `maxKeys` keys are kept per limiter (least recently
 * used first out). State is per process: use `RedisStore` to share limits between instances.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (
  options: MemoryOptions = {}
): Effect.Effect<RateLimiterStore["Type"], InvalidOptionsError> => Effect.map(makeMemoryTables(options), (m) => m.store)

const makeMemoryTables = (options: MemoryOptions) =>
  Effect.map(decodeOptions("RateLimiterStore", MemoryOptionsSchema)(options), (o) => {
    const idleTimeToLive = o.idleTimeToLive === undefined ? Infinity : Duration.toMillis(o.idleTimeToLive) * 1000
    // limiters with the same name and algorithm share a table, as they share keys in Redis
    const tables = new Map<string, Table>()
    // who watches which key, per table (`RateLimiter.view`)
    const watchers = new Map<string, KeyWatchers>()
    const tableFor = (limiter: string, algorithm: Definition): Table => {
      const id = `${limiter}\u0000${algorithm.id}`
      let table = tables.get(id)
      if (table === undefined) {
        table = makeTable(algorithm, { maxKeys: o.maxKeys, idleTimeToLive })
        tables.set(id, table)
        watchers.set(id, new KeyWatchers())
      }
      return table
    }
    const watchersFor = (limiter: string, algorithm: Definition): KeyWatchers =>
      watchers.get(`${limiter}\u0000${algorithm.id}`)!
    const store = RateLimiterStore.of({
      name: "memory",
      prepareAll: (limits) =>
        Effect.sync(() => {
          const group = limits.map((l) => tableFor(l.limiter, l.algorithm))
          const watching = limits.map((l) => watchersFor(l.limiter, l.algorithm))
          const unsafeStep = (keys: ReadonlyArray<string>, now: number, cost: number) => {
            const decisions = runAll(group, keys, now * 1000, cost)
            // a refused group wrote nothing
            let allowed = true
            for (let i = 0; i < decisions.length; i++) if (!decisions[i].allowed) allowed = false
            if (allowed) {
              for (let i = 0; i < watching.length; i++) if (watching[i].count > 0) watching[i].changed(keys[i])
            }
            return decisions
          }
          const stepper: AllStepper = Object.assign(
            (keys: ReadonlyArray<string>, cost: number) =>
              Effect.clockWith((clock) => Effect.succeed(unsafeStep(keys, clock.unsafeCurrentTimeMillis(), cost))),
            { unsafeStep }
          )
          return stepper
        }),
      prepare: (limiter, algorithm) =>
        Effect.sync(() => {
          const table = tableFor(limiter, algorithm)
          const watching = watchersFor(limiter, algorithm)
          const { run } = table
          const unsafeStep = (key: string, now: number, cost: number, maxDelayMs: number) => {
            const decision = run(key, now * 1000, cost, maxDelayMs === 0 ? 0 : toMicros(maxDelayMs))
            // a refused take writes nothing; the one-field test keeps unwatched limiters at full speed
            if (watching.count > 0 && decision.allowed) watching.changed(key)
            return decision
          }
          const cancel = (key: string, now: number, cost: number, timeToAct: number) => {
            table.cancel(key, now, cost, timeToAct)
            if (watching.count > 0) watching.changed(key)
          }
          const stepper: Stepper = Object.assign(
            (key: string, cost: number, maxDelayMs: number) =>
              Effect.clockWith((clock) =>
                Effect.succeed(unsafeStep(key, clock.unsafeCurrentTimeMillis(), cost, maxDelayMs))
              ),
            {
              unsafeStep,
              cancel: (key: string, cost: number, timeToAct: number) =>
                Effect.clockWith((clock) =>
                  Effect.sync(() => cancel(key, clock.unsafeCurrentTimeMillis() * 1000, cost, timeToAct))
                )
            }
          )
          return stepper
        }),
      prepareView: (limiter, algorithm) =>
        Effect.sync(() => {
          const table = tableFor(limiter, algorithm)
          const watching = watchersFor(limiter, algorithm)
          const unsafePeek = (key: string, now: number, cost: number) => table.evaluate(key, now * 1000, cost).decision
          const reader: KeyReader = {
            peek: (key, cost) =>
              Effect.clockWith((clock) => Effect.sync(() => unsafePeek(key, clock.unsafeCurrentTimeMillis(), cost))),
            unsafePeek,
            watch: (key, listener) => watching.watch(key, listener)
          }
          return reader
        })
    })
    return { store, tables, sweepInterval: o.sweepInterval }
  })

/**
 * The in-memory store as a layer, with a background sweeper (every `sweepInterval`, for as long as
 * the layer's scope is open) that drops dead keys from every table, so memory goes back down after
 * a burst of keys even when no further call arrives. Built with `Effect.provide` around a single
 * effect, the layer's scope ends with it and only the sweeps done by calls remain.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimiter, RateLimiterStore } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.make({ name: "api", algorithm: RateLimiter.tokenBucket({ rate: 10, burst: 20 }) })
 *   return yield* limiter.take("user-1")
 * }).pipe(Effect.provide(RateLimiterStore.layerMemory({ maxKeys: 50_000, idleTimeToLive: "10 minutes" })))
 * ```
 */
export const layerMemory = (options: MemoryOptions = {}): Layer.Layer<RateLimiterStore, InvalidOptionsError> =>
  Layer.scoped(
    RateLimiterStore,
    Effect.tap(
      makeMemoryTables(options),
      ({ sweepInterval, tables }) => Effect.forkScoped(sweepEvery(tables, sweepInterval))
    ).pipe(Effect.map((m) => m.store))
  )
