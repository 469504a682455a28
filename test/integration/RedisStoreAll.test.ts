/**
 * `RateLimiter.all` on a real redis-server: one script over every limit's key.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"
import { runScoped, seededRandom } from "../support.js"
import { useRedisServer } from "./redisFixture.js"
import { redisServerMissing, startRedis } from "./redisServer.js"

const missing = redisServerMissing()

describe.skipIf(missing !== undefined)("RateLimiter.all on RedisStore (real redis-server)", () => {
  const redis = useRedisServer()

  const onStore = (prefix: string) =>
    Effect.map(
      Layer.build(RedisStore.layer({ url: redis.server.url, prefix, timeout: "2 seconds" })),
      (context) => (name: string, algorithm: RateLimiter.Algorithm) =>
        RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context))
    )

  it("per second and per hour: a refusal by either writes nothing", () =>
    runScoped(Effect.gen(function*() {
      const make = yield* onStore("sh:")
      const minute = yield* make("minute", RateLimiter.fixedWindow({ limit: 3, window: "1 minute" }))
      const hour = yield* make("hour", RateLimiter.gcra({ limit: 5, period: "1 hour" }))
      const both = yield* RateLimiter.all([minute, hour])
      for (let i = 0; i < 3; i++) expect((yield* both.take("u")).allowed).toBe(true)
      const refused = yield* both.take("u")
      expect(refused.refusedBy).toBe("minute")
      // the hour's key holds three takes, not four: its own next take leaves one of five
      expect((yield* hour.take("u")).remaining).toBe(1)
      expect(yield* Effect.promise(() => redis.raw.get("sh:minute:{u}"))).toMatch(/^3 /)
      // an identity the minute refuses gets no key under the hour
      for (let i = 0; i < 3; i++) yield* minute.take("v")
      expect((yield* both.take("v")).refusedBy).toBe("minute")
      expect(yield* Effect.promise(() => redis.raw.get("sh:hour:{v}"))).toBeNull()
    })), 30_000)

  it(
    "1,000 concurrent requests never over-admit any single limit, and refused ones take nothing",
    () =>
      runScoped(Effect.gen(function*() {
        const make = yield* onStore("many:")
        const user = yield* make("user", RateLimiter.fixedWindow({ limit: 5, window: "1 hour" }))
        const tenant = yield* make("tenant", RateLimiter.slidingLog({ limit: 20, window: "1 hour" }))
        const global = yield* make("global", RateLimiter.tokenBucket({ rate: 0.001, burst: 60 }))
        const limits = yield* RateLimiter.all([user, tenant, global])
        const next = seededRandom(11)
        const requests = Array.from({ length: 1000 }, () => {
          const t = Math.floor(next() * 5)
          return [`u${t}-${Math.floor(next() * 8)}`, `t${t}`, "all"] as const
        })
        const decisions = yield* Effect.forEach(requests, (keys) => limits.take(keys), { concurrency: "unbounded" })
        const admitted = requests.filter((_, i) => decisions[i].allowed)
        const most = (pick: (k: readonly [string, string, string]) => string) => {
          const m = new Map<string, number>()
          for (const k of admitted) m.set(pick(k), (m.get(pick(k)) ?? 0) + 1)
          return Math.max(...m.values())
        }
        expect(most((k) => k[0])).toBeLessThanOrEqual(5)
        expect(most((k) => k[1])).toBeLessThanOrEqual(20)
        expect(admitted.length).toBeLessThanOrEqual(60)
        expect(admitted.length).toBeGreaterThan(0)
        for (let t = 0; t < 5; t++) {
          const taken = admitted.filter((k) => k[1] === `t${t}`).length
          const log = yield* Effect.promise(() => redis.raw.lLen(`many:tenant:{t${t}}`))
          expect(log).toBe(taken)
        }
        expect((yield* global.take("all", 0)).remaining).toBe(60 - admitted.length)
      })),
    60_000
  )

  it(
    "Redis down: the group runs all-or-nothing on the limiters' own fallback tables, or fails closed",
    () =>
      runScoped(Effect.gen(function*() {
        const own = yield* Effect.promise(() => startRedis())
        yield* Effect.addFinalizer(() => Effect.promise(() => own.stop()))
        const onError = (mode: RedisStore.OnError, prefix: string) =>
          Effect.map(
            Layer.build(
              RedisStore.layer({ url: own.url, prefix, onError: mode, timeout: "300 millis", failureThreshold: 1 })
            ),
            (context) => (name: string, algorithm: RateLimiter.Algorithm) =>
              RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context))
          )
        const local = yield* onError("local-fallback", "fb:")
        const minute = yield* local("minute", RateLimiter.fixedWindow({ limit: 2, window: "1 minute" }))
        const hour = yield* local("hour", RateLimiter.fixedWindow({ limit: 3, window: "1 hour" }))
        const both = yield* RateLimiter.all([minute, hour])
        const closed = yield* onError("fail-closed", "fc:")
        const closedGroup = yield* RateLimiter.all([
          yield* closed("a", RateLimiter.gcra({ limit: 5, period: "1 minute" })),
          yield* closed("b", RateLimiter.gcra({ limit: 5, period: "1 minute" }))
        ])
        expect((yield* closedGroup.take("k")).allowed).toBe(true)
        yield* Effect.promise(() => own.kill())
        const first = yield* both.take("k")
        expect(first.allowed).toBe(true)
        expect((yield* both.take("k")).allowed).toBe(true)
        expect((yield* both.take("k")).refusedBy).toBe("minute")
        // the hour's fallback table, shared with the hour limiter alone, holds the two admitted takes
        expect((yield* hour.take("k", 0)).remaining).toBe(1)
        const failed = yield* Effect.flip(closedGroup.take("k"))
        expect(failed._tag).toBe("StoreError")
      })),
    60_000
  )
})
