/**
 * Reservations and their cancel on the Redis store: x/time/rate's scenarios run through the Lua
 * scripts with explicit times, and a waiter interrupted while it waits gives its reservation back.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { num } from "../../src/internal/ratelimit/core.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"
import { algorithmsFor, definitionOf, type Driver, play, scenarios } from "../reservationScenarios.js"
import { useRedisServer } from "./redisFixture.js"
import { redisServerMissing } from "./redisServer.js"

const missing = redisServerMissing()

describe.skipIf(missing !== undefined)("reservations on the Redis store", () => {
  const redis = useRedisServer()

  const scriptDriver = async (algorithm: RateLimiter.Algorithm, key: string): Promise<Driver> => {
    const def = definitionOf(algorithm)
    const sha = String(await redis.raw.scriptLoad(def.script))
    await redis.raw.del(key)
    return {
      step: async (t, n, maxDelay) =>
        def.decode(
          (await redis.raw.evalSha(sha, { keys: [key], arguments: [num(n), num(maxDelay), num(t)] })) as never,
          n
        ),
      cancel: async (t, n, timeToAct) => {
        await redis.raw.evalSha(sha, { keys: [key], arguments: [num(n), "0", num(t), num(timeToAct)] })
      }
    }
  }

  describe("x/time/rate scenarios through the scripts", () => {
    for (const scenario of scenarios) {
      for (const [label, algorithm] of algorithmsFor(scenario)) {
        it(`${scenario.name}: ${label}`, async () => {
          // near Redis's clock, so that the keys' expiries lie in the future
          const [sec] = (await redis.raw.sendCommand(["TIME"])) as [string, string]
          const base = (Number(sec) + 60) * 1e6
          const driver = await scriptDriver(algorithm, `scenario:${scenario.name}:${label}`)
          expect(await play(scenario, driver, base)).toEqual([])
        })
      }
    }
  })

  it("a waiter interrupted while it waits (Redis clock) gives its reservation back", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(RedisStore.layer({ url: redis.server.url, prefix: "int:" }))
      const limiter = yield* RateLimiter.make({
        name: "w",
        algorithm: RateLimiter.tokenBucket({ rate: 2, burst: 1 }),
        onExceeded: "wait"
      }).pipe(Effect.provide(context))
      yield* limiter.acquire("k") // the burst
      const waiter = yield* Effect.fork(limiter.acquire("k")) // waits ~500 ms
      yield* Effect.sleep(Duration.millis(50))
      yield* Fiber.interrupt(waiter)
      // it was the latest reservation: all of it came back, so the next one waits at most ~500 ms, not ~1 s
      const next = yield* limiter.reserve("k")
      expect(Duration.toMillis(next.delay)).toBeLessThanOrEqual(500)
    }))))
})
