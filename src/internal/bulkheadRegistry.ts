/**
 * `Bulkhead.Registry`: bulkheads by name in a recency-ordered store (`idleCache.ts`), sharing one
 * set of leases. Registration and lookup are synchronous, so the duplicate check and the insertion
 * happen in one step.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { BulkheadRegistry, Options, RegistryOptions, Stats } from "../Bulkhead.js"
import { InvalidOptionsError, UnknownNameError } from "../Errors.js"
import { BulkheadImpl, makeLeases, type Settings } from "./bulkhead.js"
import * as IdleCache from "./idleCache.js"
import * as InstanceMetrics from "./instanceMetrics.js"
import { decodeOptions, PositiveDuration, PositiveInt } from "./options.js"

const Fn = Schema.declare((u: unknown): u is (name: string) => Options => typeof u === "function", {
  identifier: "Function",
  message: () => "expected a function"
})

const decodeRegistryOptions = decodeOptions(
  "Bulkhead.Registry",
  () =>
    Schema.Struct({
      bulkheads: Schema.optional(Schema.Array(Schema.Unknown)),
      create: Schema.optional(Fn),
      maxKeys: Schema.optionalWith(PositiveInt, { default: () => 10_000 }),
      idleTimeToLive: Schema.optional(PositiveDuration)
    }),
  { exact: true }
)

type Decode = (options: unknown) => Either.Either<Settings, InvalidOptionsError>

export const makeRegistry = (
  options: RegistryOptions,
  decode: Decode
): Effect.Effect<BulkheadRegistry, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const o = yield* decodeRegistryOptions(options)
    const clock = yield* Effect.clock
    const metrics = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    const create = o.create as ((name: string) => Options) | undefined
    const ttl = o.idleTimeToLive === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(o.idleTimeToLive)
    const leases = makeLeases()
    const cache = new IdleCache.KeyedCache<BulkheadImpl>({
      maxKeys: o.maxKeys,
      ttl,
      inUse: (bulkhead) => bulkhead.inUse()
    })
    const closeAll = (entries: ReadonlyArray<IdleCache.Entry<BulkheadImpl>>) => {
      for (const entry of entries) entry.value.close()
    }
    const now = () => clock.unsafeCurrentTimeMillis()

    const add = (key: string, settings: Settings): BulkheadImpl => {
      // the bulkheads evicted to make room go first, so their series are free for the new one
      closeAll(cache.makeRoom(now()))
      const bulkhead = BulkheadImpl.make(settings, metrics, leases)
      cache.insert(key, bulkhead, now())
      return bulkhead
    }

    const register = (options: Options): Effect.Effect<BulkheadImpl, InvalidOptionsError> =>
      Effect.suspend(() => {
        const settings = decode(options)
        if (Either.isLeft(settings)) return Effect.fail(settings.left)
        const name = settings.right.name
        if (cache.peek(name) !== undefined) {
          return Effect.fail(
            new InvalidOptionsError({
              module: "Bulkhead.Registry",
              option: "name",
              value: name,
              reason: "a bulkhead with this name is already registered"
            })
          )
        }
        return Effect.succeed(add(name, settings.right))
      })

    const unknown = (name: string) => Effect.fail(new UnknownNameError({ registry: "BulkheadRegistry", name }, true))

    // the bulkhead for `name`: held, built by `create`, or an UnknownNameError
    const lookup = (name: string): Effect.Effect<BulkheadImpl, UnknownNameError> => {
      const entry = cache.get(name, now())
      if (entry !== undefined) return Effect.succeed(entry.value)
      if (create === undefined) return unknown(name)
      const settings = decode(create(name))
      return Either.isLeft(settings) ? Effect.die(settings.left) : Effect.succeed(add(name, settings.right))
    }

    const sweep = Effect.sync(() => closeAll(cache.sweep(now())))
    yield* IdleCache.sweepEvery(ttl, sweep)
    yield* Effect.addFinalizer(() => Effect.sync(() => closeAll(cache.clear())))
    yield* Effect.forEach(o.bulkheads ?? [], (b) => register(b as Options), { discard: true })

    return {
      register,
      get: (name) => Effect.suspend(() => lookup(name)),
      protect: (name, effect) => Effect.suspend(() => Effect.flatMap(lookup(name), (bulkhead) => bulkhead.run(effect))),
      remove: (name) =>
        Effect.sync(() => {
          const entry = cache.peek(name)
          if (entry === undefined) return false
          cache.delete(entry)
          entry.value.close()
          return true
        }),
      names: Effect.sync(() => cache.keys()),
      stats: Effect.sync(() => {
        const out: Record<string, Stats> = {}
        for (const bulkhead of cache.values()) {
          out[bulkhead.name] = {
            active: bulkhead.active,
            queued: bulkhead.queue.length,
            rejected: bulkhead.rejected,
            timedOut: bulkhead.timedOut,
            maxConcurrent: bulkhead.maxConcurrent,
            maxQueue: bulkhead.maxQueue
          }
        }
        return out
      })
    }
  })

/**
 * Bulkheads built on first use of a key (the HTTP client's per-host bulkheads): at most `maxKeys`,
 * idle ones dropped after `ttl`, busy ones never. `onEvict` runs for each one dropped.
 */
export const makePerKey = (options: {
  readonly maxKeys: number
  readonly ttl: number
  readonly settingsOf: (key: string) => Settings
  readonly onEvict: (key: string) => Effect.Effect<void>
}): Effect.Effect<(key: string) => Effect.Effect<BulkheadImpl>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const metrics = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    const leases = makeLeases()
    const cache = new IdleCache.KeyedCache<BulkheadImpl>({
      maxKeys: options.maxKeys,
      ttl: options.ttl,
      inUse: (bulkhead) => bulkhead.inUse()
    })
    // closing twice is harmless: a bulkhead closes once
    const drop = (entries: ReadonlyArray<IdleCache.Entry<BulkheadImpl>>): Effect.Effect<void> =>
      Effect.forEach(entries, (entry) => {
        entry.value.close()
        return options.onEvict(entry.key)
      }, { discard: true })
    yield* IdleCache.sweepEvery(
      options.ttl,
      Effect.suspend(() => drop(cache.sweep(clock.unsafeCurrentTimeMillis())))
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => cache.clear().forEach((entry) => entry.value.close())))
    return (key) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const entry = cache.get(key, now)
        if (entry !== undefined) return Effect.succeed(entry.value)
        const evicted = cache.makeRoom(now)
        for (const old of evicted) old.value.close()
        const bulkhead = BulkheadImpl.make(options.settingsOf(key), metrics, leases)
        cache.insert(key, bulkhead, now)
        return evicted.length === 0 ? Effect.succeed(bulkhead) : Effect.as(drop(evicted), bulkhead)
      })
  })
