/**
 * The Redis store on a real three-master Redis Cluster on 127.0.0.1, started by the tests.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RateLimiter from "../../src/RateLimiter.js"
import type { RateLimiterStore } from "../../src/RateLimiterStore.js"
import * as RedisStore from "../../src/RedisStore.js"
import { runScoped } from "../support.js"
import { ask, type RedisCluster, startCluster } from "./redisCluster.js"
import { redisServerMissing } from "./redisServer.js"

const missing = redisServerMissing()
if (missing !== undefined) console.log(`skipping Redis Cluster tests: ${missing}`)

const limiterOn = (store: Layer.Layer<RateLimiterStore, unknown>, name: string, algorithm: RateLimiter.Algorithm) =>
  Effect.flatMap(Layer.build(store), (context) => RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context)))

describe.skipIf(missing !== undefined)("RedisStore.layerCluster (three masters on loopback)", () => {
  let cluster: RedisCluster
  // one identity on each master
  const keys: Array<string> = []

  beforeAll(async () => {
    cluster = await startCluster()
    const owners = new Set<number>()
    for (let i = 0; keys.length < 3 && i < 200; i++) {
      const owner = await cluster.nodeOf(`rl:c:{user-${i}}`)
      if (!owners.has(owner)) {
        owners.add(owner)
        keys.push(`user-${i}`)
      }
    }
  }, 120_000)

  afterAll(async () => {
    await cluster?.stop()
  })

  it(
    "spreads identities over the masters and admits exactly the quota on each",
    () =>
      runScoped(Effect.gen(function*() {
        expect(keys).toHaveLength(3)
        const store = RedisStore.layerCluster({ urls: cluster.urls, timeout: "1 second" })
        const bucket = yield* limiterOn(store, "c", RateLimiter.tokenBucket({ rate: 0.001, burst: 7 }))
        for (const key of keys) {
          const ds = yield* Effect.forEach(Array.from({ length: 12 }), () => bucket.take(key), { concurrency: 6 })
          expect(ds.filter((d) => d.allowed)).toHaveLength(7)
          // the state lives on the master that owns the identity's slot
          const owner = yield* Effect.promise(() => cluster.nodeOf(`rl:c:{${key}}`))
          expect(yield* Effect.promise(() => ask(owner, `EXISTS rl:c:{${key}}`))).toBe(":1\r\n")
        }
        const gcra = yield* limiterOn(store, "g", RateLimiter.gcra({ limit: 2, period: "1 minute" }))
        for (const key of keys) {
          expect((yield* gcra.take(key)).allowed).toBe(true)
          expect((yield* gcra.take(key)).allowed).toBe(true)
          expect((yield* gcra.take(key)).allowed).toBe(false)
        }
      })),
    60_000
  )

  it(
    "RateLimiter.all over one identity runs as one script on its master; identities on other slots fail without tripping the store",
    () =>
      runScoped(Effect.gen(function*() {
        const store = RedisStore.layerCluster({
          urls: cluster.urls,
          prefix: "all:",
          timeout: "1 second",
          onError: "fail-closed"
        })
        const context = yield* Layer.build(store)
        const make = (name: string, algorithm: RateLimiter.Algorithm) =>
          RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context))
        const second = yield* make("s", RateLimiter.gcra({ limit: 3, period: "1 minute" }))
        const hour = yield* make("h", RateLimiter.fixedWindow({ limit: 100, window: "1 hour" }))
        const both = yield* RateLimiter.all([second, hour])
        for (const key of keys) {
          const ds = yield* Effect.forEach(Array.from({ length: 8 }), () => both.take(key), { concurrency: 4 })
          expect(ds.filter((d) => d.allowed)).toHaveLength(3)
          const owner = yield* Effect.promise(() => cluster.nodeOf(`all:h:{${key}}`))
          expect(yield* Effect.promise(() => ask(owner, `GET all:h:{${key}}`))).toMatch(/^\$\d+\r\n3 /)
        }
        const crossed = yield* Effect.flip(both.take([keys[0], keys[1]]))
        expect(crossed._tag).toBe("StoreError")
        expect(crossed._tag === "StoreError" && crossed.reason).toMatch(/CROSSSLOT/)
        // a usage error, not a Redis failure: the store still answers from Redis
        expect((yield* hour.take(keys[2])).remaining).toBe(96)
      })),
    60_000
  )

  it(
    "a master restarted mid-run: its keys fail over to the failure mode, then come back to Redis",
    () =>
      runScoped(Effect.gen(function*() {
        const store = RedisStore.layerCluster({
          urls: cluster.urls,
          prefix: "restart:",
          onError: "fail-closed",
          timeout: "500 millis",
          healthCheckInterval: "50 millis"
        })
        const window = yield* limiterOn(store, "w", RateLimiter.fixedWindow({ limit: 1000, window: "1 hour" }))
        const victim = yield* Effect.promise(() => cluster.nodeOf(`restart:w:{${keys[0]}}`))
        const victimKey = keys[0]
        for (const key of keys) expect((yield* window.take(key)).allowed).toBe(true)

        yield* Effect.promise(() => cluster.kill(victim))
        // a call for the dead master's slot fails (fail-closed), it is never answered by another node
        const failed = yield* Effect.either(window.take(victimKey))
        expect(failed._tag === "Left" && failed.left._tag).toBe("StoreError")

        yield* Effect.promise(() => cluster.restart(victim))
        // back: the restarted master (empty) answers again and the store leaves the failure mode
        let back = false
        for (let i = 0; i < 400 && !back; i++) {
          const d = yield* Effect.either(window.take(victimKey))
          back = d._tag === "Right" && d.right.allowed
          if (!back) yield* Effect.sleep(Duration.millis(50))
        }
        expect(back).toBe(true)
        expect(yield* Effect.promise(() => ask(victim, `EXISTS restart:w:{${victimKey}}`))).toBe(":1\r\n")
        for (const key of keys) expect((yield* window.take(key)).allowed).toBe(true)
      })),
    120_000
  )

  it("rejects an empty node list", () =>
    runScoped(Effect.gen(function*() {
      const e = yield* Effect.flip(Layer.build(RedisStore.layerCluster({ urls: [] })))
      expect(e).toMatchObject({ _tag: "InvalidOptionsError", option: "urls" })
    })))
})
