import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Stream, TestClock } from "effect"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { settle } from "./support.js"

/** Collects what `changes` emits, from a fiber started (and subscribed) now. */
const watch = <A, E>(changes: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const seen: Array<A> = []
    yield* Effect.forkScoped(Stream.runForEach(changes, (a) => Effect.sync(() => seen.push(a))))
    yield* settle
    return seen
  })

const row = (s: RateLimiter.KeyState) =>
  [s.remaining, Duration.toMillis(s.nextRefill), Duration.toMillis(s.resetAfter)] as const

const memory = Effect.provide(RateLimiterStore.layerMemory())

describe("RateLimiter.view", () => {
  it.scoped("a token bucket key's view follows every take and every refill, and reading takes nothing", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 2, burst: 3 }) })
      const quota = yield* RateLimiter.view(limiter, "alice")
      const seen = yield* watch(quota.changes)
      // reading a thousand times consumes nothing
      for (let i = 0; i < 1000; i++) yield* quota.get
      expect(row(yield* quota.get)).toEqual([3, 0, 0])
      yield* limiter.take("alice")
      yield* limiter.take("alice")
      yield* limiter.take("alice")
      yield* limiter.take("alice") // refused: no change
      yield* limiter.take("bob") // another key: not this view's
      yield* settle
      expect(seen.map(row)).toEqual([
        [3, 0, 0],
        [2, 500, 500],
        [1, 500, 1000],
        [0, 500, 1500]
      ])
      // one token every 500 ms: the view wakes for each refill, with no take
      yield* TestClock.adjust("500 millis")
      yield* settle
      yield* TestClock.adjust("499 millis")
      yield* settle
      expect(seen.slice(4).map(row)).toEqual([[1, 500, 1000]])
      yield* TestClock.adjust("1 millis")
      yield* settle
      yield* TestClock.adjust("500 millis")
      yield* settle
      expect(seen.slice(4).map(row)).toEqual([[1, 500, 1000], [2, 500, 500], [3, 0, 0]])
      // full: nothing more to emit however long we wait
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(seen).toHaveLength(7)
      expect((yield* limiter.take("alice", 3)).allowed).toBe(true)
    }).pipe(memory))

  it.scoped("a fixed window refills at the window's end, all at once", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({
        name: "fw",
        algorithm: RateLimiter.fixedWindow({ limit: 2, window: "1 second" })
      })
      const quota = yield* RateLimiter.view(limiter, "k")
      const seen = yield* watch(quota.changes)
      yield* limiter.take("k")
      yield* TestClock.adjust("300 millis")
      yield* limiter.take("k")
      yield* settle
      yield* TestClock.adjust("700 millis")
      yield* settle
      expect(seen.map(row)).toEqual([[2, 0, 0], [1, 1000, 1000], [0, 700, 700], [2, 0, 0]])
    }).pipe(memory))

  it.scoped("a sliding log gives each unit back when its entry leaves the window", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({
        name: "sl",
        algorithm: RateLimiter.slidingLog({ limit: 2, window: "1 second" })
      })
      const quota = yield* RateLimiter.view(limiter, "k")
      const seen = yield* watch(quota.changes)
      yield* limiter.take("k")
      yield* TestClock.adjust("400 millis")
      yield* limiter.take("k")
      yield* settle
      yield* TestClock.adjust("600 millis")
      yield* settle
      yield* TestClock.adjust("400 millis")
      yield* settle
      expect(seen.map(row)).toEqual([[2, 0, 0], [1, 1000, 1000], [0, 600, 1000], [1, 400, 400], [2, 0, 0]])
    }).pipe(memory))

  it.scoped("GCRA and the sliding counter are viewed through their own steps too", () =>
    Effect.gen(function*() {
      const gcra = yield* RateLimiter.make({ name: "g", algorithm: RateLimiter.gcra({ limit: 4, period: "1 second" }) })
      const counter = yield* RateLimiter.make({
        name: "sc",
        algorithm: RateLimiter.slidingCounter({ limit: 4, window: "1 second" })
      })
      const g = yield* RateLimiter.view(gcra, "k")
      const c = yield* RateLimiter.view(counter, "k")
      yield* gcra.take("k", 2)
      yield* counter.take("k", 4)
      const gs = yield* g.get
      expect(row(gs)).toEqual([2, 250, 500])
      const cs = yield* c.get
      expect(cs.remaining).toBe(0)
      // the view's promise holds: after nextRefill one more unit is admitted, and not before
      yield* TestClock.adjust(Duration.subtract(cs.nextRefill, Duration.millis(1)))
      expect((yield* counter.take("k")).allowed).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect((yield* counter.take("k")).allowed).toBe(true)
    }).pipe(memory))

  it.scoped("every limiter sharing the key's table, RateLimiter.all and a cancelled reservation show in the view", () =>
    Effect.gen(function*() {
      const algorithm = RateLimiter.tokenBucket({ rate: 1, burst: 4 })
      const a = yield* RateLimiter.make({ name: "shared", algorithm })
      const b = yield* RateLimiter.make({ name: "shared", algorithm }) // same name and algorithm: same keys
      const other = yield* RateLimiter.make({
        name: "other",
        algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 hour" })
      })
      const group = yield* RateLimiter.all([a, other])
      const seen = yield* watch((yield* RateLimiter.view(a, "k")).changes)
      yield* b.take("k")
      yield* group.take("k") // admitted by both
      yield* group.take("k") // refused by `other`: takes from neither
      const reservation = yield* a.reserve("k", 2)
      yield* reservation.cancel
      yield* settle
      expect(seen.map((s) => s.remaining)).toEqual([4, 3, 2, 0, 2])
    }).pipe(memory))

  it.scoped("a closed subscription stops watching; each subscriber sees every change", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({
        name: "subs",
        algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 2 })
      })
      const quota = yield* RateLimiter.view(limiter, "k")
      const first = yield* Stream.runCollect(Stream.take(quota.changes, 1))
      expect(first.pipe((c) => [...c].map((s) => s.remaining))).toEqual([2])
      const one = yield* watch(quota.changes)
      const two = yield* watch(quota.changes)
      yield* limiter.take("k")
      yield* settle
      expect(one.map((s) => s.remaining)).toEqual([2, 1])
      expect(two.map((s) => s.remaining)).toEqual([2, 1])
    }).pipe(memory))

  it.effect("a limiter not made by make is refused with a reason", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "x", algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }) })
      const copy = { ...limiter }
      const exit = yield* Effect.exit(RateLimiter.view(copy, "k"))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(exit)).toContain("expected a limiter from RateLimiter.make")
    }).pipe(memory))
})
