import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { get, serve } from "./serve.js"

describe("Health", () => {
  it.live("reports healthy, unhealthy and circuit_open checks and serves them on /health", () =>
    Effect.scoped(Effect.gen(function*() {
      let dbUp = true
      let calls = 0
      const health = yield* Health.make({
        checks: {
          cache: Effect.void,
          database: {
            check: Effect.suspend(() => {
              calls++
              return dbUp ? Effect.void : Effect.fail(new Error("connection refused"))
            }),
            policy: CircuitBreaker.consecutive({ name: "health database", threshold: 2, openFor: "1 minute" })
          }
        }
      })
      const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.get("/health", health.httpApp)))

      const healthy = yield* get(`${url}/health`)
      expect(healthy.status).toBe(200)
      expect(healthy.json().status).toBe("healthy")
      expect(healthy.json().checks.database.status).toBe("healthy")

      dbUp = false
      const down = yield* health.check
      expect(down.status).toBe("unhealthy")
      expect(down.checks.database.status).toBe("unhealthy")
      expect(down.checks.database.error).toMatch(/connection refused/)
      expect(down.checks.cache.status).toBe("healthy")
      yield* health.check

      const open = yield* get(`${url}/health`)
      expect(open.status).toBe(503)
      const report = open.json()
      expect(report.status).toBe("unhealthy")
      expect(report.checks.database.status).toBe("circuit_open")
      expect(report.breakers["health database"]).toBe("Open")
      // an open breaker stops the probe from reaching the dependency
      expect(calls).toBe(3)
    })))

  it.live("reports the state of registered breakers, bulkheads and limiters", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "payments", threshold: 1, openFor: "1 minute" })
      )
      const health = yield* Health.make()
      yield* health.registerBreaker(downstream)
      yield* health.registerBulkhead({ name: "db", stats: Effect.succeed({ active: 2, queued: 0 }) })
      yield* health.registerLimiter({ name: "api", stats: Effect.succeed({ limit: 100 }) })
      expect((yield* health.check).status).toBe("healthy")
      yield* downstream.isolate
      const report = yield* health.check
      expect(report.status).toBe("degraded")
      expect(report.breakers.payments).toBe("Isolated")
      expect(report.bulkheads.db).toEqual({ active: 2, queued: 0 })
      expect(report.limiters.api).toEqual({ limit: 100 })
      const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.get("/health", health.httpApp)))
      const reply = yield* get(`${url}/health`)
      expect(reply.status).toBe(200)
      expect(reply.json().breakers.payments).toBe("Isolated")
    })))

  it.effect("a check that times out is unhealthy", () =>
    Effect.scoped(Effect.gen(function*() {
      const health = yield* Health.make({ checks: { slow: { check: Effect.never, timeout: "50 millis" } } })
      const fiber = yield* Effect.fork(health.check)
      yield* TestClock.adjust("100 millis")
      const report = yield* fiber.await.pipe(Effect.flatten)
      expect(report.checks.slow.status).toBe("unhealthy")
    })))

  it.effect("a bad timeout fails naming the option", () =>
    Effect.scoped(Effect.gen(function*() {
      const error = yield* Effect.flip(Health.make({ timeout: -5 }))
      expect(error._tag).toBe("InvalidOptionsError")
      expect(error.option).toBe("timeout")
    })))

  it.live("the /health route reports the middleware's open route breaker", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ResilientHttpServer.make({
        maxConns: false,
        shedding: false,
        timeout: false,
        breaker: { policy: (route) => CircuitBreaker.consecutive({ name: route, threshold: 3, openFor: "1 minute" }) }
      })
      const health = yield* Health.make()
      if (server.breakers._tag === "Some") yield* health.registerRegistry(server.breakers.value)
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/fail", HttpServerResponse.text("boom", { status: 500 })),
        HttpRouter.get("/health", health.httpApp)
      )
      const url = yield* serve(router, server.middleware)
      for (let i = 0; i < 3; i++) expect((yield* get(`${url}/fail`)).status).toBe(500)
      expect((yield* get(`${url}/fail`)).status).toBe(503)
      const reply = yield* get(`${url}/health`)
      expect(reply.status).toBe(200)
      const report = reply.json()
      expect(report.status).toBe("degraded")
      expect(report.breakers["GET /fail"]).toBe("Open")
      expect(report.breakers["GET /health"]).toBe("Closed")
    })))
})
