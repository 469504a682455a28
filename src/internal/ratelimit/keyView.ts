/**
 * Per-key live views of a rate limiter (`RateLimiter.view`): what one key has left and when it
 * refills, as a `Subscribable`.
 *
 * A view reads without consuming: the algorithm's step is computed and its new state thrown away
 * (in memory the table's `evaluate` without `commit`; in Redis the limiter's own script with every
 * write dropped). Two reads make a snapshot: one at cost 0 (what is left, when it is full again)
 * and, when the key is not full, one at cost `remaining + 1`, whose retry-after is the time until
 * one more unit is available — the same question for every algorithm, answered by its own step.
 *
 * `changes` emits at subscription, after every change to the key made through the store in this
 * process (takes, groups, cancelled reservations), and when the next unit refills. A store's
 * `KeyWatchers` costs its callers one field read while nobody watches.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as Subscribable from "effect/Subscribable"
import { InvalidOptionsError } from "../../Errors.js"
import type { StoreError } from "../../Errors.js"
import type { KeyState, RateLimiter } from "../../RateLimiter.js"
import type { KeyReader } from "../../RateLimiterStore.js"
import { sourceOf } from "./all.js"
import type { Definition, RawDecision } from "./core.js"
import { costAndNowHead, scriptHead, toDuration } from "./core.js"

/** Who watches which key of one table; `count` is what the hot path reads. */
export class KeyWatchers {
  count = 0
  private readonly byKey = new Map<string, Set<() => void>>()

  /** Calls `listener` after each change to `key`; returns the unwatch. */
  watch(key: string, listener: () => void): () => void {
    let set = this.byKey.get(key)
    if (set === undefined) {
      set = new Set()
      this.byKey.set(key, set)
    }
    set.add(listener)
    this.count++
    return () => {
      if (!set.delete(listener)) return
      this.count--
      if (set.size === 0) this.byKey.delete(key)
    }
  }

  /** `key` changed: tells its watchers. Callers test `count > 0` first. */
  changed(key: string): void {
    const set = this.byKey.get(key)
    if (set !== undefined) { for (const listener of set) listener() }
  }
}

/** The snapshot from a read at cost 0 and, when not full, one at cost `remaining + 1`. */
export const keyState = (key: string, now: RawDecision, next: RawDecision | undefined): KeyState => {
  const full = next === undefined
  return {
    key,
    limit: now.limit,
    remaining: now.remaining,
    nextRefill: full ? Duration.zero : toDuration(next.retryAfterMs),
    resetAfter: full ? Duration.zero : toDuration(now.resetAfterMs)
  }
}

/** Reads one snapshot of `key` through `peek` (which must not consume). */
export const readKey = (
  peek: KeyReader["peek"],
  key: string
): Effect.Effect<KeyState, StoreError> =>
  Effect.flatMap(peek(key, 0), (now) =>
    now.remaining >= now.limit
      ? Effect.succeed(keyState(key, now, undefined))
      : Effect.map(peek(key, now.remaining + 1), (next) => keyState(key, now, next)))

/** The same read, synchronously at `now` (ms), for stores that decide in-process. */
export const readKeySync = (
  peek: NonNullable<KeyReader["unsafePeek"]>,
  key: string,
  now: number
): KeyState => {
  const d = peek(key, now, 0)
  return keyState(key, d, d.remaining >= d.limit ? undefined : peek(key, now, d.remaining + 1))
}

/**
 * The view of one key. The subscription to the store's change signal is made before the first
 * read, so no change falls between the two. An in-process store's change is read at the moment
 * it happens, so each one is emitted; a remote store's is read when the subscriber gets to it
 * (changes made meanwhile are seen together, and a read that finds `remaining` where it was is
 * not emitted again). A refill is awaited with a sleep of `nextRefill` (on
 * the `Clock`, so a `TestClock` drives it), after which the key is read again and emitted only if
 * what is left moved.
 */
export const makeKeyView = (
  reader: KeyReader,
  key: string,
  clock: Clock.Clock
): Subscribable.Subscribable<KeyState, StoreError> => {
  const unsafePeek = reader.unsafePeek
  const get: Effect.Effect<KeyState, StoreError> = unsafePeek === undefined
    ? readKey(reader.peek, key)
    : Effect.sync(() => readKeySync(unsafePeek, key, clock.unsafeCurrentTimeMillis()))
  return Subscribable.make({
    get,
    changes: Stream.unwrapScoped(Effect.gen(function*() {
      const queue = yield* Effect.acquireRelease(Queue.unbounded<KeyState | undefined>(), Queue.shutdown)
      const listener = unsafePeek === undefined
        ? () => queue.unsafeOffer(undefined)
        : () => queue.unsafeOffer(readKeySync(unsafePeek, key, clock.unsafeCurrentTimeMillis()))
      yield* Effect.acquireRelease(Effect.sync(() => reader.watch(key, listener)), (unwatch) => Effect.sync(unwatch))
      const first = yield* get
      // a change made through the store: the snapshot taken then, or (remote) a fresh read, which
      // may already include the changes signalled after it: those are drained, not read again
      const changed = Effect.flatMap(
        Queue.take(queue),
        (s): Effect.Effect<KeyState, StoreError> =>
          s === undefined ? Effect.zipRight(Queue.takeAll(queue), get) : Effect.succeed(s)
      )
      const moved = (last: KeyState, s: KeyState) => unsafePeek !== undefined || s.remaining !== last.remaining
      // the next change worth emitting: one made through the store, or a refill that moved `remaining`
      const next = (last: KeyState): Effect.Effect<KeyState, StoreError> => {
        const waited = Duration.isZero(last.nextRefill)
          ? Effect.map(changed, (s) => [s, true] as const)
          : Effect.raceFirst(
            Effect.map(changed, (s) => [s, true] as const),
            Effect.zipRight(Effect.sleep(last.nextRefill), Effect.map(get, (s) => [s, false] as const))
          )
        return Effect.flatMap(waited, ([s, made]) =>
          made ?
            (moved(last, s) ? Effect.succeed(s) : next(s)) :
            s.remaining !== last.remaining ?
            Effect.succeed(s) :
            next(s))
      }
      return Stream.concat(
        Stream.succeed(first),
        Stream.unfoldEffect(first, (last) => Effect.map(next(last), (s) => Option.some([s, s] as const)))
      )
    }))
  })
}

const bodyOf = (def: Definition): string => {
  if (!def.script.startsWith(scriptHead)) throw new Error(`${def.kind}: script without the shared head`)
  return def.script.slice(scriptHead.length)
}

/**
 * The limiter's own script with every write dropped: a read that consumes nothing. `redis` is
 * shadowed by a shim that passes the reads (`GET`, `LRANGE`) through and ignores everything else.
 * ARGV[1] is the cost, ARGV[2] the time in µs or "" for Redis `TIME`. Marked `no-writes`, so Redis
 * runs it on a read-only replica too.
 */
export const peekScript = (def: Definition): string =>
  `#!lua flags=no-writes
${costAndNowHead}local shim = { call = function(cmd, ...)
  if cmd == "GET" or cmd == "LRANGE" then return redis.call(cmd, ...) end
  return true
end }
return (function(key, redis)
${bodyOf(def)}end)(KEYS[1], shim)
`

/** `RateLimiter.view`: the key's view on the limiter's own store. */
export const viewOf = (
  limiter: RateLimiter,
  key: string
): Effect.Effect<Subscribable.Subscribable<KeyState, StoreError>, InvalidOptionsError> =>
  Effect.suspend(() => {
    const source = sourceOf(limiter)
    const prepare = source?.store.prepareView
    if (source === undefined || prepare === undefined) {
      return Effect.fail(
        new InvalidOptionsError({
          module: "RateLimiter",
          option: "limiter",
          value: limiter.name,
          reason: source === undefined
            ? "expected a limiter from RateLimiter.make"
            : `the ${source.store.name} store offers no per-key views`
        })
      )
    }
    return Effect.map(prepare(limiter.name, source.definition), (reader) => makeKeyView(reader, key, source.clock))
  })
