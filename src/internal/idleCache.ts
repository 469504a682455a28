/**
 * A per-key cache of scoped resources, created on first use and evicted once idle for `ttl`
 * milliseconds. Each resource lives in its own child scope of `parent`; eviction closes that scope.
 * One background fiber, owned by `parent`, sweeps every half `ttl`.
 *
 * An entry is idle when nothing has touched it for `ttl`, no `use` of it is in flight, its
 * `lastUsed` (if given) is as old, and `keep` (if given) does not hold it. Idle entries leave the map
 * in the same synchronous step that finds them idle, so a lookup can never be handed a resource
 * that is about to be closed.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"

/** @internal */
export interface Options<A, E> {
  readonly ttl: number
  readonly build: (key: string) => Effect.Effect<A, E, Scope.Scope>
  /** the last time the resource itself saw use, in clock millis */
  readonly lastUsed?: (a: A) => number
  /** true keeps an otherwise idle entry */
  readonly keep?: (a: A) => boolean
  /** runs after an idle entry has been closed */
  readonly onEvict?: (key: string) => Effect.Effect<void>
}

/** @internal */
export interface IdleCache<A, E> {
  /** the resource for `key`, built on first use */
  readonly get: (key: string) => Effect.Effect<A, E>
  /** runs `f` with the resource for `key`; the entry is not evicted while `f` runs */
  readonly use: <B, E2, R>(key: string, f: (a: A) => Effect.Effect<B, E2, R>) => Effect.Effect<B, E | E2, R>
  /** drops the entry for `key`, closing its scope; true when there was one */
  readonly remove: (key: string) => Effect.Effect<boolean>
  readonly keys: () => ReadonlyArray<string>
}

interface Entry<A> {
  readonly value: A
  readonly scope: Scope.CloseableScope
  touched: number
  active: number
}

/** @internal */
export const make = <A, E>(options: Options<A, E>): Effect.Effect<IdleCache<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { build, keep, lastUsed, onEvict, ttl } = options
    const parent = yield* Effect.scope
    const entries = new Map<string, Entry<A>>()
    const lock = yield* Effect.makeSemaphore(1)

    const create = (key: string, now: number): Effect.Effect<Entry<A>, E> =>
      lock.withPermits(1)(Effect.suspend(() => {
        const existing = entries.get(key)
        if (existing !== undefined) {
          existing.touched = now
          return Effect.succeed(existing)
        }
        return Effect.flatMap(Scope.fork(parent, ExecutionStrategy.sequential), (scope) =>
          build(key).pipe(
            Scope.extend(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void)),
            Effect.map((value) => {
              const entry: Entry<A> = { value, scope, touched: now, active: 0 }
              entries.set(key, entry)
              return entry
            })
          ))
      }))

    const entryOf = (key: string): Effect.Effect<Entry<A>, E> =>
      Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        const entry = entries.get(key)
        if (entry !== undefined) {
          entry.touched = now
          return Effect.succeed(entry)
        }
        return create(key, now)
      })

    const get = (key: string): Effect.Effect<A, E> => Effect.map(entryOf(key), (entry) => entry.value)

    const use = <B, E2, R>(key: string, f: (a: A) => Effect.Effect<B, E2, R>): Effect.Effect<B, E | E2, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(entryOf(key), (entry) => {
          entry.active++
          return Effect.ensuring(
            restore(f(entry.value)),
            Effect.clockWith((clock) =>
              Effect.sync(() => {
                entry.active--
                entry.touched = clock.unsafeCurrentTimeMillis()
              })
            )
          )
        })
      )

    const remove = (key: string): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        const entry = entries.get(key)
        if (entry === undefined) return Effect.succeed(false)
        entries.delete(key)
        return Effect.as(Scope.close(entry.scope, Exit.void), true)
      })

    const sweep: Effect.Effect<void> = Effect.clockWith((clock) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const idle: Array<readonly [string, Scope.CloseableScope]> = []
        for (const [key, entry] of entries) {
          if (entry.active > 0) continue
          const last = lastUsed === undefined ? entry.touched : Math.max(entry.touched, lastUsed(entry.value))
          if (now - last >= ttl && (keep === undefined || !keep(entry.value))) {
            entries.delete(key)
            idle.push([key, entry.scope])
          }
        }
        return Effect.forEach(
          idle,
          ([key, scope]) =>
            onEvict === undefined
              ? Scope.close(scope, Exit.void)
              : Effect.zipRight(Scope.close(scope, Exit.void), onEvict(key)),
          { discard: true }
        )
      })
    )

    yield* sweep.pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, ttl / 2)))),
      Effect.forkScoped
    )

    return { get, use, remove, keys: () => Array.from(entries.keys()) }
  })
