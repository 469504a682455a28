import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import * as Timeout from "../../src/Timeout.js"
import { serve } from "./serve.js"

/** A downstream that counts hits per path and answers with the status in the path. */
const flaky = Effect.gen(function*() {
  const hits = new Map<string, Array<number>>()
  const record = (key: string) => {
    const list = hits.get(key) ?? []
    list.push(Date.now())
    hits.set(key, list)
  }
  const router = HttpRouter.empty.pipe(
    HttpRouter.all(
      "/status/:code",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const { code } = yield* HttpRouter.params
        record(`${request.method} /status/${code}`)
        const headers: Record<string, string> = {}
        const retryAfter = new URL(request.url, "http://x").searchParams.get("retryAfter")
        if (retryAfter !== null) headers["retry-after"] = retryAfter
        return HttpServerResponse.text(`status ${code}`, { status: Number(code), headers })
      })
    ),
    HttpRouter.get(
      "/reset",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        record("GET /reset")
        ;(request.source as { socket: { destroy: () => void } }).socket.destroy()
        return yield* Effect.never
      })
    ),
    HttpRouter.get(
      "/slow",
      Effect.sync(() => record("GET /slow")).pipe(
        Effect.zipRight(Effect.sleep("2 seconds")),
        Effect.as(HttpServerResponse.text("late"))
      )
    )
  )
  const url = yield* serve(router)
  return { url, hits: (key: string) => hits.get(key)?.length ?? 0, times: (key: string) => hits.get(key) ?? [] }
})

const fastRetry = { times: 3, schedule: Schedule.spaced("10 millis") } as const

/** The undici client lives as long as the test's scope. */
const withUndici = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Layer.build(NodeHttpClient.layerUndici), (ctx) => Effect.provide(effect, ctx))

const makeClient = (options: ResilientHttpClient.Options) =>
  withUndici(ResilientHttpClient.make({ breaker: false, ...options }))

describe("ResilientHttpClient (real server on 127.0.0.1)", () => {
  it.live("retries idempotent requests on 5xx, then returns the last response", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ retry: fastRetry })
      const response = yield* client.get(`${downstream.url}/status/503`)
      expect(response.status).toBe(503)
      expect(downstream.hits("GET /status/503")).toBe(4)
      expect((yield* client.get(`${downstream.url}/status/200`)).status).toBe(200)
      expect(downstream.hits("GET /status/200")).toBe(1)
    })))

  it.live("never retries a 4xx, nor a non-idempotent request", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ retry: fastRetry })
      expect((yield* client.get(`${downstream.url}/status/404`)).status).toBe(404)
      expect(downstream.hits("GET /status/404")).toBe(1)
      expect((yield* client.get(`${downstream.url}/status/400`)).status).toBe(400)
      expect(downstream.hits("GET /status/400")).toBe(1)
      expect((yield* client.post(`${downstream.url}/status/500`)).status).toBe(500)
      expect(downstream.hits("POST /status/500")).toBe(1)
      // an Idempotency-Key makes a POST safe to repeat
      const keyed = HttpClientRequest.post(`${downstream.url}/status/502`).pipe(
        HttpClientRequest.setHeader("idempotency-key", "k1")
      )
      expect((yield* client.execute(keyed)).status).toBe(502)
      expect(downstream.hits("POST /status/502")).toBe(4)
    })))

  it.live("retries network errors and 429, honouring Retry-After", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ retry: { times: 1, schedule: Schedule.spaced("10 millis") } })
      const failed = yield* Effect.either(client.get(`${downstream.url}/reset`))
      expect(failed._tag).toBe("Left")
      expect(downstream.hits("GET /reset")).toBe(2)

      const limited = yield* client.get(`${downstream.url}/status/429?retryAfter=1`)
      expect(limited.status).toBe(429)
      const [first, second] = downstream.times("GET /status/429")
      expect(downstream.hits("GET /status/429")).toBe(2)
      expect(second - first).toBeGreaterThanOrEqual(900)
    })))

  it.live("a Retry-After beyond the caller's deadline is not waited for", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ retry: fastRetry })
      const started = Date.now()
      const response = yield* client.get(`${downstream.url}/status/429?retryAfter=30`).pipe(
        Timeout.deadline("2 seconds")
      )
      expect(response.status).toBe(429)
      expect(downstream.hits("GET /status/429")).toBe(1)
      expect(Date.now() - started).toBeLessThan(1500)
    })))

  it.live("per-attempt timeout fails with TimeoutError and interrupts the call", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({
        timeout: "100 millis",
        retry: { times: 1, schedule: Schedule.spaced("10 millis") }
      })
      const result = yield* Effect.either(client.get(`${downstream.url}/slow`))
      expect(result._tag).toBe("Left")
      if (result._tag === "Left") expect(result.left._tag).toBe("TimeoutError")
      expect(downstream.hits("GET /slow")).toBe(2)
    })))

  it.live("the per-attempt timeout is clamped to the caller's deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ timeout: "10 seconds", retry: false })
      const started = Date.now()
      const result = yield* Effect.either(client.get(`${downstream.url}/slow`).pipe(Timeout.deadline("200 millis")))
      const elapsed = Date.now() - started
      expect(result._tag).toBe("Left")
      if (result._tag === "Left") expect(result.left._tag).toBe("TimeoutError")
      expect(elapsed).toBeGreaterThanOrEqual(150)
      expect(elapsed).toBeLessThan(1500)
    })))

  it.live("no retry once the caller's deadline is spent, and the host's breaker counts no failure for it", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 100, openFor: "1 minute" })
      })
      const client = yield* ResilientHttpClient.make({
        breaker: { registry },
        timeout: "10 seconds",
        retry: fastRetry
      }).pipe(withUndici)
      // a budget that only clamps the per-try timeout (no outer timer interrupts the call): a second,
      // room for the request to reach a busy server, and still half of what /slow takes
      const result = yield* Effect.either(
        client.get(`${downstream.url}/slow`).pipe(Effect.locally(Timeout.currentDeadline, Date.now() + 1000))
      )
      expect(result._tag).toBe("Left")
      if (result._tag === "Left") expect(result.left._tag).toBe("TimeoutError")
      expect(downstream.hits("GET /slow")).toBe(1)
      const names = yield* registry.names
      expect(names.length).toBe(1)
      // the timeout was cut short by the caller's own deadline: self-inflicted, not the host's fault
      const stats = yield* (yield* registry.get(names[0])).stats
      expect(stats.failures).toBe(0)
      expect(stats.requests).toBe(0)
    })))

  it.live("stops calling once its breaker for the host opens, and never retries an open breaker", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* ResilientHttpClient.make({
        breaker: { policy: (name) => CircuitBreaker.consecutive({ name, threshold: 3, openFor: "1 minute" }) },
        retry: fastRetry
      }).pipe(withUndici)
      // one logical call: 3 failing attempts trip the breaker, the 4th attempt is rejected locally
      const first = yield* Effect.either(client.get(`${downstream.url}/status/500`))
      expect(downstream.hits("GET /status/500")).toBe(3)
      expect(first._tag).toBe("Left")
      if (first._tag === "Left") expect(first.left._tag).toBe("CircuitOpenError")
      for (let i = 0; i < 5; i++) {
        const again = yield* Effect.either(client.get(`${downstream.url}/status/200`))
        expect(again._tag).toBe("Left")
      }
      expect(downstream.hits("GET /status/500")).toBe(3)
      expect(downstream.hits("GET /status/200")).toBe(0)
    })))

  it.live("bulkhead per host rejects calls over its limit", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = yield* makeClient({ retry: false, bulkhead: { maxConcurrent: 1, maxQueue: 0 } })
      const slow = yield* Effect.fork(client.get(`${downstream.url}/slow`))
      while (downstream.hits("GET /slow") === 0) yield* Effect.sleep("5 millis")
      const rejected = yield* Effect.either(client.get(`${downstream.url}/status/200`))
      expect(rejected._tag).toBe("Left")
      if (rejected._tag === "Left") expect(rejected.left._tag).toBe("BulkheadFullError")
      expect((yield* slow).status).toBe(200)
    })))

  it.live("works as an HttpClient: the wrapped client keeps its combinators", () =>
    Effect.scoped(Effect.gen(function*() {
      const downstream = yield* flaky
      const client = (yield* makeClient({ retry: false })).pipe(HttpClient.filterStatusOk)
      const result = yield* Effect.either(client.get(`${downstream.url}/status/500`))
      expect(result._tag).toBe("Left")
    })))
})
