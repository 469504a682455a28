/**
 * Three instances sharing one quota through Redis while Redis stops answering (DEBUG SLEEP) or
 * dies: with `local-fallback` each takes its share of the quota (the limit over the live
 * instances it counted), so together they admit at most n · ⌈limit / n⌉ during the outage.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createClient } from "redis"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"
import { runScoped } from "../support.js"
import { useRedisServer } from "./redisFixture.js"
import { redisServerMissing } from "./redisServer.js"

const missing = redisServerMissing()

describe.skipIf(missing !== undefined)("RedisStore: three instances through an outage", () => {
  const redis = useRedisServer()

  const LIMIT = 30
  const N = 3

  const instances = (prefix: string) =>
    Effect.forEach(Array.from({ length: N }), () =>
      Effect.flatMap(
        Layer.build(RedisStore.layer({
          url: redis.server.url,
          prefix,
          timeout: "100 millis",
          failureThreshold: 2,
          healthCheckInterval: "50 millis",
          heartbeatInterval: "100 millis"
        })),
        (context) =>
          RateLimiter.make({ name: "quota", algorithm: RateLimiter.fixedWindow({ limit: LIMIT, window: "1 hour" }) })
            .pipe(Effect.provide(context))
      ))

  /** Waits until every instance has renewed its heartbeat after all three were live: each has counted three. */
  const everyoneCounted = (prefix: string) =>
    Effect.promise(async () => {
      const key = `${prefix}{instances}`
      const deadline = Date.now() + 60_000
      let seen: Map<string, number> | undefined
      while (Date.now() < deadline) {
        const entries = await redis.raw.zRangeWithScores(key, 0, -1)
        if (entries.length === N) {
          if (seen === undefined) seen = new Map(entries.map((e) => [e.value, e.score]))
          else if (entries.every((e) => e.score > Math.max(...seen!.values()))) return
        }
        await new Promise((r) => setTimeout(r, 20))
      }
      throw new Error("the instances did not count each other within 60 s")
    })

  const outage = (prefix: string, fault: () => Promise<void>, heal: () => Promise<void>) =>
    Effect.gen(function*() {
      const limiters = yield* instances(prefix)
      yield* everyoneCounted(prefix)
      // some of the quota is used through Redis first
      for (const l of limiters) for (let i = 0; i < 3; i++) expect((yield* l.take("tenant")).allowed).toBe(true)
      yield* Effect.promise(fault)
      const admitted = yield* Effect.forEach(
        limiters,
        (l) =>
          Effect.map(
            Effect.forEach(Array.from({ length: 40 }), () => l.take("tenant"), { concurrency: 8 }),
            (ds) => ds.filter((d) => d.allowed).length
          ),
        { concurrency: "unbounded" }
      )
      yield* Effect.promise(heal)
      return { admitted, limiters }
    })

  const bound = N * Math.ceil(LIMIT / N) // ≤ LIMIT + N − 1

  it(
    "Redis stops answering (DEBUG SLEEP): together they admit at most the documented bound",
    () =>
      runScoped(Effect.gen(function*() {
        let sleeping: Promise<unknown> = Promise.resolve()
        const { admitted } = yield* outage(
          "sleep:",
          async () => {
            const sleeper = createClient({ url: redis.server.url })
            await sleeper.connect()
            sleeping = sleeper.sendCommand(["DEBUG", "SLEEP", "3"]).finally(() => sleeper.close())
            await new Promise((r) => setTimeout(r, 50))
          },
          () => sleeping.then(() => undefined)
        )
        const total = admitted.reduce((a, b) => a + b, 0)
        expect(admitted.every((a) => a <= Math.ceil(LIMIT / N))).toBe(true)
        expect(total).toBeLessThanOrEqual(bound)
        expect(total).toBeGreaterThan(0)
      })),
    120_000
  )

  it(
    "Redis killed: together they admit at most the documented bound, and share Redis again once it is back",
    () =>
      runScoped(Effect.gen(function*() {
        const { admitted, limiters } = yield* outage("kill:", () => redis.server.kill(), () => redis.server.start())
        const total = admitted.reduce((a, b) => a + b, 0)
        expect(admitted.every((a) => a <= Math.ceil(LIMIT / N))).toBe(true)
        expect(total).toBeLessThanOrEqual(bound)
        expect(total).toBeGreaterThan(0)
        // each instance probes its way back: its takes are counted in Redis again
        const stored = () =>
          Effect.promise(() =>
            redis.raw.get("kill:quota:{tenant}").then((v) => Number(v?.split(" ")[0] ?? 0), () => -1)
          )
        for (const l of limiters) {
          let counted = false
          for (let i = 0; i < 600 && !counted; i++) {
            const before = yield* stored()
            yield* l.take("tenant")
            counted = before >= 0 && (yield* stored()) === before + 1
            if (!counted) yield* Effect.sleep("50 millis")
          }
          expect(counted).toBe(true)
        }
      })),
    120_000
  )
})
