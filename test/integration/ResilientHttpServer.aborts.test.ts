import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bulkhead from "../../src/Bulkhead.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as CpuUsage from "../../src/CpuUsage.js"
import * as LoadShedder from "../../src/LoadShedder.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { abandon, abortedRequest, portOf } from "./aborts.js"
import { allOff, eventually, ok, startResilient } from "./resilientServer.js"
import { get, serve, serveCounting } from "./serve.js"

describe("ResilientHttpServer under clients that go away (real sockets on 127.0.0.1)", () => {
  it.live(
    "1,000 requests aborted mid-handler, then 100 normal ones: all 200, inFlight back to 0",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const router = HttpRouter.empty.pipe(HttpRouter.get("/slow", Effect.sleep("200 millis").pipe(Effect.as(ok))))
        const server = yield* ResilientHttpServer.make({
          name: "aborts",
          router,
          maxConns: 20,
          breaker: {},
          // a shedder that is never hot: this test is about its in-flight count
          shedding: { signal: LoadShedder.cpu() },
          timeout: "2 seconds"
        }).pipe(Effect.provide(CpuUsage.layerTest(0)))
        const { connections, url } = yield* serveCounting(router, server.middleware)
        const port = portOf(url)
        // waves of 20 (the limit): each aborted after 20 ms, while its handler sleeps
        for (let wave = 0; wave < 50; wave++) {
          yield* Effect.forEach(Array.from({ length: 20 }), () => abandon(port, "/slow", 20), {
            concurrency: "unbounded"
          })
        }
        // the clients are gone once their sockets closed, but a busy server may not have read them
        // all yet: wait until it has seen every close (however long that takes here)
        expect(yield* eventually(connections, 0, 60_000)).toBe(0)
        // a client's FIN reaches the server as a half-close: a handler already running finishes,
        // and its write finds the socket gone
        expect(yield* eventually(server.inFlight, 0)).toBe(0)
        const replies = yield* Effect.forEach(Array.from({ length: 100 }), () => get(`${url}/slow`), {
          concurrency: 10
        })
        expect(replies.filter((r) => r.status !== 200).map((r) => r.body)).toEqual([])
        expect(yield* eventually(server.inFlight, 0)).toBe(0)
        const breaker = yield* server.breaker("GET /slow")
        if (breaker._tag === "None") return expect.fail("no breaker")
        expect(yield* breaker.value.state).toBe("Closed")
        const stats = yield* breaker.value.stats
        expect(stats.failures).toBe(0)
        if (server.shedder._tag === "None") return expect.fail("no shedder")
        expect((yield* server.shedder.value.stats).flying).toBe(0)
      })),
    120_000
  )

  it.live("aborts before the handler starts: raw sockets destroyed as soon as the request is written", () =>
    Effect.scoped(Effect.gen(function*() {
      let ran = 0
      const router = HttpRouter.empty.pipe(HttpRouter.get("/", Effect.sync(() => ran++).pipe(Effect.as(ok))))
      const { server, url } = yield* startResilient(router, { ...allOff, router, maxConns: 5, breaker: {} })
      yield* Effect.forEach(Array.from({ length: 200 }), () => abandon(portOf(url), "/"), { concurrency: 20 })
      if ((yield* eventually(server.inFlight, 0)) !== 0) {
        for (const r of (globalThis as any).__live) {
          const res = r.response
          console.log(
            "LIVE",
            r.route,
            "slot",
            r.slot,
            "permit",
            !!r.permit,
            "ticket",
            !!r.ticket,
            "deadline",
            r.deadlineAt,
            "res",
            res &&
              {
                destroyed: res.destroyed,
                fin: res.writableFinished,
                ended: res.writableEnded,
                closeListeners: res.listenerCount("close"),
                headersSent: res.headersSent
              },
            "fiber",
            r.fiber.unsafePoll(),
            r.fiber._runtimeFlags,
            r.fiber._asyncBlockingOn?.toString?.(),
            String(r.fiber._asyncInterruptor)
          )
        }
      }
      const replies = yield* Effect.forEach(Array.from({ length: 20 }), () => get(url), { concurrency: 5 })
      expect(replies.every((r) => r.status === 200)).toBe(true)
      expect(ran).toBeGreaterThanOrEqual(20)
    })))

  it.live("an aborted half-open probe gives its slot back: the breaker does not stay HalfOpen", () =>
    Effect.scoped(Effect.gen(function*() {
      let mode: "fail" | "hang" | "ok" = "fail"
      const entered = yield* Deferred.make<void>()
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/flaky",
          Effect.suspend(() =>
            mode === "fail"
              ? Effect.succeed(HttpServerResponse.text("down", { status: 500 }))
              : mode === "hang"
              ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never)
              : Effect.succeed(ok)
          )
        )
      )
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        router,
        maxConns: 10,
        breaker: { policy: (route) => CircuitBreaker.consecutive({ name: route, threshold: 1, openFor: "100 millis" }) }
      })
      const url = yield* serve(router, server.middleware)
      expect((yield* get(`${url}/flaky`)).status).toBe(500)
      const breaker = yield* server.breaker("GET /flaky")
      if (breaker._tag === "None") return expect.fail("no breaker")
      // tripped: Open, or already HalfOpen when this process ran more than openFor late
      expect(["Open", "HalfOpen"]).toContain(yield* breaker.value.state)
      yield* Effect.sleep("150 millis")
      mode = "hang"
      const probe = abortedRequest(`${url}/flaky`, { abortWhen: Effect.runPromise(Deferred.await(entered)) })
      expect(yield* Effect.promise(() => probe)).toBe("aborted")
      expect(yield* eventually(server.inFlight, 0)).toBe(0)
      // the probe counted as neither: the next request is the new probe, and it closes the breaker
      mode = "ok"
      expect((yield* get(`${url}/flaky`)).status).toBe(200)
      expect(yield* breaker.value.state).toBe("Closed")
    })))

  it.live("a client that goes away while waiting for a rate-limit turn leaves at once; its handler never runs", () =>
    Effect.scoped(Effect.gen(function*() {
      let ran = 0
      const router = HttpRouter.empty.pipe(HttpRouter.get("/", Effect.sync(() => ran++).pipe(Effect.as(ok))))
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        router,
        maxConns: 10,
        rateLimit: {
          algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }),
          onExceeded: "wait",
          maxWait: "5 seconds"
        }
      })
      const url = yield* serve(router, server.middleware)
      expect((yield* get(url)).status).toBe(200)
      const start = Date.now()
      // the second request reserves the next turn (about 1 s away) and waits for it
      yield* abandon(portOf(url), "/", 100)
      expect(yield* eventually(server.inFlight, 0)).toBe(0)
      expect(Date.now() - start).toBeLessThan(900)
      yield* Effect.sleep("1100 millis")
      expect(ran).toBe(1)
      // its reservation was cancelled: the token that refilled is there for the next request
      if (server.limiter._tag === "None") return expect.fail("no limiter")
      const decision = yield* server.limiter.value.take("127.0.0.1")
      expect(decision.allowed).toBe(true)
    })))

  it.live("a client that goes away while queued in a handler's bulkhead leaves the queue at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 10 })
      const release = yield* Deferred.make<void>()
      const holding = yield* Deferred.make<void>()
      let queuedRan = 0
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/hold",
          bulkhead.protect(Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release))).pipe(
            Effect.as(ok)
          )
        ),
        HttpRouter.get("/queued", bulkhead.protect(Effect.sync(() => queuedRan++)).pipe(Effect.as(ok)))
      )
      const { server, url } = yield* startResilient(router, { ...allOff, router, maxConns: 10 })
      const holder = yield* Effect.fork(get(`${url}/hold`))
      yield* Deferred.await(holding)
      const waiting = abortedRequest(`${url}/queued`, {
        abortWhen: Effect.runPromise(eventually(Effect.map(bulkhead.stats, (s) => s.queued), 1))
      })
      expect(yield* Effect.promise(() => waiting)).toBe("aborted")
      expect(yield* eventually(Effect.map(bulkhead.stats, (s) => s.queued), 0)).toBe(0)
      yield* Deferred.succeed(release, undefined)
      expect((yield* holder).status).toBe(200)
      yield* Effect.sleep("50 millis")
      expect(queuedRan).toBe(0)
      expect(yield* eventually(server.inFlight, 0)).toBe(0)
    })))

  it.live("a client that goes away during a slow response write: accounting is given back", () =>
    Effect.scoped(Effect.gen(function*() {
      const chunks = Stream.repeatEffect(
        Effect.as(Effect.sleep("20 millis"), new TextEncoder().encode("x".repeat(1024)))
      )
      const router = HttpRouter.empty.pipe(HttpRouter.get("/stream", Effect.succeed(HttpServerResponse.stream(chunks))))
      const server = yield* ResilientHttpServer.make({
        ...allOff,
        router,
        maxConns: 3,
        breaker: {},
        timeout: "30 seconds"
      })
      const url = yield* serve(router, server.middleware)
      for (let i = 0; i < 10; i++) {
        expect(yield* Effect.promise(() => abortedRequest(`${url}/stream`, { onFirstChunk: true }))).toBe("aborted")
      }
      expect(yield* eventually(server.inFlight, 0)).toBe(0)
      const breaker = yield* server.breaker("GET /stream")
      if (breaker._tag === "None") return expect.fail("no breaker")
      const stats = yield* breaker.value.stats
      expect(stats.failures).toBe(0)
      expect(yield* breaker.value.state).toBe("Closed")
    })))

  it.live("closing the server with aborted requests in flight finishes within its graceful-shutdown time", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const entered = yield* Deferred.make<void>()
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/hang", Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never))
      )
      const server = yield* ResilientHttpServer.make({ ...allOff, router, maxConns: 10, breaker: {} }).pipe(
        Scope.extend(scope)
      )
      const url = yield* serve(router, server.middleware).pipe(Scope.extend(scope))
      const aborted = yield* Effect.fork(
        Effect.all(Array.from({ length: 5 }, () => abandon(portOf(url), "/hang", 50)), { concurrency: "unbounded" })
      )
      yield* Deferred.await(entered)
      yield* aborted.await
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - start).toBeLessThan(2000)
      expect(yield* eventually(server.inFlight, 0)).toBe(0)
    }))
})
