/**
 * RedisStore failure handling with a scripted client standing in for Redis (hangs, errors,
 * NOSCRIPT), so these run even where redis-server is absent. They use the live clock because the
 * store's per-call timeout and health checks are part of its live layer. The real-server tests are
 * in RedisStore.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"
import { freePort } from "./redisServer.js"

interface Fake extends RedisStore.RedisClient {
  readonly calls: Array<string>
  loaded: boolean
  mode: "ok" | "hang" | "error"
  /** answer after this many ms (a timer: the answer arrives while the process may be busy) */
  delay: number
  /** what a take answers (token bucket, 100 ms per token, burst 5: a lead of one token leaves 4) */
  reply: unknown
  /** heartbeats fail while the calls still work */
  pingFails: boolean
}

const fake = (): Fake => {
  const self: Fake = {
    calls: [],
    loaded: false,
    mode: "ok",
    delay: 0,
    reply: 100_000,
    pingFails: false,
    evalsha: (_sha, keys, args) => {
      const heartbeat = keys[0].endsWith("{instances}")
      if (!heartbeat) self.calls.push(`evalsha ${keys[0]} [${args.join(" ")}]`)
      if (self.mode === "hang") return new Promise(() => {})
      if (self.mode === "error") return Promise.reject(new Error("connection lost"))
      if (heartbeat) return self.pingFails ? Promise.reject(new Error("ping failed")) : Promise.resolve(1)
      if (!self.loaded) return Promise.reject(new Error("NOSCRIPT No matching script. Please use EVAL."))
      if (self.delay === 0) return Promise.resolve(self.reply)
      return new Promise((resolve) => setTimeout(() => resolve(self.reply), self.delay))
    },
    scriptLoad: () => {
      self.calls.push("script load")
      self.loaded = true
      return Promise.resolve("sha")
    },
    ping: () => {
      self.calls.push("ping")
      return self.mode === "ok" ? Promise.resolve("PONG") : Promise.reject(new Error("down"))
    },
    quit: () => Promise.resolve("OK")
  }
  return self
}

const limiterOn = (
  client: RedisStore.RedisClient,
  options: Omit<RedisStore.Options, "client"> = {},
  algorithm = RateLimiter.tokenBucket({ rate: 10, burst: 5 })
) =>
  Effect.flatMap(
    Layer.build(RedisStore.layer({ ...options, client })),
    (context) => RateLimiter.make({ name: "api", algorithm }).pipe(Effect.provide(context))
  )

describe("RedisStore (fake client)", () => {
  it.scoped("reloads the script on NOSCRIPT and reads the reply", () =>
    Effect.gen(function*() {
      const client = fake()
      const limiter = yield* limiterOn(client)
      client.loaded = false // e.g. SCRIPT FLUSH after start-up
      const d = yield* limiter.take("user {1}")
      expect(d).toMatchObject({ allowed: true, remaining: 4, limit: 5 })
      expect(Duration.toMillis(d.resetAfter)).toBe(100)
      // a plain take sends the key alone: the limiter's parameters are in the script
      expect(client.calls.slice(-3)).toEqual([
        "evalsha rl:api:{user {1}} []",
        "script load",
        "evalsha rl:api:{user {1}} []"
      ])
    }))

  it.live("a call that gets no answer fails after the timeout (fail-closed)", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = fake()
      const limiter = yield* limiterOn(client, { onError: "fail-closed", timeout: "30 millis" })
      client.mode = "hang"
      const started = performance.now()
      const e = yield* Effect.flip(limiter.take("k"))
      expect(e._tag).toBe("StoreError")
      expect(performance.now() - started).toBeLessThan(400)
    })))

  it.live("fail-open admits, local-fallback limits locally and pings its way back", () =>
    Effect.scoped(Effect.gen(function*() {
      const open = fake()
      const openLimiter = yield* limiterOn(open, { onError: "fail-open" })
      open.mode = "error"
      const ds = yield* Effect.forEach(Array.from({ length: 8 }), () => openLimiter.take("k"))
      expect(ds.every((d) => d.allowed)).toBe(true)

      const local = fake()
      const localLimiter = yield* limiterOn(local, {
        onError: "local-fallback",
        healthCheckInterval: "10 millis",
        failureThreshold: 2
      }, RateLimiter.tokenBucket({ rate: 0.01, burst: 5 }))
      const before = local.calls.length
      local.mode = "error"
      const lds = yield* Effect.forEach(Array.from({ length: 8 }), () => localLimiter.take("k"))
      expect(lds.filter((d) => d.allowed)).toHaveLength(5) // burst 5, same parameters as the Redis limiter
      const evalsDuringOutage = local.calls.length - before
      expect(evalsDuringOutage).toBe(2) // after two consecutive failures, no call waits on Redis
      local.mode = "ok"
      // the probe (a heartbeat) brings the store back
      let back = false
      for (let i = 0; i < 200 && !back; i++) {
        yield* Effect.sleep("10 millis")
        yield* localLimiter.take("k")
        back = local.calls.length - before > evalsDuringOutage
      }
      expect(back).toBe(true)
    })))

  it.live("a slow Redis is late even when the process is idle", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = fake()
      client.loaded = true
      const limiter = yield* limiterOn(client, { onError: "fail-closed", timeout: "30 millis" })
      client.delay = 300
      const e = yield* Effect.flip(limiter.take("k"))
      expect(e._tag).toBe("StoreError")
    })))

  it.live("a failed health ping puts the store in failure mode at once; the first good probe ends it", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = fake()
      client.loaded = true
      const limiter = yield* limiterOn(client, {
        onError: "fail-closed",
        healthCheckInterval: "10 millis",
        heartbeatInterval: "10 millis"
      })
      expect((yield* limiter.take("k")).allowed).toBe(true)
      client.pingFails = true
      let failing = false
      for (let i = 0; i < 500 && !failing; i++) {
        yield* Effect.sleep("5 millis")
        failing = (yield* Effect.either(limiter.take("k")))._tag === "Left"
      }
      expect(failing).toBe(true) // no call failed: the ping alone did it
      client.pingFails = false
      let back = false
      for (let i = 0; i < 500 && !back; i++) {
        yield* Effect.sleep("5 millis")
        back = (yield* Effect.either(limiter.take("k")))._tag === "Right"
      }
      expect(back).toBe(true)
    })))

  it.live("the denied-until cache refuses a refused key locally until its retryAfter", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = fake()
      client.loaded = true
      const limiter = yield* limiterOn(client, { deniedCacheMaxKeys: 100 })
      client.reply = -150_000 // refused: 150 ms until a token
      const first = yield* limiter.take("k")
      expect(first.allowed).toBe(false)
      const sent = client.calls.length
      const again = yield* limiter.take("k")
      expect(again.allowed).toBe(false)
      expect(Duration.toMillis(again.retryAfter)).toBeLessThanOrEqual(150)
      expect(client.calls.length).toBe(sent) // no round trip
      // another key still goes to Redis
      yield* limiter.take("other")
      expect(client.calls.length).toBe(sent + 1)
      // once the wait is over, Redis decides again
      client.reply = 100_000
      yield* Effect.sleep("200 millis")
      expect((yield* limiter.take("k")).allowed).toBe(true)
      expect(client.calls.length).toBe(sent + 2)
    })))

  it.live("closing the layer's scope stops its health-check fiber", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(RedisStore.layer({ client: fake(), onError: "local-fallback" }), scope).pipe(
        Effect.supervised(supervisor)
      )
      const running = yield* supervisor.value
      expect(running.length).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
      for (const fiber of running) expect(yield* Fiber.poll(fiber)).not.toEqual({ _tag: "None" })
      const after = yield* supervisor.value
      expect(after).toHaveLength(0)
    }))

  it.effect("rejects bad options", () =>
    Effect.gen(function*() {
      const noUrl = yield* Effect.flip(Effect.scoped(Layer.build(RedisStore.layer({}))))
      expect(noUrl).toMatchObject({ _tag: "InvalidOptionsError", option: "url" })
      const badTimeout = yield* Effect.flip(
        Effect.scoped(Layer.build(RedisStore.layer({ client: fake(), timeout: "0 millis" })))
      )
      expect(badTimeout).toMatchObject({ _tag: "InvalidOptionsError", option: "timeout" })
      const badMode = yield* Effect.flip(
        Effect.scoped(Layer.build(RedisStore.layer({ client: fake(), onError: "retry" as "fail-open" })))
      )
      expect(badMode).toMatchObject({ _tag: "InvalidOptionsError", option: "onError" })
      for (const connectTimeout of [0, -1, "soon"]) {
        const badConnect = yield* Effect.flip(
          Effect.scoped(RedisStore.connect("redis://127.0.0.1:1", { connectTimeout: connectTimeout as number }))
        )
        expect(badConnect).toMatchObject({ _tag: "InvalidOptionsError", option: "connectTimeout" })
      }
    }))

  it.live("a url nobody listens on fails the layer with StoreError, quickly", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => freePort())
      const build = Effect.flip(Effect.scoped(Layer.build(RedisStore.layer({ url: `redis://127.0.0.1:${port}` }))))
      // the first build also loads the Redis client's modules, seconds under CPU hogs: untimed
      expect((yield* build)._tag).toBe("StoreError")
      const started = performance.now()
      const e = yield* build
      expect(e._tag).toBe("StoreError")
      // a refused connection fails at once, not after the client's reconnect attempts
      expect(performance.now() - started).toBeLessThan(3000)
    }))
})
