import * as HttpRouter from "@effect/platform/HttpRouter"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Config from "../../src/Config.js"
import {
  BulkheadFullError,
  CircuitOpenError,
  InvalidOptionsError,
  OverloadedError,
  RateLimitedError,
  TimeoutError
} from "../../src/Errors.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RateLimiterStore from "../../src/RateLimiterStore.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import * as Timeout from "../../src/Timeout.js"
import { allOff, ok, startResilient } from "./resilientServer.js"
import { get, serve } from "./serve.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/api/users/me", ok),
  HttpRouter.get("/api/users/:id", ok),
  HttpRouter.get("/health", ok)
)

const invalid = (options: unknown) =>
  Effect.flip(ResilientHttpServer.make(options as ResilientHttpServer.Options)).pipe(Effect.scoped)

describe("ResilientHttpServer: route keys", () => {
  it.live("with the router, requests are keyed by the route they reach: one breaker per route", () =>
    Effect.scoped(Effect.gen(function*() {
      const { server, url } = yield* startResilient(router, { ...allOff, router, breaker: {} })
      for (let i = 0; i < 20; i++) expect((yield* get(`${url}/api/users/${i}?q=${i}`)).status).toBe(200)
      expect((yield* get(`${url}/api/users/me`)).status).toBe(200)
      expect((yield* get(`${url}/nowhere/${1}`)).status).toBe(404)
      expect((yield* get(`${url}/nowhere/${2}`)).status).toBe(404)
      if (server.breakers._tag === "None") return expect.fail("no registry")
      const names = [...(yield* server.breakers.value.names)].sort()
      expect(names).toEqual(["* (unmatched)", "GET /api/users/:id", "GET /api/users/me"])
      expect(server.routeOf({ method: "HEAD", url: "/health" } as any)).toBe("GET /health")
    })))

  it.live("a server built from the go-zero Config with the router: one breaker per route", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromJson({ Name: "user-api", Mode: "pro", Middlewares: { Shedding: false } })
      const layer = Config.layerConfig(undefined, { router }).pipe(Layer.provide(Layer.setConfigProvider(provider)))
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* ResilientHttpServer.Server
        const url = yield* serve(router, server.middleware)
        for (let i = 1; i <= 5; i++) expect((yield* get(`${url}/api/users/${i}`)).status).toBe(200)
        if (server.breakers._tag === "None") return expect.fail("no registry")
        expect(yield* server.breakers.value.names).toEqual(["GET /api/users/:id"])
      })).pipe(Effect.provide(layer))
    }))
})

describe("ResilientHttpServer: options", () => {
  it.effect("unknown keys are an InvalidOptionsError naming them, at every level", () =>
    Effect.gen(function*() {
      const top = yield* invalid({ maxConnections: 5 })
      expect(top).toBeInstanceOf(InvalidOptionsError)
      expect(top.message).toMatch(/maxConnections/)
      const route = yield* invalid({ routes: { "GET /x": { timout: "1 second" } } })
      expect(route.message).toMatch(/timout/)
      const breaker = yield* invalid({ breaker: { isFailed: () => true } })
      expect(breaker.option).toMatch(/isFailed/)
      const shedding = yield* invalid({ shedding: { treshold: 1 } })
      expect(shedding.option).toMatch(/treshold/)
    }))

  it.effect("bad values are named: a bad breaker policy fails at construction, not as a 500 per request", () =>
    Effect.gen(function*() {
      expect((yield* invalid({ maxConns: 0 })).option).toBe("maxConns")
      expect((yield* invalid({ timeout: "-1 seconds" })).option).toBe("timeout")
      expect((yield* invalid({ routes: { "users": {} } })).option).toBe("routes.users")
      const policy = yield* invalid({
        breaker: { policy: (route: string) => CircuitBreaker.consecutive({ name: route, threshold: -5 }) }
      })
      expect(policy.option).toMatch(/threshold/)
      const unknownPolicyKey = yield* invalid({
        breaker: { policy: (route: string) => CircuitBreaker.consecutive({ name: route, failureThreshold: 5 } as any) }
      })
      expect(unknownPolicyKey.option).toMatch(/failureThreshold/)
      expect((yield* invalid({ rateLimit: { onExceeded: "queue" } })).option).toMatch(/onExceeded/)
      expect((yield* invalid({ shedding: { priorityHeader: "bad header" } })).option).toMatch(/priorityHeader/)
      expect((yield* invalid({ routes: { "GET /x": { priority: "vip" } } })).option).toMatch(/priority/)
    }))
})

describe("ResilientHttpServer: several limits per route", () => {
  it.live("a request is admitted only if every limit admits it, and a refused one takes from none", () =>
    Effect.scoped(Effect.gen(function*() {
      const store = yield* Layer.build(RateLimiterStore.layerMemory())
      const make = (name: string, limit: number, window: Duration.DurationInput) =>
        RateLimiter.make({ name, algorithm: RateLimiter.fixedWindow({ limit, window }) }).pipe(Effect.provide(store))
      const minute = yield* make("minute", 2, "1 minute")
      const hour = yield* make("hour", 10, "1 hour")
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        router,
        routes: {
          "GET /api/users/:id": { rateLimit: { limiters: [minute, hour], key: () => "client" } },
          "GET /health": {
            rateLimit: {
              algorithm: [
                RateLimiter.gcra({ limit: 1, period: "1 hour" }),
                RateLimiter.tokenBucket({ rate: 1, burst: 5 })
              ],
              key: () => "client"
            }
          }
        }
      })
      const url = yield* serve(router, server.middleware)
      expect((yield* get(`${url}/api/users/1`)).status).toBe(200)
      expect((yield* get(`${url}/api/users/2`)).status).toBe(200)
      const refused = yield* get(`${url}/api/users/3`)
      expect(refused.status).toBe(429)
      expect(refused.json()).toMatchObject({ error: { code: "rate_limited", route: "GET /api/users/:id" } })
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(50)
      // the hour was charged for the two admitted requests only
      expect((yield* hour.take("client", 0)).remaining).toBe(8)
      expect((yield* get(`${url}/health`)).status).toBe(200)
      expect((yield* get(`${url}/health`)).status).toBe(429)
      const waiting = yield* invalid({
        ...allOff,
        rateLimit: { algorithm: [RateLimiter.gcra({ limit: 1, period: "1 second" })], onExceeded: "wait" }
      })
      expect(waiting.option).toMatch(/onExceeded/)
    })))
})

describe("ResilientHttpServer: rejections escaping a handler", () => {
  it.live("answer their status with the JSON rejection body and headers, never an empty 500", () =>
    Effect.scoped(Effect.gen(function*() {
      const failing = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/limited",
          Effect.fail(
            new RateLimitedError({ limiter: "db", key: "k", limit: 5, remaining: 0, retryAfter: Duration.seconds(2) })
          )
        ),
        HttpRouter.get("/open", Effect.fail(new CircuitOpenError({ breaker: "db", state: "Open" }))),
        HttpRouter.get(
          "/full",
          Effect.fail(new BulkheadFullError({ bulkhead: "db", reason: "full", maxConcurrent: 1, maxQueue: 0 }))
        ),
        HttpRouter.get("/overloaded", Effect.fail(new OverloadedError({ shedder: "db", reason: "concurrency" }))),
        HttpRouter.get("/timeout", Effect.fail(new TimeoutError({ duration: Duration.millis(5), operation: "db" })))
      )
      const { url } = yield* startResilient(failing, { ...allOff, router: failing })
      const expected: Record<string, [number, string]> = {
        "/limited": [429, "rate_limited"],
        "/open": [503, "circuit_open"],
        "/full": [503, "bulkhead_full"],
        "/overloaded": [503, "overloaded"],
        "/timeout": [504, "upstream_timeout"]
      }
      for (const [path, [status, code]] of Object.entries(expected)) {
        const reply = yield* get(`${url}${path}`)
        expect(reply.status).toBe(status)
        expect(reply.headers.get("content-type")).toMatch(/application\/json/)
        const body = reply.json()
        expect(body.error).toMatchObject({ code, status, route: `GET ${path}` })
      }
      const limited = yield* get(`${url}/limited`)
      expect(limited.headers.get("retry-after")).toBe("2")
      expect(limited.headers.get("ratelimit-limit")).toBe("5")
      expect(limited.headers.get("ratelimit-remaining")).toBe("0")
      // without the middleware too
      const bare = yield* serve(failing)
      const reply = yield* get(`${bare}/open`)
      expect(reply.status).toBe(503)
      expect(reply.json().error.code).toBe("circuit_open")
    })))
})

describe("ResilientHttpServer: the caller's time budget", () => {
  it.live("clamps the deadline to x-request-timeout or grpc-timeout; no budget left → 504 without the handler", () =>
    Effect.scoped(Effect.gen(function*() {
      let ran = 0
      const seen: Array<number> = []
      const app = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/",
          Effect.gen(function*() {
            ran++
            const left = yield* Timeout.remaining
            if (left._tag === "Some") seen.push(Duration.toMillis(left.value))
            return ok
          })
        ),
        HttpRouter.get("/slow", Effect.sleep("2 seconds").pipe(Effect.as(ok)))
      )
      const { url } = yield* startResilient(app, { ...allOff, router: app, timeout: "10 seconds" })
      expect((yield* get(url, { headers: { "x-request-timeout": "250" } })).status).toBe(200)
      expect((yield* get(url, { headers: { "grpc-timeout": "2S" } })).status).toBe(200)
      expect((yield* get(url)).status).toBe(200)
      expect(seen[0]).toBeLessThanOrEqual(250)
      expect(seen[0]).toBeGreaterThan(100)
      expect(seen[1]).toBeLessThanOrEqual(2000)
      expect(seen[1]).toBeGreaterThan(1000)
      expect(seen[2]).toBeGreaterThan(5000)
      const spent = yield* get(url, { headers: { "x-request-timeout": "0" } })
      expect(spent.status).toBe(504)
      expect(spent.json().error.code).toBe("deadline_exceeded")
      expect(ran).toBe(3)
      const start = Date.now()
      const slow = yield* get(`${url}/slow`, { headers: { "grpc-timeout": "200m" } })
      expect(slow.status).toBe(503)
      expect(slow.json().error.code).toBe("timeout")
      expect(Date.now() - start).toBeLessThan(1500)
      // a value that is neither form is ignored
      expect((yield* get(url, { headers: { "x-request-timeout": "soon" } })).status).toBe(200)
    })))

  it.live("the budget header's name is configurable and can be switched off", () =>
    Effect.scoped(Effect.gen(function*() {
      const app = HttpRouter.empty.pipe(HttpRouter.get("/", ok))
      const named = yield* ResilientHttpServer.make({ ...allOff, router: app, budgetHeader: "x-budget" })
      const url = yield* serve(app, named.middleware)
      expect((yield* get(url, { headers: { "x-budget": "0" } })).status).toBe(504)
      expect((yield* get(url, { headers: { "x-request-timeout": "0" } })).status).toBe(200)
      const off = yield* ResilientHttpServer.make({ ...allOff, router: app, budgetHeader: false })
      const url2 = yield* serve(app, off.middleware)
      expect((yield* get(url2, { headers: { "x-request-timeout": "0" } })).status).toBe(200)
    })))
})
