import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as ResilienceMode from "../src/ResilienceMode.js"
import { seededRandom } from "./support.js"

const memory = RateLimiterStore.layerMemory()

const window = (name: string, limit: number, w: Duration.DurationInput) =>
  RateLimiter.make({ name, algorithm: RateLimiter.fixedWindow({ limit, window: w }) })

const millis = (d: Duration.Duration) => Duration.toMillis(d)

describe("RateLimiter.all", () => {
  it.effect("per second and per hour: a refusal by either takes from neither", () =>
    Effect.gen(function*() {
      const second = yield* window("second", 3, "1 second")
      const hour = yield* window("hour", 5, "1 hour")
      const both = yield* RateLimiter.all([second, hour])
      for (let i = 0; i < 3; i++) expect((yield* both.take("u")).allowed).toBe(true)
      const refused = yield* both.take("u")
      expect(refused.allowed).toBe(false)
      expect(refused.refusedBy).toBe("second")
      expect(millis(refused.retryAfter)).toBe(1000)
      // the hour was not charged for the refused request
      expect(refused.decisions[1].remaining).toBe(1)
      yield* TestClock.adjust("1 second")
      expect((yield* both.take("u")).allowed).toBe(true)
      expect((yield* both.take("u")).allowed).toBe(true)
      const byHour = yield* both.take("u")
      expect(byHour.refusedBy).toBe("hour")
      expect(millis(byHour.retryAfter)).toBe(3_599_000)
      // the second was not charged either: one unit left of its three
      const alone = yield* second.take("u")
      expect(alone.allowed).toBe(true)
      expect(alone.remaining).toBe(0)
    }).pipe(Effect.provide(memory)))

  it.effect("reports the longest retry-after among the refusing limits, and the least remaining", () =>
    Effect.gen(function*() {
      const fast = yield* RateLimiter.make({
        name: "fast",
        algorithm: RateLimiter.gcra({ limit: 1, period: "1 second" })
      })
      const slow = yield* RateLimiter.make({
        name: "slow",
        algorithm: RateLimiter.gcra({ limit: 1, period: "1 minute" })
      })
      const both = yield* RateLimiter.all([fast, slow])
      const first = yield* both.take("k")
      expect(first.allowed).toBe(true)
      expect(first.refusedBy).toBeUndefined()
      expect(first.remaining).toBe(0)
      const second = yield* both.take("k")
      expect(second.allowed).toBe(false)
      expect(second.decisions.map((d) => d.allowed)).toEqual([false, false])
      expect(second.refusedBy).toBe("slow")
      expect(millis(second.retryAfter)).toBe(60_000)
      const error = yield* Effect.flip(both.acquire("k"))
      expect(error).toMatchObject({ _tag: "RateLimitedError", limiter: "slow", retryAfter: Duration.minutes(1) })
    }).pipe(Effect.provide(memory)))

  it.effect("one key per limiter: user, tenant and global", () =>
    Effect.gen(function*() {
      const user = yield* window("user", 2, "1 minute")
      const tenant = yield* window("tenant", 3, "1 minute")
      const global = yield* window("global", 100, "1 minute")
      const limits = yield* RateLimiter.all([user, tenant, global])
      expect((yield* limits.take(["alice", "acme", "all"])).allowed).toBe(true)
      expect((yield* limits.take(["alice", "acme", "all"])).allowed).toBe(true)
      expect((yield* limits.take(["alice", "acme", "all"])).refusedBy).toBe("user")
      expect((yield* limits.take(["bob", "acme", "all"])).allowed).toBe(true)
      expect((yield* limits.take(["bob", "acme", "all"])).refusedBy).toBe("tenant")
      expect((yield* limits.take(["carol", "other", "all"])).allowed).toBe(true)
      // four admitted: the global limit was charged exactly four times
      expect((yield* global.take("all")).remaining).toBe(95)
      const wrong = yield* Effect.exit(limits.take(["alice", "acme"]))
      expect(Exit.isFailure(wrong) && !Exit.isInterrupted(wrong)).toBe(true)
    }).pipe(Effect.provide(memory)))

  it.effect("1,000 concurrent requests never over-admit any single limit, and refused ones take nothing", () =>
    Effect.gen(function*() {
      const user = yield* window("user", 5, "1 hour")
      const tenant = yield* window("tenant", 20, "1 hour")
      const global = yield* window("global", 60, "1 hour")
      const limits = yield* RateLimiter.all([user, tenant, global])
      const next = seededRandom(7)
      const requests = Array.from({ length: 1000 }, () => {
        const t = Math.floor(next() * 5)
        return [`u${t}-${Math.floor(next() * 8)}`, `t${t}`, "all"] as const
      })
      const decisions = yield* Effect.forEach(requests, (keys) => limits.take(keys), { concurrency: "unbounded" })
      const admitted = requests.filter((_, i) => decisions[i].allowed)
      const count = (pick: (k: readonly [string, string, string]) => string) => {
        const m = new Map<string, number>()
        for (const k of admitted) m.set(pick(k), (m.get(pick(k)) ?? 0) + 1)
        return [...m.values()]
      }
      expect(Math.max(...count((k) => k[0]))).toBeLessThanOrEqual(5)
      expect(Math.max(...count((k) => k[1]))).toBeLessThanOrEqual(20)
      expect(admitted.length).toBeLessThanOrEqual(60)
      expect(admitted.length).toBeGreaterThan(0)
      // every limit holds exactly what the admitted requests took: refused ones took nothing
      expect((yield* global.take("all", 0)).remaining).toBe(60 - admitted.length)
      for (let t = 0; t < 5; t++) {
        const taken = admitted.filter((k) => k[1] === `t${t}`).length
        expect((yield* tenant.take(`t${t}`, 0)).remaining).toBe(20 - taken)
      }
    }).pipe(Effect.provide(memory)))

  it.effect("every algorithm in one group decides as it does alone", () =>
    Effect.gen(function*() {
      const algorithms = [
        RateLimiter.tokenBucket({ rate: 2, burst: 3 }),
        RateLimiter.fixedWindow({ limit: 4, window: "1 second" }),
        RateLimiter.slidingLog({ limit: 5, window: "2 seconds" }),
        RateLimiter.slidingCounter({ limit: 6, window: "1 second" }),
        RateLimiter.gcra({ limit: 3, period: "1 second", burst: 2 })
      ]
      for (const [i, algorithm] of algorithms.entries()) {
        const inGroup = yield* RateLimiter.make({ name: `g${i}`, algorithm })
        const roomy = yield* RateLimiter.make({
          name: `roomy${i}`,
          algorithm: RateLimiter.tokenBucket({ rate: 1000, burst: 1000 })
        })
        const alone = yield* RateLimiter.make({ name: `a${i}`, algorithm })
        const group = yield* RateLimiter.all([roomy, inGroup])
        for (let step = 0; step < 30; step++) {
          const g = yield* group.take("k")
          const a = yield* alone.take("k")
          expect([step, g.allowed, g.decisions[1].remaining]).toEqual([step, a.allowed, a.remaining])
          yield* TestClock.adjust("150 millis")
        }
      }
    }).pipe(Effect.provide(memory)))

  it.effect("waits out the longest retry-after in wait mode, within maxWait", () =>
    Effect.gen(function*() {
      const a = yield* window("a", 1, "1 second")
      const b = yield* window("b", 1, "3 seconds")
      const both = yield* RateLimiter.all([a, b], { onExceeded: "wait", maxWait: "5 seconds" })
      yield* both.acquire("k")
      const fiber = yield* Effect.fork(both.acquire("k"))
      yield* TestClock.adjust("2999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      const short = yield* RateLimiter.all([a, b], { onExceeded: "wait", maxWait: "1 second" })
      const error = yield* Effect.flip(short.acquire("k"))
      expect(error).toMatchObject({ _tag: "RateLimitedError", limiter: "b" })
    }).pipe(Effect.provide(memory)))

  it.effect("refuses a cost above the smallest capacity, bad groups and foreign limiters", () =>
    Effect.gen(function*() {
      const small = yield* window("small", 2, "1 second")
      const big = yield* window("big", 10, "1 second")
      const group = yield* RateLimiter.all([big, small])
      const costly = yield* Effect.flip(group.take("k", 3))
      expect(costly._tag).toBe("RateLimitedError")
      expect(costly._tag === "RateLimitedError" && costly.limiter).toBe("small")
      expect((yield* Effect.flip(RateLimiter.all([]))).option).toBe("limiters")
      expect((yield* Effect.flip(RateLimiter.all([small, small]))).reason).toMatch(/distinct/)
      const elsewhere = yield* window("elsewhere", 1, "1 second").pipe(Effect.provide(RateLimiterStore.layerMemory()))
      expect((yield* Effect.flip(RateLimiter.all([small, elsewhere]))).reason).toMatch(/one store/)
      const handMade = { ...small, name: "hand" }
      expect((yield* Effect.flip(RateLimiter.all([small, handMade]))).reason).toMatch(/RateLimiter.make/)
    }).pipe(Effect.provide(memory)))

  it.effect("in shadow mode a group still decides and takes, but admits everything", () =>
    Effect.gen(function*() {
      const shadow = yield* ResilienceMode.makeShadow(true)
      const group = yield* Effect.gen(function*() {
        const a = yield* window("a", 1, "1 minute")
        const b = yield* window("b", 5, "1 minute")
        return yield* RateLimiter.all([a, b])
      }).pipe(Effect.provideService(ResilienceMode.Shadow, shadow))
      expect((yield* group.take("k")).allowed).toBe(true)
      const over = yield* group.take("k")
      expect(over.allowed).toBe(true)
      yield* group.acquire("k")
      yield* shadow.set(false)
      expect((yield* Effect.flip(group.acquire("k")))._tag).toBe("RateLimitedError")
    }).pipe(Effect.provide(memory)))

  it.effect("a tier may have several limits, applied all-or-nothing", () =>
    Effect.gen(function*() {
      const plans = yield* RateLimiter.tiered({
        name: "api",
        tiers: {
          free: [
            RateLimiter.fixedWindow({ limit: 2, window: "1 minute" }),
            RateLimiter.fixedWindow({ limit: 3, window: "1 hour" })
          ],
          premium: RateLimiter.fixedWindow({ limit: 100, window: "1 minute" })
        },
        fallback: "free"
      })
      expect((yield* plans.take("free", "u")).allowed).toBe(true)
      expect((yield* plans.take("unknown-plan", "u")).allowed).toBe(true) // the fallback tier's group
      const refused = yield* plans.take("free", "u")
      expect(refused.allowed).toBe(false)
      expect((refused as RateLimiter.AllDecision).refusedBy).toBe("api.free.0")
      expect((yield* plans.groups.free!.limiters[1].take("u", 0)).remaining).toBe(1)
      expect((yield* Effect.flip(Effect.void.pipe(plans.protect("free", "u"))))._tag).toBe("RateLimitedError")
      expect((yield* plans.take("premium", "u")).remaining).toBe(99)
      expect(plans.groups.premium).toBeUndefined()
    }).pipe(Effect.provide(memory)))
})
