/**
 * Breakers by name, created on first use, at most `maxKeys` of them (the least recently used idle
 * one goes first) and none idle longer than `ttl`. A breaker is in use while a call through the
 * registry's `protect` runs on it (a lease tied to the calling fiber) or a permit of its `allow`
 * is out; an isolated breaker is kept. Evicting a breaker drops its metric series.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { CircuitBreaker, Policy, RegistryOptions, RegistryService } from "../../CircuitBreaker.js"
import { type CircuitOpenError, InvalidOptionsError } from "../../Errors.js"
import * as IdleCache from "../idleCache.js"
import * as InstanceMetrics from "../instanceMetrics.js"
import { Leases } from "../lease.js"
import { decodeOptions, PositiveDuration, PositiveInt } from "../options.js"
import { Breaker } from "./engine.js"
import { SpecCache } from "./policy.js"

export interface Settings {
  readonly policy: (name: string) => Policy
  readonly ttl: number
  readonly maxKeys: number
}

type Entry = IdleCache.Entry<Breaker>

const disposeAll = (entries: ReadonlyArray<Entry>): Effect.Effect<void> =>
  Effect.forEach(entries, (entry) => entry.value.dispose(), { discard: true })

export const make = (
  settings: Settings,
  clock: Clock.Clock,
  metrics: InstanceMetrics.Registry
): Effect.Effect<RegistryService, never, Scope.Scope> =>
  Effect.gen(function*() {
    const specs = new SpecCache()
    const cache = new IdleCache.KeyedCache<Breaker>({
      maxKeys: settings.maxKeys,
      ttl: settings.ttl,
      lastUsed: (breaker, now) => breaker.lastUseAt(now),
      inUse: (breaker) => breaker.inUse(),
      keep: (breaker) => breaker.isolated
    })
    const leases = new Leases<Entry>((entry) => {
      entry.active--
    })
    let closed = false

    // a policy whose options are invalid makes the lookup die: the registry cannot recover from it
    const create = (name: string): Effect.Effect<Entry> =>
      Effect.suspend(() => {
        const decoded = specs.decode(settings.policy(name))
        if (Either.isLeft(decoded)) return Effect.die(decoded.left)
        // a probe is a fiber in the breaker's scope; a registry's breakers come and go without one
        if (decoded.right.spec.probe !== undefined) {
          return Effect.die(
            new InvalidOptionsError({
              module: "CircuitBreaker.Registry",
              option: "probe",
              value: "(probe)",
              reason: "a registry's breakers run no probe: build the breaker with make or layer"
            })
          )
        }
        // the breakers evicted to make room go first, so their series are free for the new one
        const evicted = cache.makeRoom(clock.unsafeCurrentTimeMillis())
        const build = Effect.suspend(() => Breaker.make(decoded.right.name, decoded.right.spec, clock, metrics))
        return Effect.flatMap(evicted.length === 0 ? build : Effect.zipRight(disposeAll(evicted), build), (breaker) => {
          const now = clock.unsafeCurrentTimeMillis()
          // the open-period schedule may have suspended: another fiber may have made one meanwhile
          const existing = cache.get(name, now)
          if (existing !== undefined) return Effect.as(breaker.dispose(), existing)
          const entry = cache.insert(name, breaker, now)
          // once the registry is closed a breaker still serves its caller, but nothing keeps it
          return closed ? Effect.as(disposeAll(cache.clear()), entry) : Effect.succeed(entry)
        })
      })

    const entryOf = (name: string): Effect.Effect<Entry> =>
      Effect.suspend(() => {
        const entry = cache.get(name, clock.unsafeCurrentTimeMillis())
        return entry === undefined ? create(name) : Effect.succeed(entry)
      })

    const held = <A, E, R>(
      fiber: Parameters<typeof leases.hold>[0],
      entry: Entry,
      now: number,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | CircuitOpenError, R> => {
      entry.active++
      return leases.hold(fiber, entry, entry.value.runAt(now, effect))
    }

    const protect = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.withFiberRuntime<A, E | CircuitOpenError, R>((fiber) => {
        const now = clock.unsafeCurrentTimeMillis()
        const entry = cache.get(name, now)
        if (entry !== undefined) return held(fiber, entry, now, effect)
        return Effect.flatMap(create(name), (created) => held(fiber, created, clock.unsafeCurrentTimeMillis(), effect))
      })

    const sweep = Effect.suspend(() => disposeAll(cache.sweep(clock.unsafeCurrentTimeMillis())))
    yield* IdleCache.sweepEvery(settings.ttl, sweep)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        return disposeAll(cache.clear())
      })
    )

    return {
      get: (name) => Effect.map(entryOf(name), (entry): CircuitBreaker => entry.value),
      protect,
      names: Effect.sync(() => cache.keys()),
      breakers: Effect.sync((): ReadonlyArray<CircuitBreaker> => cache.values()),
      remove: (name) =>
        Effect.suspend(() => {
          const entry = cache.peek(name)
          if (entry === undefined) return Effect.succeed(false)
          cache.delete(entry)
          return Effect.as(entry.value.dispose(), true)
        })
    }
  })

const decodeRegistryOptions = decodeOptions(
  "CircuitBreaker.layerRegistry",
  Schema.Struct({
    policy: Schema.declare((u: unknown): u is (name: string) => Policy => typeof u === "function", {
      identifier: "Function",
      message: () => "expected a function"
    }),
    idleTimeToLive: Schema.optionalWith(PositiveDuration, { default: () => Duration.minutes(10) }),
    maxKeys: Schema.optionalWith(PositiveInt, { default: () => 10_000 })
  }),
  { exact: true }
)

/** `CircuitBreaker.makeRegistry`: checks the options and builds the registry in the current scope. */
export const fromOptions = (
  options: RegistryOptions
): Effect.Effect<RegistryService, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const o = yield* decodeRegistryOptions(options)
    const clock = yield* Effect.clock
    const metrics = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    return yield* make(
      { policy: o.policy, ttl: Duration.toMillis(o.idleTimeToLive), maxKeys: o.maxKeys },
      clock,
      metrics
    )
  })
