/**
 * Learned host limits shared by three instances of one client through a real redis-server: a block
 * one instance hears holds the others back, the server's remaining quota is divided among them,
 * and with Redis gone each runs on its own limits.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { createClient } from "redis"
import { RateLimitedError } from "../../src/Errors.js"
import * as RedisStore from "../../src/RedisStore.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import { type RedisServer, redisServerMissing, startRedis } from "./redisServer.js"
import { serve } from "./serve.js"

const missing = redisServerMissing()

/**
 * An upstream: `/block` answers 429 with `Retry-After: 5`, `/quota` says 30 requests are left for
 * a minute, `/plain` answers 200 and says nothing of quotas. Counts the requests per path.
 */
const upstream = Effect.gen(function*() {
  const hits = { block: 0, quota: 0, plain: 0 }
  const router = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/block",
      Effect.sync(() => {
        hits.block++
        return HttpServerResponse.text("slow down", { status: 429, headers: { "retry-after": "5" } })
      })
    ),
    HttpRouter.get(
      "/quota",
      Effect.sync(() => {
        hits.quota++
        return HttpServerResponse.text("ok", {
          headers: { "ratelimit-limit": "30", "ratelimit-remaining": "30", "ratelimit-reset": "60" }
        })
      })
    ),
    HttpRouter.get(
      "/plain",
      Effect.sync(() => {
        hits.plain++
        return HttpServerResponse.text("ok")
      })
    )
  )
  const url = yield* serve(router)
  return { url, hits }
})

/** Sends `path` until the client refuses; the number of requests it let through. */
const sendUntilRefused = (client: ResilientHttpClient.ResilientHttpClient, url: string, most: number) =>
  Effect.gen(function*() {
    for (let sent = 0; sent < most; sent++) {
      const refused = yield* client.get(url).pipe(
        Effect.as(false),
        Effect.catchIf((e) => e instanceof RateLimitedError, () => Effect.succeed(true))
      )
      if (refused) return sent
    }
    return most
  })

const KEY = "resilience:learned:{upstream}"

describe.skipIf(missing !== undefined)(
  "learned limits shared through Redis (real redis-server, three instances)",
  () => {
    let redis: RedisServer
    let raw: ReturnType<typeof createClient>

    beforeAll(async () => {
      redis = await startRedis()
      raw = createClient({ url: redis.url })
      raw.on("error", () => {})
      await raw.connect()
    }, 60_000)

    afterAll(async () => {
      await raw?.close().catch(() => undefined)
      await redis?.stop()
    })

    /** The members' expiries in the shared hash, by instance. */
    const members = Effect.map(Effect.promise(() => raw.hGetAll(KEY)), (hash) => {
      const out = new Map<string, number>()
      for (const [field, value] of Object.entries(hash)) {
        if (field.startsWith("m\n")) out.set(field.slice(2), Number(value))
      }
      return out
    })

    const poll = <A>(read: Effect.Effect<A>, done: (a: A) => boolean): Effect.Effect<A> =>
      Effect.flatMap(
        read,
        (a) => done(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("20 millis"), poll(read, done))
      )

    /**
     * Waits until each of the three instances has run `n` more sync rounds (each renews its member
     * record), with no fixed sleep that a busy machine could outrun. After three, what one heard
     * before is known to all; four leave room for a reply that arrives after its round's timeout.
     */
    const rounds = (n: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < n; i++) {
          const before = yield* poll(members, (m) => m.size === 3)
          yield* poll(members, (m) => [...before].every(([instance, expiry]) => (m.get(instance) ?? 0) > expiry))
        }
      })

    /** Three instances of client "upstream", each with its own Redis connection and its own log. */
    const instances = Effect.gen(function*() {
      const http = yield* Layer.build(NodeHttpClient.layerUndici)
      return yield* Effect.forEach(["a", "b", "c"], (instance) =>
        Effect.gen(function*() {
          const client = yield* RedisStore.connect(redis.url)
          const logs: Array<string> = []
          const logger = Logger.make(({ message }) => {
            logs.push(String(message))
          })
          const http_ = yield* ResilientHttpClient.make({
            name: "upstream",
            breaker: false,
            retry: false,
            learnLimits: {
              onLimited: "fail",
              // a member counts for ten intervals (2 s): a busy machine may delay a round
              share: { client, instance, interval: "200 millis", timeout: "1 second" }
            }
          }).pipe(Effect.provide(http), Effect.provide(Logger.add(logger)))
          return Object.assign(http_, { logs })
        }))
    })

    it.live(
      "a block one instance hears holds the others back; the quota is divided among the three",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const [a, b, c] = yield* instances
          const server = yield* upstream
          // every instance has counted itself in
          yield* rounds(1)
          expect((yield* a.get(`${server.url}/block`)).status).toBe(429)
          yield* rounds(4)
          // b and c never heard from the server, yet refuse at once, sending nothing
          for (const other of [b, c]) {
            const error = yield* Effect.flip(other.get(`${server.url}/plain`))
            expect(error).toBeInstanceOf(RateLimitedError)
            expect((error as RateLimitedError).key).toBe(new URL(server.url).host)
          }
          expect(server.hits.plain).toBe(0)

          // a second upstream (another host): 30 requests left, heard by a alone
          const second = yield* upstream
          expect((yield* a.get(`${second.url}/quota`)).status).toBe(200)
          yield* rounds(4)
          const sent = yield* Effect.forEach([a, b, c], (client) => sendUntilRefused(client, `${second.url}/plain`, 40))
          // each its third of what the server said: together they keep to its quota
          expect(sent).toEqual([10, 10, 10])
          expect(second.hits.plain).toBe(30)
        })),
      60_000
    )

    it.live(
      "with Redis gone, each instance runs on its own learned limits",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const [a, b] = yield* instances
          yield* rounds(1)
          yield* Effect.promise(() => raw.close())
          yield* Effect.promise(() => redis.stop())
          // a round fails: a says so once, and its share falls back to itself alone
          yield* poll(Effect.sync(() => a.logs), (logs) => logs.some((m) => m.includes("unreachable")))
          const server = yield* upstream
          expect((yield* a.get(`${server.url}/quota`)).status).toBe(200)
          expect(yield* sendUntilRefused(a, `${server.url}/plain`, 40)).toBe(30)
          // b heard nothing and nobody told it: it sends as it would alone
          expect(yield* sendUntilRefused(b, `${server.url}/plain`, 5)).toBe(5)
        })),
      60_000
    )
  }
)
