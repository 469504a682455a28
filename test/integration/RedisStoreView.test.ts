/**
 * `RateLimiter.view` on a real redis-server: reads that take nothing, through the limiter's own
 * script with its writes dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createClient } from "redis"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"
import { type RedisServer, redisServerMissing, startRedis } from "./redisServer.js"

const missing = redisServerMissing()

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => Effect.runPromise(Effect.scoped(effect))

describe.skipIf(missing !== undefined)("RateLimiter.view on RedisStore (real redis-server)", () => {
  let server: RedisServer
  let raw: ReturnType<typeof createClient>

  beforeAll(async () => {
    server = await startRedis()
    raw = createClient({ url: server.url })
    raw.on("error", () => {})
    await raw.connect()
  }, 60_000)

  afterAll(async () => {
    await raw?.close().catch(() => undefined)
    await server?.stop()
  })

  const onStore = (prefix: string) =>
    Effect.map(
      Layer.build(RedisStore.layer({ url: server.url, prefix, timeout: "2 seconds" })),
      (context) => (name: string, algorithm: RateLimiter.Algorithm) =>
        RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context))
    )

  const algorithms: ReadonlyArray<readonly [string, RateLimiter.Algorithm]> = [
    ["tokenBucket", RateLimiter.tokenBucket({ rate: 0.001, burst: 5 })],
    ["fixedWindow", RateLimiter.fixedWindow({ limit: 5, window: "1 hour" })],
    ["slidingLog", RateLimiter.slidingLog({ limit: 5, window: "1 hour" })],
    ["slidingCounter", RateLimiter.slidingCounter({ limit: 5, window: "1 hour" })],
    ["gcra", RateLimiter.gcra({ limit: 5, period: "1 hour" })]
  ]

  for (const [kind, algorithm] of algorithms) {
    it(`${kind}: a read takes nothing and tells what the next take will find`, () =>
      run(Effect.gen(function*() {
        const make = yield* onStore(`view-${kind}:`)
        const limiter = yield* make("l", algorithm)
        const quota = yield* RateLimiter.view(limiter, "u")
        expect((yield* quota.get).remaining).toBe(5)
        // a fresh key stays absent: the read wrote nothing
        expect(yield* Effect.promise(() => raw.exists(`view-${kind}:l:{u}`))).toBe(0)
        yield* limiter.take("u", 2)
        const key = `view-${kind}:l:{u}`
        const before = yield* Effect.promise(() => raw.dump(key))
        const ttl = yield* Effect.promise(() => raw.pTTL(key))
        for (let i = 0; i < 50; i++) yield* quota.get
        expect(yield* Effect.promise(() => raw.dump(key))).toEqual(before)
        expect(yield* Effect.promise(() => raw.pTTL(key))).toBeLessThanOrEqual(ttl)
        const seen = yield* quota.get
        expect(seen.remaining).toBe(3)
        expect(Duration.toMillis(seen.nextRefill)).toBeGreaterThan(0)
        expect(Duration.toMillis(seen.resetAfter)).toBeGreaterThan(0)
        // what the view says is left is what the next takes get
        const next = yield* limiter.take("u", 3)
        expect(next.allowed).toBe(true)
        expect((yield* limiter.take("u")).allowed).toBe(false)
      })), 30_000)
  }

  it(
    "changes follow this instance's takes and the refills; another instance's take shows at the next read",
    () =>
      run(Effect.gen(function*() {
        const makeA = yield* onStore("view-live:")
        const makeB = yield* onStore("view-live:")
        const algorithm = RateLimiter.tokenBucket({ rate: 5, burst: 2 })
        const a = yield* makeA("l", algorithm)
        const b = yield* makeB("l", algorithm)
        const quota = yield* RateLimiter.view(a, "k")
        // from full, through empty, until full again
        let emptied = false
        const collected = yield* Effect.fork(Stream.runCollect(Stream.takeUntil(quota.changes, (s) => {
          if (s.remaining === 0) emptied = true
          return emptied && s.remaining === 2
        })))
        // the subscription is made before the first read; let it start
        yield* Effect.sleep("50 millis")
        yield* a.take("k")
        yield* a.take("k")
        const states = Chunk.toReadonlyArray(
          yield* collected.await.pipe(Effect.flatten, Effect.timeout("20 seconds"))
        ).map((s) => s.remaining)
        // full, the takes (one by one, or together when the second lands before the first is
        // read), then a token back every 200 ms until full (two at once on a slow enough machine)
        expect(states[0]).toBe(2)
        const empty = states.indexOf(0)
        expect(states.slice(1, empty)).toEqual(empty === 2 ? [1] : [])
        const refills = states.slice(empty)
        expect(refills.at(-1)).toBe(2)
        for (let i = 1; i < refills.length; i++) expect(refills[i]).toBeGreaterThan(refills[i - 1])
        yield* b.take("k", 2)
        expect((yield* quota.get).remaining).toBe(0)
      })),
    30_000
  )
})
