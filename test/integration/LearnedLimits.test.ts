/**
 * The HTTP client learns a host's limit from its responses (real server on 127.0.0.1) and holds
 * requests back instead of collecting 429s.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { RateLimitedError } from "../../src/Errors.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import * as Timeout from "../../src/Timeout.js"
import { serve } from "./serve.js"

/** A server allowing `quota` requests per window of `windowMs`, saying so in RateLimit-* headers. */
const limited = (quota: number, windowMs: number, headers: "ratelimit" | "retry-after") =>
  Effect.gen(function*() {
    let windowStart = Date.now()
    let used = 0
    const hits: Array<{ at: number; status: number }> = []
    const handler = Effect.sync(() => {
      const now = Date.now()
      if (now - windowStart >= windowMs) {
        windowStart = now
        used = 0
      }
      const resetSeconds = Math.max(0, Math.ceil((windowStart + windowMs - now) / 1000))
      const status = used < quota ? 200 : 429
      if (status === 200) used++
      hits.push({ at: now, status })
      return HttpServerResponse.text(status === 200 ? "ok" : "slow down", {
        status,
        headers: headers === "ratelimit"
          ? {
            "ratelimit-limit": String(quota),
            "ratelimit-remaining": String(quota - used),
            "ratelimit-reset": String(resetSeconds)
          }
          : status === 429
          ? { "retry-after": String(resetSeconds) }
          : {}
      })
    })
    const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", handler)))
    return { url, hits }
  })

const withUndici = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Layer.build(NodeHttpClient.layerUndici), (ctx) => Effect.provide(effect, ctx))

const makeClient = (options: ResilientHttpClient.Options) =>
  withUndici(ResilientHttpClient.make({ breaker: false, retry: false, ...options }))

describe("ResilientHttpClient: limits learned from the server (real server on 127.0.0.1)", () => {
  it.live(
    "waits for the reset the RateLimit headers announce: the server sees no request over its quota",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* limited(3, 1000, "ratelimit")
        const client = yield* makeClient({ learnLimits: {} })
        const started = Date.now()
        const statuses = yield* Effect.forEach(
          Array.from({ length: 5 }),
          () => Effect.map(client.get(`${server.url}/x`), (r) => r.status)
        )
        expect(statuses).toEqual([200, 200, 200, 200, 200])
        expect(server.hits.every((h) => h.status === 200)).toBe(true)
        // the fourth request waited for the window to reset
        expect(Date.now() - started).toBeGreaterThanOrEqual(900)
      })),
    20_000
  )

  it.live(
    "fails fast with RateLimitedError after a 429 with Retry-After, sending nothing until then",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* limited(1, 1000, "retry-after")
        const client = yield* makeClient({ name: "api", learnLimits: { onLimited: "fail" } })
        expect((yield* client.get(`${server.url}/x`)).status).toBe(200)
        expect((yield* client.get(`${server.url}/x`)).status).toBe(429)
        const started = Date.now()
        const refused = yield* Effect.flip(client.get(`${server.url}/x`))
        // refused at once, not after the second Retry-After asked for (margin for a busy machine)
        expect(Date.now() - started).toBeLessThan(500)
        expect(refused).toBeInstanceOf(RateLimitedError)
        if (refused instanceof RateLimitedError) {
          expect(refused.limiter).toBe("api")
          expect(refused.key).toMatch(/^127\.0\.0\.1:\d+$/)
        }
        expect(server.hits.length).toBe(2)
        yield* Effect.sleep("1100 millis")
        expect((yield* client.get(`${server.url}/x`)).status).toBe(200)
      })),
    20_000
  )

  it.live("does not wait past the caller's deadline nor past maxWait", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* limited(1, 2000, "ratelimit")
      const client = yield* makeClient({ learnLimits: { maxWait: "5 seconds" } })
      yield* client.get(`${server.url}/x`)
      const started = Date.now()
      const refused = yield* Effect.flip(client.get(`${server.url}/x`).pipe(Timeout.deadline("300 millis")))
      expect(refused).toBeInstanceOf(RateLimitedError)
      expect(Date.now() - started).toBeLessThan(100)
      const short = yield* makeClient({ learnLimits: { maxWait: "100 millis" } })
      yield* short.get(`${server.url}/y`).pipe(Effect.ignore)
      expect(yield* Effect.flip(short.get(`${server.url}/y`))).toBeInstanceOf(RateLimitedError)
    })), 20_000)
})
