import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as CpuUsage from "../../src/CpuUsage.js"
import { OverloadedError } from "../../src/Errors.js"
import type * as LoadShedder from "../../src/LoadShedder.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { allOff, expectRejection, ok, startResilient } from "./resilientServer.js"
import { get, serve } from "./serve.js"

describe("ResilientHttpServer (real server on 127.0.0.1)", () => {
  it.live("max connections: the request over the limit gets 503 max_connections", () =>
    Effect.scoped(Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const entered = yield* Ref.make(0)
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/slow",
          Effect.zipRight(Ref.update(entered, (n) => n + 1), Deferred.await(release)).pipe(Effect.as(ok))
        )
      )
      const { server, url } = yield* startResilient(router, { ...allOff, maxConns: 2 })
      const first = yield* Effect.fork(get(`${url}/slow`))
      const second = yield* Effect.fork(get(`${url}/slow`))
      while ((yield* Ref.get(entered)) < 2) yield* Effect.sleep("5 millis")
      expect(yield* server.inFlight).toBe(2)
      const third = yield* get(`${url}/slow`)
      const body = expectRejection(third, 503, "max_connections")
      expect(body.error.route).toBe("GET /slow")
      yield* Deferred.succeed(release, undefined)
      expect((yield* first).status).toBe(200)
      expect((yield* second).status).toBe(200)
      expect(yield* server.inFlight).toBe(0)
      expect((yield* get(`${url}/slow`)).status).toBe(200)
    })))

  it.live(
    "breaker per route: 1000 × 500 → at least 80% rejected with 503; 4xx never opens it",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const failHits = yield* Ref.make(0)
        const router = HttpRouter.empty.pipe(
          HttpRouter.get(
            "/fail",
            Effect.zipRight(Ref.update(failHits, (n) => n + 1), HttpServerResponse.text("boom", { status: 500 }))
          ),
          HttpRouter.get("/bad", HttpServerResponse.text("bad", { status: 400 })),
          HttpRouter.get("/users/:id", ok)
        )
        const server = yield* ResilientHttpServer.make({
          ...allOff,
          breaker: {},
          routes: { "GET /users/:id": {} }
        })
        const url = yield* serve(router, server.middleware)

        let rejected = 0
        for (let i = 0; i < 1000; i++) {
          const reply = yield* get(`${url}/fail`)
          if (reply.status === 503) {
            expectRejection(reply, 503, "circuit_open")
            rejected++
          } else {
            expect(reply.status).toBe(500)
          }
        }
        expect(rejected).toBeGreaterThanOrEqual(800)
        expect(yield* Ref.get(failHits)).toBe(1000 - rejected)

        let badRejected = 0
        for (let i = 0; i < 1000; i++) {
          const reply = yield* get(`${url}/bad`)
          if (reply.status === 503) badRejected++
          else expect(reply.status).toBe(400)
        }
        expect(badRejected).toBe(0)

        // the open breaker of GET /fail does not touch other routes; /users/:id shares one breaker
        for (let i = 0; i < 20; i++) expect((yield* get(`${url}/users/${i}`)).status).toBe(200)
        const failBreaker = yield* server.breaker("GET /fail")
        expect(failBreaker._tag).toBe("Some")
        if (failBreaker._tag === "Some") expect(yield* failBreaker.value.state).not.toBe("Closed")
        expect(server.routeOf({ method: "GET", url: "/users/42?x=1" } as any)).toBe("GET /users/:id")
      })),
    // 2,020 requests one after another: seconds on an idle machine, minutes on a busy one
    300_000
  )

  it.live("load shedding: a shed request gets 503 overloaded; a 503 response is a failed pass", () =>
    Effect.scoped(Effect.gen(function*() {
      const outcomes: Array<string> = []
      let shed = true
      const allow = Effect.suspend(() =>
        shed
          ? Effect.fail(new OverloadedError({ shedder: "test", reason: "cpu" }))
          : Effect.succeed({
            pass: Effect.sync(() => void outcomes.push("pass")),
            fail: Effect.sync(() => void outcomes.push("fail"))
          })
      )
      const shedder = { name: "test", allow, admit: () => allow } as unknown as LoadShedder.LoadShedder
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/ok", ok),
        HttpRouter.get("/unavailable", HttpServerResponse.text("down", { status: 503 })),
        HttpRouter.get("/error", HttpServerResponse.text("err", { status: 500 }))
      )
      const { url } = yield* startResilient(router, { ...allOff, shedding: { shedder } })
      expectRejection(yield* get(`${url}/ok`), 503, "overloaded")
      expect(outcomes).toEqual([])
      shed = false
      expect((yield* get(`${url}/ok`)).status).toBe(200)
      expect((yield* get(`${url}/unavailable`)).status).toBe(503)
      expect((yield* get(`${url}/error`)).status).toBe(500)
      expect(outcomes).toEqual(["pass", "fail", "pass"])
    })))

  it.live("rate limiting: 429 with RateLimit-* and Retry-After headers, per client key", () =>
    Effect.scoped(Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(HttpRouter.get("/api", ok), HttpRouter.get("/free", ok))
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        rateLimit: {
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 3 }),
          key: (request) => request.headers["x-user"] ?? "anonymous"
        },
        routes: { "GET /free": { rateLimit: false } }
      })
      const url = yield* serve(router, server.middleware)
      const alice = { headers: { "x-user": "alice" } }
      for (const remaining of [2, 1, 0]) {
        const reply = yield* get(`${url}/api`, alice)
        expect(reply.status).toBe(200)
        expect(reply.headers.get("ratelimit-limit")).toBe("3")
        expect(reply.headers.get("ratelimit-remaining")).toBe(String(remaining))
        expect(Number(reply.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(0)
      }
      const limited = yield* get(`${url}/api`, alice)
      const body = expectRejection(limited, 429, "rate_limited")
      expect(limited.headers.get("ratelimit-limit")).toBe("3")
      expect(limited.headers.get("ratelimit-remaining")).toBe("0")
      const retryAfter = Number(limited.headers.get("retry-after"))
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(2)
      expect(body.error.retryAfterSeconds).toBe(retryAfter)
      expect(Number(limited.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1)
      // another key has its own bucket; a route with rate limiting off is never limited
      expect((yield* get(`${url}/api`, { headers: { "x-user": "bob" } })).status).toBe(200)
      for (let i = 0; i < 5; i++) {
        const free = yield* get(`${url}/free`, alice)
        expect(free.status).toBe(200)
        expect(free.headers.get("ratelimit-limit")).toBeNull()
      }
    })))

  it.live("rate limiting keys by client IP by default", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }) }
      })
      const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.get("/", ok)), server.middleware)
      expect((yield* get(url)).status).toBe(200)
      // a different header does not make a different client
      expect((yield* get(url, { headers: { "x-user": "other" } })).status).toBe(429)
    })))

  it.live("timeout: 503 timeout with a clear body, and the handler is interrupted", () =>
    Effect.scoped(Effect.gen(function*() {
      const interrupted = yield* Deferred.make<void>()
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/slow",
          Effect.sleep("10 seconds").pipe(
            Effect.as(ok),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
        ),
        HttpRouter.get("/fast", ok),
        HttpRouter.get("/unbounded", Effect.sleep("300 millis").pipe(Effect.as(ok)))
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        timeout: "150 millis",
        routes: { "GET /unbounded": { timeout: false } }
      })
      const url = yield* serve(router, server.middleware)
      const start = Date.now()
      const reply = yield* get(`${url}/slow`)
      const body = expectRejection(reply, 503, "timeout")
      expect(body.error.message).toMatch(/150/)
      expect(Date.now() - start).toBeLessThan(5000)
      yield* Deferred.await(interrupted).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "not interrupted" })
      )
      expect((yield* get(`${url}/fast`)).status).toBe(200)
      expect((yield* get(`${url}/unbounded`)).status).toBe(200)
    })))

  it.live("a client that went away is counted as neither success nor failure", () =>
    Effect.scoped(Effect.gen(function*() {
      const outcomes: Array<string> = []
      const entered = yield* Deferred.make<void>()
      const allow = Effect.succeed({
        pass: Effect.sync(() => void outcomes.push("pass")),
        fail: Effect.sync(() => void outcomes.push("fail"))
      })
      const shedder = { name: "test", allow, admit: () => allow } as unknown as LoadShedder.LoadShedder
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/hang", Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never))
      )
      const { server, url } = yield* startResilient(router, { ...allOff, maxConns: 10, shedding: { shedder } })
      const controller = new AbortController()
      const pending = fetch(`${url}/hang`, { signal: controller.signal }).catch(() => "aborted")
      yield* Deferred.await(entered)
      controller.abort()
      expect(yield* Effect.promise(() => pending)).toBe("aborted")
      while ((yield* server.inFlight) > 0) yield* Effect.sleep("5 millis")
      // the shedder ticket is released without recording a pass (fail records nothing)
      expect(outcomes).toEqual(["fail"])
    })))

  it.live("the route breaker counts a timeout as a failure and a client that went away as nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/slow", Effect.sleep("10 seconds").pipe(Effect.as(ok))),
        HttpRouter.get("/hang", Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never))
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        breaker: { policy: (route) => CircuitBreaker.consecutive({ name: route, threshold: 5, openFor: "1 minute" }) },
        // 1 s: a timer late by a quarter of it would be the process's lag, which is not counted
        timeout: "1 second",
        routes: { "GET /hang": { timeout: false } }
      })
      const url = yield* serve(router, server.middleware)
      expectRejection(yield* get(`${url}/slow`), 503, "timeout")
      const slow = yield* server.breaker("GET /slow")
      if (slow._tag === "None") return expect.fail("no breaker")
      const slowStats = yield* slow.value.stats
      expect(slowStats.failures).toBe(1)
      expect(slowStats.successes).toBe(0)

      const controller = new AbortController()
      const pending = fetch(`${url}/hang`, { signal: controller.signal }).catch(() => "aborted")
      yield* Deferred.await(entered)
      controller.abort()
      expect(yield* Effect.promise(() => pending)).toBe("aborted")
      const hang = yield* server.breaker("GET /hang")
      if (hang._tag === "None") return expect.fail("no breaker")
      let stats = yield* hang.value.stats
      for (let i = 0; i < 50 && stats.requests === 0; i++) {
        yield* Effect.sleep("10 millis")
        stats = yield* hang.value.stats
      }
      expect(stats.failures).toBe(0)
      expect(stats.successes).toBe(0)
      expect(yield* hang.value.state).toBe("Closed")
    })))

  it.live("a deadline timer fired late by a blocked event loop answers 503 timeout but is not counted against the route", () =>
    Effect.scoped(Effect.gen(function*() {
      let entered = yield* Deferred.make<void>()
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/slow",
          Effect.suspend(() => Deferred.succeed(entered, undefined)).pipe(
            Effect.zipRight(Effect.sleep("10 seconds")),
            Effect.as(ok)
          )
        )
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        breaker: { policy: (route) => CircuitBreaker.consecutive({ name: route, threshold: 5, openFor: "1 minute" }) },
        timeout: "100 millis"
      })
      const url = yield* serve(router, server.middleware)
      for (let i = 0; i < 3; i++) {
        entered = yield* Deferred.make<void>()
        const reply = yield* Effect.fork(get(`${url}/slow`))
        yield* Deferred.await(entered)
        // the whole process is busy far past the 100 ms deadline: its timer can only fire late
        const until = performance.now() + 400
        while (performance.now() < until) {
          // busy
        }
        expectRejection(yield* Fiber.join(reply), 503, "timeout")
      }
      const slow = yield* server.breaker("GET /slow")
      if (slow._tag === "None") return expect.fail("no breaker")
      const stats = yield* slow.value.stats
      expect(stats.failures).toBe(0)
      expect(stats.state).toBe("Closed")
    })))

  it.live("load shedding with the real LoadShedder: an overloaded CPU sheds the next wave with 503", () =>
    Effect.scoped(Effect.gen(function*() {
      // The first wave's requests wait until all 30 are in: with none finished, the average in
      // flight is still 0 and go-zero's guard admits them all, however slowly a busy machine
      // delivers them. The second wave's requests take 2 s, as a stuck service's would: none
      // finishes while the wave arrives, so what is shed does not depend on how fast it arrives.
      const firstWave = 30
      const allIn = yield* Deferred.make<void>()
      let arrived = 0
      const work = Effect.suspend(() => {
        arrived++
        if (arrived > firstWave) return Effect.sleep("2 seconds")
        return arrived === firstWave ? Deferred.succeed(allIn, undefined) : Deferred.await(allIn)
      })
      const router = HttpRouter.empty.pipe(HttpRouter.get("/work", work.pipe(Effect.as(ok))))
      const server = yield* ResilientHttpServer.make({ ...allOff, shedding: { cpuThreshold: 900 } }).pipe(
        Effect.provide(CpuUsage.layerTest(1000))
      )
      expect(server.shedder._tag).toBe("Some")
      const url = yield* serve(router, server.middleware)
      const wave = Effect.forEach(Array.from({ length: firstWave }), () => get(`${url}/work`), {
        concurrency: "unbounded"
      })
      const first = yield* wave
      expect(first.map((r) => r.status)).toEqual(Array(firstWave).fill(200))
      const second = yield* wave
      const shed = second.filter((r) => r.status === 503)
      expect(shed.length).toBeGreaterThan(10)
      for (const r of shed) expectRejection(r, 503, "overloaded")
    })))
})
