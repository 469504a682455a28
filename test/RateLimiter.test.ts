import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { InvalidOptionsError } from "../src/Errors.js"
import { RateLimitedError } from "../src/Errors.js"
import { allowedTotal, exceededTotal } from "../src/internal/ratelimit/limiter.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as Timeout from "../src/Timeout.js"

const memory = RateLimiterStore.layerMemory()

const make = (options: RateLimiter.Options) => RateLimiter.make(options).pipe(Effect.provide(memory))

const takes = (limiter: RateLimiter.RateLimiter, key: string, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => limiter.take(key))

const millis = (d: Duration.Duration) => Duration.toMillis(d)

describe("RateLimiter", () => {
  describe("token bucket (x/time/rate)", () => {
    it.effect("admits a burst at once, then one per 1/rate", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 10, burst: 5 }) })
        const burst = yield* takes(limiter, "k", 5)
        expect(burst.map((d) => d.allowed)).toEqual([true, true, true, true, true])
        expect(burst.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0])
        const denied = yield* limiter.take("k")
        expect(denied.allowed).toBe(false)
        expect(millis(denied.retryAfter)).toBeCloseTo(100, 6)
        expect(millis(denied.resetAfter)).toBeCloseTo(500, 6)
        yield* TestClock.adjust("99 millis")
        expect((yield* limiter.take("k")).allowed).toBe(false)
        yield* TestClock.adjust("1 millis")
        expect((yield* limiter.take("k")).allowed).toBe(true)
        expect((yield* limiter.take("k")).allowed).toBe(false)
        // another key is independent
        expect((yield* limiter.take("other")).allowed).toBe(true)
        // a long pause refills to the burst, not beyond
        yield* TestClock.adjust("1 hour")
        const again = yield* takes(limiter, "k", 6)
        expect(again.filter((d) => d.allowed)).toHaveLength(5)
      }))

    it.effect("reserve returns the delay, taking tokens into debt", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 2, burst: 2 }) })
        const first = yield* limiter.reserve("k", 2)
        expect(millis(first.delay)).toBe(0)
        const second = yield* limiter.reserve("k")
        expect(millis(second.delay)).toBeCloseTo(500, 6)
        const third = yield* limiter.reserve("k", 2)
        expect(millis(third.delay)).toBeCloseTo(1500, 6)
        // a reservation beyond maxDelay is refused and takes nothing
        const refused = yield* Effect.flip(limiter.reserve("k", 1, "1 second"))
        expect(refused).toBeInstanceOf(RateLimitedError)
        expect(millis((refused as RateLimitedError).retryAfter!)).toBeCloseTo(2000, 6)
        const fourth = yield* limiter.reserve("k")
        expect(millis(fourth.delay)).toBeCloseTo(2000, 6)
      }))

    it.effect("reserve rejects a bad maxDelay with InvalidOptionsError naming it, and takes nothing", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }) })
        for (const maxDelay of [-1, Number.NaN, "soon" as Duration.DurationInput]) {
          const error = yield* Effect.flip(limiter.reserve("k", 1, maxDelay))
          expect(error._tag).toBe("InvalidOptionsError")
          expect((error as InvalidOptionsError).option).toBe("maxDelay")
        }
        expect((yield* limiter.take("k")).allowed).toBe(true)
      }))

    it.effect("cancel returns the tokens of a reservation not yet due, once", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }) })
        yield* limiter.take("k")
        const r = yield* limiter.reserve("k")
        expect(millis(r.delay)).toBeCloseTo(1000, 6)
        yield* r.cancel
        yield* r.cancel // second cancel is a no-op
        const again = yield* limiter.reserve("k")
        expect(millis(again.delay)).toBeCloseTo(1000, 6)
        // after its time to act, cancelling returns nothing
        yield* TestClock.adjust("1001 millis")
        yield* again.cancel
        expect((yield* limiter.take("k")).allowed).toBe(false)
      }))

    it.effect("a cost above the burst fails at once in every mode, never hangs", () =>
      Effect.gen(function*() {
        const fail = yield* make({ name: "tb", algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 3 }) })
        const e1 = yield* Effect.flip(fail.take("k", 4))
        expect(e1._tag).toBe("RateLimitedError")
        expect(Duration.isFinite((e1 as RateLimitedError).retryAfter!)).toBe(false)
        const waiting = yield* make({
          name: "tbw",
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 3 }),
          onExceeded: "wait"
        })
        const exit = yield* Effect.exit(waiting.acquire("k", 4))
        expect(Exit.isFailure(exit)).toBe(true)
        const e2 = yield* Effect.flip(waiting.reserve("k", 4))
        expect(e2._tag).toBe("RateLimitedError")
        // the bucket was not touched
        expect((yield* fail.take("k", 3)).allowed).toBe(true)
        // a cost that is not a whole number is a defect, not a rejection
        const odd = yield* Effect.exit(fail.take("k", 0.5))
        expect(Exit.isFailure(odd) && Cause.isDie(odd.cause)).toBe(true)
      }))
  })

  describe("fixed window (go-zero period limit)", () => {
    it.effect("quota 5, 100 takes in one window: 4 Allowed, 1 HitQuota, 95 OverQuota", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "fw",
          algorithm: RateLimiter.fixedWindow({ limit: 5, window: "1 second" })
        })
        const ds = yield* takes(limiter, "k", 100)
        const count = (code: string) => ds.filter((d) => d.code === code).length
        expect([count("Allowed"), count("HitQuota"), count("OverQuota")]).toEqual([4, 1, 95])
        expect(ds.filter((d) => d.allowed)).toHaveLength(5)
        expect(ds[4].code).toBe("HitQuota")
        expect(millis(ds[99].retryAfter)).toBe(1000)
      }))

    it.effect("quota 1: the first take is HitQuota", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "fw",
          algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 second" })
        })
        const [a, b] = yield* takes(limiter, "k", 2)
        expect([a.code, a.allowed, b.code, b.allowed]).toEqual(["HitQuota", true, "OverQuota", false])
      }))

    it.effect("align: windows end on period boundaries; unaligned windows start at the first take", () =>
      Effect.gen(function*() {
        const aligned = yield* make({
          name: "fwa",
          algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 hour", align: true })
        })
        const free = yield* make({ name: "fwu", algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 hour" }) })
        yield* TestClock.adjust("40 minutes")
        const a = yield* aligned.take("k")
        const u = yield* free.take("k")
        expect(millis(a.resetAfter)).toBe(20 * 60_000)
        expect(millis(u.resetAfter)).toBe(60 * 60_000)
        yield* TestClock.adjust("20 minutes")
        expect((yield* aligned.take("k")).code).toBe("HitQuota")
        expect((yield* free.take("k")).code).toBe("OverQuota")
        yield* TestClock.adjust("40 minutes")
        expect((yield* free.take("k")).code).toBe("HitQuota")
      }))
  })

  describe("sliding windows", () => {
    it.effect("sliding log: an entry counts until exactly window later", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "sl", algorithm: RateLimiter.slidingLog({ limit: 2, window: "1 second" }) })
        expect((yield* limiter.take("k")).allowed).toBe(true)
        yield* TestClock.adjust("500 millis")
        expect((yield* limiter.take("k")).allowed).toBe(true)
        yield* TestClock.adjust("499 millis")
        const d = yield* limiter.take("k")
        expect(d.allowed).toBe(false)
        expect(millis(d.retryAfter)).toBe(1)
        expect(millis(d.resetAfter)).toBe(501)
        yield* TestClock.adjust("1 millis")
        expect((yield* limiter.take("k")).allowed).toBe(true)
        expect((yield* limiter.take("k")).allowed).toBe(false)
      }))

    it.effect("sliding counter: the previous window weighs in across the boundary", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "sc",
          algorithm: RateLimiter.slidingCounter({ limit: 10, window: "1 second" })
        })
        const first = yield* takes(limiter, "k", 11)
        expect(first.filter((d) => d.allowed)).toHaveLength(10)
        expect(millis(first[10].retryAfter)).toBeCloseTo(1100, 6) // next window, once 10 · (1 − e/W) + 1 ≤ 10
        yield* TestClock.adjust("1 second")
        // new window, elapsed 0: previous 10 weighs 1.0
        const atBoundary = yield* limiter.take("k")
        expect(atBoundary.allowed).toBe(false)
        expect(millis(atBoundary.retryAfter)).toBeCloseTo(100, 6)
        yield* TestClock.adjust("500 millis")
        // estimate 10 · 0.5 = 5
        const half = yield* takes(limiter, "k", 6)
        expect(half.filter((d) => d.allowed)).toHaveLength(5)
        expect(half[4].remaining).toBe(0)
      }))
  })

  describe("GCRA", () => {
    it.effect("retryAfter and resetAfter follow the theoretical arrival time", () =>
      Effect.gen(function*() {
        const limiter = yield* make({ name: "g", algorithm: RateLimiter.gcra({ limit: 10, period: "1 second" }) })
        const burst = yield* takes(limiter, "k", 10)
        expect(burst.every((d) => d.allowed)).toBe(true)
        expect(burst.map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
        expect(millis(burst[0].resetAfter)).toBe(100)
        expect(millis(burst[9].resetAfter)).toBe(1000)
        const denied = yield* limiter.take("k")
        expect(denied.allowed).toBe(false)
        expect(millis(denied.retryAfter)).toBe(100)
        expect(millis(denied.resetAfter)).toBe(1000)
        yield* TestClock.adjust("250 millis")
        const d2 = yield* limiter.take("k", 3)
        expect(d2.allowed).toBe(false)
        expect(millis(d2.retryAfter)).toBe(50)
        expect((yield* limiter.take("k", 2)).allowed).toBe(true)
      }))

    it.effect("burst below the limit spaces requests evenly", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "g",
          algorithm: RateLimiter.gcra({ limit: 4, period: "1 second", burst: 1 })
        })
        expect((yield* limiter.take("k")).allowed).toBe(true)
        expect((yield* limiter.take("k")).allowed).toBe(false)
        yield* TestClock.adjust("250 millis")
        expect((yield* limiter.take("k")).allowed).toBe(true)
        const r = yield* limiter.reserve("k")
        expect(millis(r.delay)).toBe(250)
      }))
  })

  describe("wait mode", () => {
    it.effect("a token bucket waiter sleeps until its reservation is due", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "w",
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }),
          onExceeded: "wait"
        })
        yield* limiter.acquire("k")
        const fiber = yield* Effect.fork(limiter.protect("k")(Effect.succeed("ran")))
        yield* TestClock.adjust("999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toBe("ran")
      }))

    it.effect("fails at once when the wait exceeds maxWait or the deadline", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "w",
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }),
          onExceeded: "wait",
          maxWait: "500 millis"
        })
        yield* limiter.acquire("k")
        const e = yield* Effect.flip(limiter.acquire("k"))
        expect(e._tag).toBe("RateLimitedError")
        const withDeadline = yield* make({
          name: "wd",
          algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 second" }),
          onExceeded: "wait",
          deadline: Effect.succeed(Option.some(Duration.millis(200)))
        })
        yield* withDeadline.acquire("k")
        const e2 = yield* Effect.flip(withDeadline.acquire("k"))
        expect(millis((e2 as RateLimitedError).retryAfter!)).toBe(1000)
        // nothing was taken by the refused waiters
        yield* TestClock.adjust("1 second")
        expect((yield* limiter.take("k")).allowed).toBe(true)
      }))

    it.effect("honours a Timeout.deadline budget by default", () =>
      Effect.gen(function*() {
        const limiter = yield* make({
          name: "budget",
          algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 second" }),
          onExceeded: "wait"
        })
        yield* limiter.acquire("k")
        // 300 ms left of the budget, the window reopens in 1 s: refused at once, nothing waits
        const refused = yield* Effect.flip(limiter.acquire("k").pipe(Timeout.deadline("300 millis")))
        expect(refused._tag).toBe("RateLimitedError")
        // with 2 s left the same call waits for the window and is admitted
        const fiber = yield* Effect.fork(
          limiter.protect("k")(Effect.succeed("ran")).pipe(Timeout.deadline("2 seconds"))
        )
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toBe("ran")
      }))

    it.effect("window algorithms retry after the window and an interrupted waiter returns its tokens", () =>
      Effect.gen(function*() {
        const window = yield* make({
          name: "ww",
          algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 second" }),
          onExceeded: "wait"
        })
        yield* window.acquire("k")
        const f = yield* Effect.fork(window.acquire("k"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(f)
        expect((yield* window.take("k")).allowed).toBe(false)

        const bucket = yield* make({
          name: "wb",
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }),
          onExceeded: "wait"
        })
        yield* bucket.acquire("k")
        const waiter = yield* Effect.fork(bucket.acquire("k"))
        yield* TestClock.adjust("100 millis")
        yield* Fiber.interrupt(waiter)
        yield* TestClock.adjust("900 millis")
        expect((yield* bucket.take("k")).allowed).toBe(true)
      }))
  })

  it.effect("limiters with the same name and algorithm share keys in one store, others do not", () =>
    Effect.gen(function*() {
      const build = (name: string, limit: number) =>
        RateLimiter.make({ name, algorithm: RateLimiter.fixedWindow({ limit, window: "1 minute" }) })
      const [a, b, c, d] = yield* Effect.all([
        build("shared", 2),
        build("shared", 2),
        build("other", 2),
        build("shared", 3)
      ])
        .pipe(Effect.provide(memory))
      yield* a.take("k")
      yield* b.take("k")
      expect((yield* a.take("k")).allowed).toBe(false)
      expect((yield* c.take("k")).allowed).toBe(true)
      expect((yield* d.take("k")).remaining).toBe(2)
    }))

  it.effect("rejects bad options with InvalidOptionsError naming the field", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(make({ name: "x", algorithm: RateLimiter.tokenBucket({ rate: -1, burst: 1 }) }))
      expect(e1._tag).toBe("InvalidOptionsError")
      expect(e1.option).toBe("algorithm.rate")
      const e2 = yield* Effect.flip(
        make({ name: "x", algorithm: RateLimiter.fixedWindow({ limit: 0, window: "1 second" }) })
      )
      expect(e2.option).toBe("algorithm.limit")
      const e3 = yield* Effect.flip(make({ name: "", algorithm: RateLimiter.gcra({ limit: 1, period: "1 second" }) }))
      expect(e3.option).toBe("name")
      const e4 = yield* Effect.flip(
        make({ name: "x", algorithm: RateLimiter.slidingLog({ limit: 1, window: "-1 second" }) })
      )
      expect(e4.option).toBe("algorithm.window")
      const e5 = yield* Effect.flip(RateLimiterStore.makeMemory({ maxKeys: 0 }))
      expect(e5.option).toBe("maxKeys")
      const windows = yield* make({ name: "x", algorithm: RateLimiter.slidingLog({ limit: 1, window: "1 second" }) })
      const e6 = yield* Effect.flip(windows.reserve("k"))
      expect(e6._tag).toBe("InvalidOptionsError")
    }))

  it.effect("protect fails with RateLimitedError carrying the decision, dual form included", () =>
    Effect.gen(function*() {
      const limiter = yield* make({ name: "p", algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 second" }) })
      let runs = 0
      const work = Effect.sync(() => ++runs)
      yield* work.pipe(RateLimiter.protect(limiter, "k"))
      const e = yield* Effect.flip(RateLimiter.protect(work, limiter, "k"))
      expect(runs).toBe(1)
      expect(e).toMatchObject({ limiter: "p", key: "k", limit: 1, remaining: 0 })
      expect(millis((e as RateLimitedError).retryAfter!)).toBe(1000)
      expect(millis((e as RateLimitedError).resetAfter!)).toBe(1000)
    }))

  it.effect("counts admitted and refused requests per limiter name", () =>
    Effect.gen(function*() {
      const limiter = yield* make({
        name: "metered",
        algorithm: RateLimiter.fixedWindow({ limit: 2, window: "1 second" })
      })
      yield* takes(limiter, "k", 5)
      const allowed = yield* Metric.value(
        allowedTotal.pipe(Metric.tagged("name", "metered"))
      )
      const exceeded = yield* Metric.value(
        exceededTotal.pipe(Metric.tagged("name", "metered"))
      )
      expect([allowed.count, exceeded.count]).toEqual([2, 3])
    }))

  it.effect("tiered limits pick the tier's limiter, unknown tiers fall back", () =>
    Effect.gen(function*() {
      const tiers = yield* RateLimiter.tiered({
        name: "plans",
        tiers: {
          free: RateLimiter.tokenBucket({ rate: 10, burst: 2 }),
          basic: RateLimiter.tokenBucket({ rate: 50, burst: 4 }),
          premium: RateLimiter.tokenBucket({ rate: 200, burst: 8 })
        },
        fallback: "free"
      }).pipe(Effect.provide(memory))
      const admitted = (tier: string, key: string) =>
        Effect.map(Effect.forEach(Array.from({ length: 10 }), () => tiers.take(tier, key)), (ds) =>
          ds.filter((d) => d.allowed).length)
      expect(yield* admitted("free", "u1")).toBe(2)
      expect(yield* admitted("basic", "u1")).toBe(4)
      expect(yield* admitted("premium", "u1")).toBe(8)
      expect(yield* admitted("gold", "u2")).toBe(2)
      expect(tiers.limiters.premium.name).toBe("plans.premium")
      const bad = yield* Effect.flip(
        RateLimiter.tiered({
          name: "x",
          tiers: { a: RateLimiter.tokenBucket({ rate: 1, burst: 1 }) },
          fallback: "b" as "a"
        })
          .pipe(Effect.provide(memory))
      )
      expect(bad.option).toBe("fallback")
    }))

  it.effect("pacing spaces a stream at the rate", () =>
    Effect.gen(function*() {
      const fiber = yield* Stream.make(1, 2, 3, 4).pipe(
        Stream.schedule(RateLimiter.pacing(10)),
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("250 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("200 millis")
      expect(Chunk.toArray(yield* Fiber.join(fiber))).toEqual([1, 2, 3, 4])
      expect(() => RateLimiter.pacing(0)).toThrow()
    }))
})
