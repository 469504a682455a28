import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import { TimeoutError } from "../../src/Errors.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import * as Timeout from "../../src/Timeout.js"
import { allOff, startResilient } from "./resilientServer.js"
import { get, serve } from "./serve.js"

describe("ResilientHttpServer: a handler failing with TimeoutError", () => {
  it.live("at the request deadline: always the 503 timeout JSON, never an empty 500", () =>
    Effect.scoped(Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(
        // a nested timeout clamped to the request deadline: it fires in the same millisecond
        HttpRouter.get(
          "/clamped",
          Effect.never.pipe(Timeout.within("10 seconds"), Effect.as(HttpServerResponse.empty()))
        ),
        // a per-try timeout that fires just before the request deadline
        HttpRouter.get("/early", Effect.never.pipe(Timeout.within("19 millis"), Effect.as(HttpServerResponse.empty())))
      )
      const { server, url } = yield* startResilient(router, { ...allOff, timeout: "20 millis" })
      const replies = yield* Effect.forEach(
        Array.from({ length: 400 }, (_, i) => i % 2 === 0 ? "/clamped" : "/early"),
        (path) => Effect.map(get(`${url}${path}`), (reply) => ({ path, reply })),
        { concurrency: 20 }
      )
      const bad = replies.filter(({ reply }) => reply.status !== 503 && reply.status !== 504)
      expect(bad.map(({ path, reply }) => `${path} ${reply.status} ${JSON.stringify(reply.body)}`)).toEqual([])
      for (const { path, reply } of replies) {
        expect(reply.headers.get("content-type")).toMatch(/application\/json/)
        const body = reply.json()
        expect(body.error.status).toBe(reply.status)
        expect(body.error.route).toBe(`GET ${path}`)
        if (path === "/clamped") {
          // clamped to the deadline: always the deadline's own answer
          expect(`${reply.status} ${body.error.code}`).toBe("503 timeout")
        } else {
          // one millisecond before the deadline: either answer, never anything else
          expect(["503 timeout", "504 upstream_timeout"]).toContain(`${reply.status} ${body.error.code}`)
        }
      }
      expect(yield* server.inFlight).toBe(0)
    })))

  it.live("well before the deadline: 504 upstream_timeout JSON, and the route breaker counts it", () =>
    Effect.scoped(Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/upstream",
          Effect.fail(new TimeoutError({ duration: Duration.millis(50), operation: "inventory" }))
        )
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        breaker: { policy: (route) => CircuitBreaker.consecutive({ name: route, threshold: 5, openFor: "1 minute" }) },
        timeout: "5 seconds"
      })
      const url = yield* serve(router, server.middleware)
      const reply = yield* get(`${url}/upstream`)
      expect(reply.status).toBe(504)
      expect(reply.headers.get("content-type")).toMatch(/application\/json/)
      const body = reply.json()
      expect(body.error.code).toBe("upstream_timeout")
      expect(body.error.status).toBe(504)
      expect(body.error.route).toBe("GET /upstream")
      expect(body.error.message).toMatch(/inventory/)
      const breaker = yield* server.breaker("GET /upstream")
      if (breaker._tag === "None") return expect.fail("no breaker")
      const stats = yield* breaker.value.stats
      expect(stats.failures).toBe(1)
      expect(stats.successes).toBe(0)
    })))

  it.live("without the middleware a TimeoutError answers 504 JSON rather than an empty 500", () =>
    Effect.scoped(Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/upstream", Effect.fail(new TimeoutError({ duration: Duration.millis(50), operation: "db" })))
      )
      const url = yield* serve(router)
      const reply = yield* get(`${url}/upstream`)
      expect(reply.status).toBe(504)
      expect(reply.json().error.code).toBe("upstream_timeout")
    })))

  it.live("the handler runs under the request deadline; a handler's own 503 keeps its RateLimit headers", () =>
    Effect.scoped(Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/budget",
          Effect.map(
            Timeout.remaining,
            (left) => HttpServerResponse.text(left._tag === "Some" ? String(Duration.toMillis(left.value)) : "none")
          )
        ),
        HttpRouter.get("/unavailable", HttpServerResponse.text("down", { status: 503 }))
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        timeout: "2 seconds",
        rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 100, burst: 100 }) }
      })
      const url = yield* serve(router, server.middleware)
      const budget = yield* get(`${url}/budget`)
      expect(budget.status).toBe(200)
      const left = Number(budget.body)
      expect(left).toBeGreaterThan(1000)
      expect(left).toBeLessThanOrEqual(2000)
      const down = yield* get(`${url}/unavailable`)
      expect(down.status).toBe(503)
      expect(down.body).toBe("down")
      expect(down.headers.get("ratelimit-limit")).toBe("100")
      // outside the middleware no deadline is left behind
      expect(yield* Timeout.remaining).toEqual(Option.none())
    })))
})
