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
import { RateLimitedError } from "../../src/Errors.js"
import * as RedisStore from "../../src/RedisStore.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import { type RedisServer, redisServerMissing, startRedis } from "./redisServer.js"
import { serve } from "./serve.js"

const missing = redisServerMissing()

/**
 * An upstream: `/block` answers 429 with `Retry-After: 3`, `/quota` says 30 requests are left for
 * a minute, `/plain` answers 200 and says nothing of quotas. Counts the requests per path.
 */
const upstream = Effect.gen(function*() {
  const hits = { block: 0, quota: 0, plain: 0 }
  const router = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/block",
      Effect.sync(() => {
        hits.block++
        return HttpServerResponse.text("slow down", { status: 429, headers: { "retry-after": "3" } })
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

describe.skipIf(missing !== undefined)(
  "learned limits shared through Redis (real redis-server, three instances)",
  () => {
    let redis: RedisServer

    beforeAll(async () => {
      redis = await startRedis()
    }, 60_000)

    afterAll(async () => {
      await redis?.stop()
    })

    /** Three instances of client "upstream", each with its own Redis connection. */
    const instances = Effect.gen(function*() {
      const http = yield* Layer.build(NodeHttpClient.layerUndici)
      return yield* Effect.forEach(["a", "b", "c"], (instance) =>
        Effect.gen(function*() {
          const client = yield* RedisStore.connect(redis.url)
          return yield* ResilientHttpClient.make({
            name: "upstream",
            breaker: false,
            retry: false,
            learnLimits: {
              onLimited: "fail",
              share: { client, instance, interval: "100 millis", timeout: "300 millis" }
            }
          }).pipe(Effect.provide(http))
        }))
    })

    it.live(
      "a block one instance hears holds the others back; the quota is divided among the three",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const [a, b, c] = yield* instances
          const server = yield* upstream
          // every instance has counted itself in
          yield* Effect.sleep("500 millis")
          expect((yield* a.get(`${server.url}/block`)).status).toBe(429)
          yield* Effect.sleep("1 second")
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
          yield* Effect.sleep("1 second")
          const sent = yield* Effect.forEach([a, b, c], (client) => sendUntilRefused(client, `${second.url}/plain`, 40))
          // each its third of what the server said: together they keep to its quota
          expect(sent).toEqual([10, 10, 10])
          expect(second.hits.plain).toBe(30)
        })),
      30_000
    )

    it.live(
      "with Redis gone, each instance runs on its own learned limits",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const [a, b] = yield* instances
          yield* Effect.sleep("500 millis")
          yield* Effect.promise(() => redis.stop())
          // a round fails: the share falls back to this instance alone
          yield* Effect.sleep("1 second")
          const server = yield* upstream
          expect((yield* a.get(`${server.url}/quota`)).status).toBe(200)
          expect(yield* sendUntilRefused(a, `${server.url}/plain`, 40)).toBe(30)
          // b heard nothing and nobody told it: it sends as it would alone
          expect(yield* sendUntilRefused(b, `${server.url}/plain`, 5)).toBe(5)
        })),
      30_000
    )
  }
)
