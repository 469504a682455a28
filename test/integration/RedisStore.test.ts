/**
 * The Redis store against a real redis-server started on a free loopback port.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { Redis as IORedis } from "ioredis"
import { spawnSync } from "node:child_process"
import type { Definition, RawDecision } from "../../src/internal/ratelimit/core.js"
import { num } from "../../src/internal/ratelimit/core.js"
import { makeTable } from "../../src/internal/ratelimit/memory.js"
import { batchScript } from "../../src/internal/ratelimit/redisBatch.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import { RateLimiterStore } from "../../src/RateLimiterStore.js"
import * as RateLimiterStoreModule from "../../src/RateLimiterStore.js"
import * as RedisStore from "../../src/RedisStore.js"
import { runScoped, seededRandom } from "../support.js"
import { useRedisServer } from "./redisFixture.js"
import { redisServerMissing } from "./redisServer.js"

const missing = redisServerMissing()
if (missing !== undefined) console.log(`skipping Redis integration tests: ${missing}`)

const algorithms: ReadonlyArray<readonly [string, RateLimiter.Algorithm]> = [
  ["token bucket", RateLimiter.tokenBucket({ rate: 7.5, burst: 5 })],
  ["fixed window", RateLimiter.fixedWindow({ limit: 5, window: "700 millis" })],
  [
    "fixed window aligned",
    RateLimiter.fixedWindow({ limit: 4, window: "300 millis", align: true, offset: "7 millis" })
  ],
  ["sliding log", RateLimiter.slidingLog({ limit: 5, window: "500 millis" })],
  ["sliding counter", RateLimiter.slidingCounter({ limit: 6, window: "400 millis" })],
  ["gcra", RateLimiter.gcra({ limit: 3, period: "1 second", burst: 4 })]
]

/**
 * How many EVALSHA calls Redis has run, asked through `redis-cli`: synchronously, so that the event
 * loop stays blocked while it waits.
 */
const evalshaCalls = (port: number): number => {
  const out = spawnSync("redis-cli", ["-p", String(port), "INFO", "commandstats"], { encoding: "utf8" })
  return Number(out.stdout.match(/cmdstat_evalsha:calls=(\d+)/i)?.[1] ?? 0)
}

describe.skipIf(missing !== undefined)("RedisStore (real redis-server)", () => {
  const redis = useRedisServer()

  const limiterOn = (
    store: Layer.Layer<RateLimiterStore, unknown>,
    name: string,
    algorithm: RateLimiter.Algorithm
  ) =>
    // build the store in the test's scope: providing a scoped layer to `make` alone would close it after `make`
    Effect.flatMap(Layer.build(store), (context) => RateLimiter.make({ name, algorithm }).pipe(Effect.provide(context)))

  describe("the scripts step exactly like the TypeScript", () => {
    for (const [label, algorithm] of algorithms) {
      it(label, async () => {
        const def: Definition = Effect.runSync(RateLimiter.definition(algorithm))
        const sha = String(await redis.raw.scriptLoad(def.script))
        const table = makeTable(def, { maxKeys: 10, idleTimeToLive: Infinity })
        const next = seededRandom(label.length * 7919)
        // near Redis's own clock (a minute ahead), so that the keys' expiries lie in the future
        const [sec, usec] = (await redis.raw.sendCommand(["TIME"])) as [string, string]
        let now = Number(sec) * 1e6 + Number(usec) + 60e6
        const key = `lockstep:${label}`
        await redis.raw.del(key)
        const reserved: Array<{ cost: number; at: number }> = []
        for (let i = 0; i < 400; i++) {
          const r = next()
          now += Math.floor(r < 0.6 ? next() * 40_000 : r < 0.9 ? next() * 150_000 : next() * 1_500_000)
          const op = next()
          if (def.cancel !== undefined && op < 0.1 && reserved.length > 0) {
            const { at, cost } = reserved.splice(Math.floor(next() * reserved.length), 1)[0]
            table.cancel(key, now, cost, at)
            await redis.raw.evalSha(sha, { keys: [key], arguments: [num(cost), "0", num(now), num(at)] })
            continue
          }
          let cost = Math.floor(next() * 3)
          let maxDelay = 0
          if (op < 0.15) cost = def.capacity + 1
          else if (def.cancel !== undefined && op < 0.35) maxDelay = Math.floor(next() * 2_000_000)
          const want: RawDecision = table.run(key, now, cost, maxDelay)
          const reply = await redis.raw.evalSha(sha, { keys: [key], arguments: [num(cost), num(maxDelay), num(now)] })
          const got = def.decode(reply as never, cost)
          expect({ i, ...got }).toEqual({ i, ...want })
          if (got.timeToAct !== undefined) reserved.push({ cost, at: got.timeToAct })
        }
        // the plain hot path (no arguments: one unit, Redis's clock) reads the same stored state
        const plain = def.decode((await redis.raw.evalSha(sha, { keys: [key], arguments: [] })) as never, 1)
        expect(typeof plain.allowed).toBe("boolean")
      })
    }
  })

  describe("a batch of takes steps exactly like the TypeScript, key after key at one instant", () => {
    for (const [label, algorithm] of algorithms) {
      it(label, async () => {
        const def: Definition = Effect.runSync(RateLimiter.definition(algorithm))
        const sha = String(await redis.raw.scriptLoad(batchScript(def)))
        const table = makeTable(def, { maxKeys: 10, idleTimeToLive: Infinity })
        const next = seededRandom(label.length * 104_729)
        const [sec, usec] = (await redis.raw.sendCommand(["TIME"])) as [string, string]
        let now = Number(sec) * 1e6 + Number(usec) + 60e6
        const names = ["a", "b", "c"].map((k) => `batch:${label}:{${k}}`)
        await redis.raw.del(names)
        for (let i = 0; i < 150; i++) {
          const r = next()
          now += Math.floor(r < 0.6 ? next() * 40_000 : r < 0.9 ? next() * 150_000 : next() * 1_500_000)
          // the same key may come several times in one batch
          const keys = Array.from({ length: 1 + Math.floor(next() * 6) }, () => names[Math.floor(next() * 3)])
          const costs = keys.map(() => (next() < 0.1 ? def.capacity + 1 : Math.floor(next() * 3)))
          const want = keys.map((key, j) => table.run(key, now, costs[j], 0))
          const replies = (await redis.raw.evalSha(sha, {
            keys,
            arguments: [...costs.map(num), num(now)]
          })) as Array<unknown>
          expect({ i, got: replies.map((reply, j) => def.decode(reply as never, costs[j])) }).toEqual({ i, got: want })
        }
        // the hot path (no arguments: one unit each, Redis's clock) reads the same stored state
        const plain = (await redis.raw.evalSha(sha, { keys: names, arguments: [] })) as Array<unknown>
        expect(plain).toHaveLength(3)
      })
    }
  })

  it("concurrent takes go to Redis in batches and admit exactly the quota", () =>
    runScoped(Effect.gen(function*() {
      const limiter = yield* limiterOn(
        RedisStore.layer({ url: redis.server.url, prefix: "batched:", timeout: "10 seconds", batchMaxKeys: 16 }),
        "b",
        RateLimiter.tokenBucket({ rate: 0.001, burst: 40 })
      )
      const before = evalshaCalls(redis.server.port)
      const keys = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? "even" : `odd-${i % 10}`))
      const ds = yield* Effect.forEach(keys, (key) => limiter.take(key), { concurrency: "unbounded" })
      const calls = evalshaCalls(redis.server.port) - before
      expect(calls).toBeGreaterThan(0)
      // the first take goes alone (nothing was in flight), the rest in batches of 16
      expect(calls).toBeLessThanOrEqual(1 + Math.ceil(99 / 16))
      // 50 takes of "even" against a burst of 40, five keys with 10 takes each
      expect(ds.filter((d, i) => keys[i] === "even" && d.allowed)).toHaveLength(40)
      expect(ds.filter((d, i) => keys[i] !== "even" && d.allowed)).toHaveLength(50)
      // in the order they were issued: the first 40 takes of "even" got the tokens
      const remaining = ds.filter((_, i) => keys[i] === "even").map((d) => d.remaining)
      expect(remaining.slice(0, 40)).toEqual(Array.from({ length: 40 }, (_, i) => 39 - i))
      // a take of another cost goes in a batch too and decides as a lone take would
      const mixed = yield* Effect.all([limiter.take("mixed"), limiter.take("mixed", 2), limiter.take("mixed")], {
        concurrency: "unbounded"
      })
      expect(mixed.map((d) => d.remaining)).toEqual([39, 37, 36])
    })))

  it("every algorithm takes the same decisions through the public API as the memory store", () =>
    runScoped(Effect.gen(function*() {
      const onRedis = RedisStore.layer({ url: redis.server.url, prefix: "same:" })
      const memory = RateLimiterStoreModule.layerMemory()
      const slow: ReadonlyArray<RateLimiter.Algorithm> = [
        RateLimiter.tokenBucket({ rate: 0.001, burst: 5 }),
        RateLimiter.fixedWindow({ limit: 5, window: "1 hour" }),
        RateLimiter.fixedWindow({ limit: 5, window: "1 hour", align: true }),
        RateLimiter.slidingLog({ limit: 5, window: "1 hour" }),
        RateLimiter.gcra({ limit: 5, period: "1 hour" })
      ]
      for (const [i, algorithm] of slow.entries()) {
        const a = yield* limiterOn(onRedis, `same${i}`, algorithm)
        const b = yield* limiterOn(memory, `same${i}`, algorithm)
        for (const cost of [1, 2, 1, 3, 1, 1, 6, 1]) {
          const x = yield* Effect.either(a.take("k", cost))
          const y = yield* Effect.either(b.take("k", cost))
          if (x._tag === "Left" || y._tag === "Left") {
            expect([x._tag, y._tag]).toEqual(["Left", "Left"])
            continue
          }
          expect([x.right.allowed, x.right.remaining, x.right.code]).toEqual([
            y.right.allowed,
            y.right.remaining,
            y.right.code
          ])
        }
        // the decisions really came from Redis
        expect(yield* Effect.promise(() => redis.raw.exists(`same:same${i}:{k}`))).toBe(1)
      }
    })))

  it("three instances with their own clients sharing a key admit exactly the quota", () =>
    runScoped(Effect.gen(function*() {
      const instances = yield* Effect.forEach([1, 2, 3], () =>
        Effect.gen(function*() {
          // A generous timeout: this test is about the quota kept in Redis; on a busy machine the
          // default would send slow answers to the local fallback (RedisStoreFailures covers that).
          const context = yield* Layer.build(
            RedisStore.layer({ url: redis.server.url, prefix: "shared:", timeout: "10 seconds" })
          )
          return {
            window: yield* RateLimiter.make({
              name: "quota",
              algorithm: RateLimiter.fixedWindow({ limit: 25, window: "1 minute" })
            }).pipe(Effect.provide(context)),
            bucket: yield* RateLimiter.make({
              name: "bucket",
              algorithm: RateLimiter.tokenBucket({ rate: 0.001, burst: 17 })
            }).pipe(Effect.provide(context))
          }
        }))
      const admitted = (pick: (i: typeof instances[number]) => RateLimiter.RateLimiter) =>
        Effect.map(
          Effect.forEach(
            Array.from({ length: 90 }, (_, i) => i),
            (i) => pick(instances[i % 3]).take("tenant-1"),
            { concurrency: 30 }
          ),
          (ds) => ds.filter((d) => d.allowed).length
        )
      expect(yield* admitted((i) => i.window)).toBe(25)
      expect(yield* admitted((i) => i.bucket)).toBe(17)
    })))

  it("reloads scripts after SCRIPT FLUSH (NOSCRIPT)", () =>
    runScoped(Effect.gen(function*() {
      const limiter = yield* limiterOn(
        RedisStore.layer({ url: redis.server.url, prefix: "flush:" }),
        "flush",
        RateLimiter.fixedWindow({ limit: 3, window: "1 minute" })
      )
      expect((yield* limiter.take("k")).remaining).toBe(2)
      yield* Effect.promise(() => redis.raw.scriptFlush())
      expect((yield* limiter.take("k")).remaining).toBe(1)
      expect(yield* Effect.promise(() => redis.raw.exists("flush:flush:{k}"))).toBe(1)
    })))

  it("keys with braces, spaces and unicode are one key each, under a hash tag", () =>
    runScoped(Effect.gen(function*() {
      const limiter = yield* limiterOn(
        RedisStore.layer({ url: redis.server.url, prefix: "odd:" }),
        "odd",
        RateLimiter.gcra({ limit: 1, period: "1 minute" })
      )
      const weird = "{user} 42 ünï 😀 }{"
      expect((yield* limiter.take(weird)).allowed).toBe(true)
      expect((yield* limiter.take(weird)).allowed).toBe(false)
      expect((yield* limiter.take("user")).allowed).toBe(true)
      expect((yield* limiter.take("{user} 42 ünï 😀")).allowed).toBe(true)
      expect(yield* Effect.promise(() => redis.raw.exists(`odd:odd:{${weird}}`))).toBe(1)
      const ttl = yield* Effect.promise(() => redis.raw.pTTL(`odd:odd:{${weird}}`))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(61_000) // expiries are kept on a one-second grid
    })))

  it("wait mode and reservations run on the Redis clock", () =>
    runScoped(Effect.gen(function*() {
      const context = yield* Layer.build(RedisStore.layer({ url: redis.server.url, prefix: "wait:" }))
      const window = yield* RateLimiter.make({
        name: "w",
        algorithm: RateLimiter.fixedWindow({ limit: 1, window: "150 millis" }),
        onExceeded: "wait",
        maxWait: "1 second"
      }).pipe(Effect.provide(context))
      // Bounds measured around the calls, not assumed: a busy machine may spend tens of
      // milliseconds between two of them.
      const beforeFirst = performance.now()
      yield* window.acquire("k")
      const started = performance.now()
      yield* window.acquire("k") // sleeps until the window ends
      const done = performance.now()
      // the window opened on Redis after beforeFirst, and the second call returned only after it ended
      expect(done - beforeFirst).toBeGreaterThan(145)
      expect(done - started).toBeLessThan(1000)
      const gcra = yield* RateLimiter.make({
        name: "g",
        algorithm: RateLimiter.gcra({ limit: 10, period: "1 second", burst: 1 })
      }).pipe(Effect.provide(context))
      const beforeTake = performance.now()
      yield* gcra.take("k")
      const r = yield* gcra.reserve("k")
      const elapsed = performance.now() - beforeTake
      // the next slot is 100 ms after the take, less the time that passed between the two calls
      expect(Duration.toMillis(r.delay)).toBeGreaterThan(100 - elapsed - 5)
      expect(Duration.toMillis(r.delay)).toBeLessThanOrEqual(100)
      yield* r.cancel
      const again = yield* gcra.reserve("k")
      expect(Duration.toMillis(again.delay)).toBeLessThanOrEqual(100) // the cancelled slot was given back
    })))

  it("layerConfig reads the url and options from the config provider", () =>
    runScoped(Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["RATE_LIMIT_REDIS_URL", redis.server.url],
          ["RATE_LIMIT_REDIS_PREFIX", "cfg:"],
          ["RATE_LIMIT_REDIS_ON_ERROR", "fail-closed"],
          // read like the others; long enough that a busy machine's first call is not refused
          ["RATE_LIMIT_REDIS_TIMEOUT", "10 seconds"]
        ])
      )
      const limiter = yield* limiterOn(
        RedisStore.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(provider))),
        "cfg",
        RateLimiter.fixedWindow({ limit: 2, window: "1 minute" })
      )
      expect((yield* limiter.take("k")).code).toBe("Allowed")
      expect(yield* Effect.promise(() => redis.raw.exists("cfg:cfg:{k}"))).toBe(1)
      const missingUrl = yield* Effect.flip(
        Layer.build(
          RedisStore.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))))
        )
      )
      expect(ConfigError.isConfigError(missingUrl) && ConfigError.isMissingDataOnly(missingUrl)).toBe(true)
    })))

  it("works through the ioredis adapter", () =>
    runScoped(Effect.gen(function*() {
      const io = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new IORedis(redis.server.port, "127.0.0.1", { lazyConnect: true, enableAutoPipelining: true })
          await c.connect()
          return c
        }),
        (c) => Effect.promise(() => c.quit())
      )
      const limiter = yield* limiterOn(
        RedisStore.layer({ client: RedisStore.fromIoredis(io), prefix: "io:" }),
        "io",
        RateLimiter.slidingCounter({ limit: 2, window: "1 minute" })
      )
      const ds = yield* Effect.forEach([1, 2, 3], () => limiter.take("k"))
      expect(ds.map((d) => d.allowed)).toEqual([true, true, false])
    })))

  it("a hung Redis costs the timeout, not seconds", () =>
    runScoped(Effect.gen(function*() {
      const limiter = yield* limiterOn(
        RedisStore.layer({ url: redis.server.url, prefix: "hung:", onError: "fail-closed", timeout: "40 millis" }),
        "hung",
        RateLimiter.tokenBucket({ rate: 1, burst: 1 })
      )
      yield* limiter.take("k")
      redis.server.process().kill("SIGSTOP")
      const started = performance.now()
      const exit = yield* Effect.exit(limiter.take("k")).pipe(
        Effect.ensuring(Effect.sync(() => redis.server.process().kill("SIGCONT")))
      )
      const elapsed = performance.now() - started
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("StoreError")
      expect(elapsed).toBeLessThan(500)
    })))

  it("a busy process is not a slow Redis: a reply that waited in the socket while the event loop was blocked counts", () =>
    runScoped(Effect.gen(function*() {
      const limiter = yield* limiterOn(
        RedisStore.layer({ url: redis.server.url, prefix: "busy:", onError: "fail-closed", timeout: "20 millis" }),
        "busy",
        RateLimiter.tokenBucket({ rate: 1, burst: 100 })
      )
      yield* limiter.take("k")
      for (let round = 0; round < 5; round++) {
        const before = evalshaCalls(redis.server.port)
        const pending = yield* Effect.fork(Effect.either(limiter.take("k")))
        yield* Effect.yieldNow()
        // the command is written on the next turn of the loop; block right after it, far past the timeout
        yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
        const until = performance.now() + 200
        while (performance.now() < until) {
          // busy: the process reads no socket
        }
        // still blocked, until Redis has run the call (and so written its reply to the socket):
        // on a busy machine Redis itself may wait long for a core
        const waited = performance.now()
        while (evalshaCalls(redis.server.port) === before) {
          if (performance.now() - waited > 60_000) throw new Error("Redis never ran the call")
        }
        const d = yield* Fiber.join(pending)
        expect(d._tag).toBe("Right")
      }
    })))

  it(
    "Redis killed mid-run: each failure mode behaves as documented and recovers",
    () =>
      runScoped(Effect.gen(function*() {
        const algorithm = RateLimiter.fixedWindow({ limit: 3, window: "1 minute" })
        const make = (onError: RedisStore.OnError) =>
          limiterOn(
            RedisStore.layer({ url: redis.server.url, prefix: `kill-${onError}:`, onError, timeout: "50 millis" }),
            "k",
            algorithm
          )
        const closed = yield* make("fail-closed")
        const open = yield* make("fail-open")
        const local = yield* make("local-fallback")
        for (const l of [closed, open, local]) {
          expect((yield* l.take("user")).remaining).toBe(2)
        }

        yield* Effect.promise(() => redis.server.kill())
        const started = performance.now()
        const closedExit = yield* Effect.either(closed.take("user"))
        expect(closedExit._tag === "Left" && closedExit.left._tag).toBe("StoreError")
        const closedProtect = yield* Effect.either(closed.protect("user")(Effect.succeed("ran")))
        expect(closedProtect._tag === "Left" && closedProtect.left._tag).toBe("StoreError")
        const openDs = yield* Effect.forEach(Array.from({ length: 6 }), () => open.take("user"))
        expect(openDs.every((d) => d.allowed)).toBe(true)
        // the fallback starts from a fresh local limiter with the same parameters
        const localDs = yield* Effect.forEach(Array.from({ length: 6 }), () => local.take("user"))
        expect(localDs.map((d) => d.allowed)).toEqual([true, true, true, false, false, false])
        expect(performance.now() - started).toBeLessThan(1000)

        yield* Effect.promise(() => redis.server.start())
        // back on Redis (empty after the restart): each mode shares limits again
        const recovered = (l: RateLimiter.RateLimiter, prefix: string) =>
          Effect.gen(function*() {
            for (let i = 0; i < 100; i++) {
              yield* Effect.either(l.take("probe"))
              const onRedis = yield* Effect.promise(() => redis.raw.exists(`${prefix}k:{probe}`).catch(() => 0))
              if (onRedis === 1) return true
              yield* Effect.sleep(Duration.millis(50))
            }
            return false
          })
        expect(yield* recovered(closed, "kill-fail-closed:")).toBe(true)
        expect(yield* recovered(open, "kill-fail-open:")).toBe(true)
        expect(yield* recovered(local, "kill-local-fallback:")).toBe(true)
        const after = yield* Effect.forEach(Array.from({ length: 4 }), () => local.take("user"))
        expect(after.map((d) => d.allowed)).toEqual([true, true, true, false])
      })),
    20_000
  )
})
