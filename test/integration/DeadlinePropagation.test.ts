/**
 * The client half of deadline propagation against a real server on 127.0.0.1: each attempt
 * carries what is left of its deadline, less the margin; a spent budget sends nothing.
 */
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
import * as ResilientHttpClient from "../../src/ResilientHttpClient.js"
import * as Timeout from "../../src/Timeout.js"
import { serve } from "./serve.js"

/** Answers with the request's headers as JSON; `/fail` answers 503 after recording them. */
const echo = Effect.gen(function*() {
  const seen: Array<Record<string, string>> = []
  const handler = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    seen.push({ ...request.headers, path: request.url })
    return HttpServerResponse.unsafeJson(request.headers, { status: request.url.startsWith("/fail") ? 503 : 200 })
  })
  const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", handler)))
  return { url, seen }
})

const withUndici = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Layer.build(NodeHttpClient.layerUndici), (ctx) => Effect.provide(effect, ctx))

const makeClient = (options: ResilientHttpClient.Options) =>
  withUndici(ResilientHttpClient.make({ breaker: false, ...options }))

const headersOf = (response: { readonly json: Effect.Effect<unknown, unknown> }) =>
  Effect.map(response.json, (body) => body as Record<string, string>)

describe("deadline propagation, client side (real server on 127.0.0.1)", () => {
  it.live("sends what is left of the caller's deadline less the margin; nothing without a deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const untimed = yield* makeClient({ timeout: false })
      const plain = yield* headersOf(yield* untimed.get(`${server.url}/a`))
      expect(plain["x-request-timeout"]).toBeUndefined()
      // the per-attempt timeout (10 s by default) is a deadline of its own
      const client = yield* makeClient({})
      const attempt = Number((yield* headersOf(yield* client.get(`${server.url}/a`)))["x-request-timeout"])
      expect(attempt).toBeLessThanOrEqual(9995)
      expect(attempt).toBeGreaterThan(9800)
      const budgeted = yield* headersOf(yield* client.get(`${server.url}/a`).pipe(Timeout.deadline("300 millis")))
      const sent = Number(budgeted["x-request-timeout"])
      expect(sent).toBeLessThanOrEqual(295)
      expect(sent).toBeGreaterThan(150)
    })))

  it.live("the budget spent before the call is not sent; a shorter per-attempt timeout wins", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const client = yield* makeClient({ timeout: "120 millis" })
      const after = yield* Effect.gen(function*() {
        yield* Effect.sleep("100 millis")
        return yield* headersOf(yield* client.get(`${server.url}/b`))
      }).pipe(Timeout.deadline("400 millis"))
      // the attempt's own 120 ms timeout is shorter than the 300 ms left
      expect(Number(after["x-request-timeout"])).toBeLessThanOrEqual(115)
      const late = yield* Effect.gen(function*() {
        yield* Effect.sleep("250 millis")
        return yield* headersOf(yield* client.get(`${server.url}/b`))
      }).pipe(Timeout.deadline("400 millis"))
      expect(Number(late["x-request-timeout"])).toBeLessThanOrEqual(145)
    })))

  it.live("header name, grpc-timeout format and margin are options; false sends nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const grpc = yield* makeClient({
        propagateDeadline: { header: "grpc-timeout", format: "grpc", margin: "50 millis" }
      })
      const headers = yield* headersOf(yield* grpc.get(`${server.url}/c`).pipe(Timeout.deadline("1 second")))
      const match = /^(\d+)m$/.exec(headers["grpc-timeout"])
      expect(match).not.toBeNull()
      expect(Number(match![1])).toBeLessThanOrEqual(950)
      expect(Number(match![1])).toBeGreaterThan(700)
      const off = yield* makeClient({ propagateDeadline: false })
      const none = yield* headersOf(yield* off.get(`${server.url}/c`).pipe(Timeout.deadline("1 second")))
      expect(none["x-request-timeout"]).toBeUndefined()
    })))

  it.live("each retry sends the budget left at its own start", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const client = yield* makeClient({ retry: { times: 2, schedule: Schedule.spaced("100 millis") } })
      const response = yield* client.get(`${server.url}/fail`).pipe(Timeout.deadline("1 second"))
      expect(response.status).toBe(503)
      const budgets = server.seen.map((h) => Number(h["x-request-timeout"]))
      expect(budgets.length).toBe(3)
      expect(budgets[1]).toBeLessThanOrEqual(budgets[0] - 100)
      expect(budgets[2]).toBeLessThanOrEqual(budgets[1] - 100)
    })))

  it.live("a budget within the margin fails with TimeoutError and sends nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const client = yield* makeClient({ propagateDeadline: { margin: "50 millis" } })
      const error = yield* Effect.flip(
        Effect.zipRight(Effect.sleep("60 millis"), client.get(`${server.url}/d`)).pipe(Timeout.deadline("100 millis"))
      )
      expect(error._tag).toBe("TimeoutError")
      expect(error._tag === "TimeoutError" && error.reason).toBe("deadline")
      expect(server.seen.length).toBe(0)
    })))

  it.live("a client that prepares requests (base URL, headers) still prepares them once", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* echo
      const client = yield* withUndici(Effect.gen(function*() {
        const base = (yield* HttpClient.HttpClient).pipe(
          HttpClient.mapRequest(HttpClientRequest.prependUrl(server.url)),
          HttpClient.mapRequest(HttpClientRequest.setHeader("x-app", "demo"))
        )
        return yield* ResilientHttpClient.wrap(base, { breaker: false })
      }))
      const headers = yield* headersOf(yield* client.get("/e").pipe(Timeout.deadline("5 seconds")))
      expect(headers["x-app"]).toBe("demo")
      expect(Number(headers["x-request-timeout"])).toBeLessThanOrEqual(4995)
      expect(server.seen[0].path).toBe("/e")
    })))
})
