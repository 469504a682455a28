/**
 * Chaos over real HTTP on 127.0.0.1: the server middleware and the client transform.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Chaos from "../../src/Chaos.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import * as Retry from "../../src/Retry.js"
import { failureOf } from "../support.js"
import { get, serve } from "./serve.js"

/** A handler that counts the requests it really served. */
const countingApp = () => {
  const served = { count: 0 }
  const app = Effect.sync(() => {
    served.count++
    return HttpServerResponse.text("ok")
  })
  return { served, app }
}

describe("Chaos server middleware (real server on 127.0.0.1)", () => {
  it.scopedLive("injected requests get the status, a JSON body and Retry-After; the handler never runs", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "http-status", enabled: true, rate: 1 })
      const { app, served } = countingApp()
      const url = yield* serve(app, Chaos.middleware(Chaos.httpStatus(chaos, 503, { retryAfter: "1500 millis" })))
      const injected = yield* get(`${url}/users/1`)
      expect(injected.status).toBe(503)
      expect(injected.headers.get("retry-after")).toBe("2")
      expect(injected.json()).toEqual({ error: { code: "chaos_injected", status: 503, message: "injected by chaos" } })
      expect(served.count).toBe(0)
      yield* chaos.disable
      const real = yield* get(`${url}/users/1`)
      expect(real.status).toBe(200)
      expect(real.body).toBe("ok")
      expect(served.count).toBe(1)
    }))

  it.scopedLive("the share of injected requests follows the rate with a seeded Random", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "http-rate", enabled: true, rate: 0.25 })
      const { app, served } = countingApp()
      const url = yield* serve(app, Chaos.middleware(Chaos.httpStatus(chaos, 503))).pipe(
        Effect.withRandom(Random.make("http-rate"))
      )
      let unavailable = 0
      for (let i = 0; i < 200; i++) if ((yield* get(url)).status === 503) unavailable++
      // σ = √(200 · 0.25 · 0.75) ≈ 6.1
      expect(Math.abs(unavailable - 50)).toBeLessThanOrEqual(25)
      expect(served.count).toBe(200 - unavailable)
      expect((yield* chaos.status).injections).toBe(unavailable)
    }))

  it.scopedLive("latency delays the answer by at least the injected delay", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "http-latency", enabled: true, rate: 1 })
      const { app } = countingApp()
      const url = yield* serve(app, Chaos.middleware(Chaos.latency(chaos, "300 millis")))
      const started = Date.now()
      const reply = yield* get(url)
      expect(reply.status).toBe(200)
      expect(Date.now() - started).toBeGreaterThanOrEqual(295)
    }))

  it.scopedLive("a client that hangs up during injected latency interrupts the wait; the handler never runs", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "http-hangup", enabled: true, rate: 1 })
      const { app, served } = countingApp()
      const waiting = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const delay = Effect.as(Deferred.succeed(waiting, undefined), Duration.hours(1))
      const observe: HttpMiddleware.HttpMiddleware = (inner) =>
        Effect.onInterrupt(
          Chaos.middleware(Chaos.latency(chaos, delay))(inner),
          () => Deferred.succeed(interrupted, undefined)
        )
      const url = yield* serve(app, observe)
      const controller = new AbortController()
      const request = fetch(url, { signal: controller.signal }).catch((error: unknown) => error)
      yield* Deferred.await(waiting)
      controller.abort()
      yield* Deferred.await(interrupted)
      expect(yield* Effect.promise(() => request)).toBeInstanceOf(Error)
      expect(served.count).toBe(0)
    }))
})

describe("Chaos client transform (real server on 127.0.0.1)", () => {
  const setup = Effect.gen(function*() {
    const { app, served } = countingApp()
    const url = yield* serve(app)
    const client = yield* HttpClient.HttpClient
    return { url, served, client }
  })

  it.scopedLive("clientStatus answers injected requests without sending them", () =>
    Effect.gen(function*() {
      const { client, served, url } = yield* setup
      const chaos = yield* Chaos.make({ name: "client-status", enabled: true, rate: 1 })
      const chaotic = client.pipe(Chaos.client(Chaos.clientStatus(chaos, 429, { retryAfter: "3 seconds" })))
      const response = yield* chaotic.get(`${url}/items`)
      expect(response.status).toBe(429)
      expect(response.headers["retry-after"]).toBe("3")
      expect(yield* response.json).toEqual({
        error: { code: "chaos_injected", status: 429, message: "injected by chaos" }
      })
      expect(served.count).toBe(0)
      yield* chaos.disable
      expect((yield* chaotic.get(`${url}/items`)).status).toBe(200)
      expect(served.count).toBe(1)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.scopedLive("clientFault fails like a reset connection, which retries treat as transient", () =>
    Effect.gen(function*() {
      const { client, served, url } = yield* setup
      const chaos = yield* Chaos.make({ name: "client-fault", enabled: true, rate: 1 })
      const chaotic = client.pipe(Chaos.client(Chaos.clientFault(chaos)))
      const error = failureOf(yield* Effect.exit(chaotic.get(url))) as HttpClientError.HttpClientError
      expect(error).toMatchObject({ _tag: "RequestError", reason: "Transport" })
      expect(Retry.isTransient(error)).toBe(true)
      expect(served.count).toBe(0)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.scopedLive("behind ResilientHttpClient, injected faults open the host's breaker", () =>
    Effect.gen(function*() {
      const { client, served, url } = yield* setup
      const chaos = yield* Chaos.make({ name: "client-breaker", enabled: true, rate: 1 })
      const resilient = yield* ResilientHttpClient.wrap(client.pipe(Chaos.client(Chaos.clientFault(chaos))), {
        retry: false,
        breaker: { policy: (name) => CircuitBreaker.consecutive({ name, threshold: 3, openFor: "1 minute" }) }
      })
      for (let i = 0; i < 3; i++) {
        expect(failureOf(yield* Effect.exit(resilient.get(url)))).toMatchObject({ _tag: "RequestError" })
      }
      expect(failureOf(yield* Effect.exit(resilient.get(url)))).toMatchObject({ _tag: "CircuitOpenError" })
      expect(served.count).toBe(0)
      expect((yield* chaos.status).injections).toBe(3)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
})
