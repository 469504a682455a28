/**
 * The CPU cost of each `ResilientHttpServer` layer per request, in process (no sockets): the
 * middleware runs around a handler that answers at once, with a request built from a web
 * `Request`. Read it next to `http.bench.ts`, which measures the whole server under load.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as CpuUsage from "../src/CpuUsage.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as ResilientHttpServer from "../src/ResilientHttpServer.js"
import * as Timeout from "../src/Timeout.js"
import { type Case, effectCase, runSuite } from "./harness.js"

const app = Effect.succeed(HttpServerResponse.text("ok"))
const request = HttpServerRequest.fromWeb(new Request("http://127.0.0.1/users/1"))
const off = { maxConns: false, breaker: false, shedding: false, timeout: false } as const
const variants: Record<string, ResilientHttpServer.Options> = {
  none: off,
  maxConns: { ...off, maxConns: 10000 },
  breaker: { ...off, breaker: {} },
  shedding: { ...off, shedding: {} },
  rateLimit: { ...off, rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1e9, burst: 1e9 }) } },
  timeout: { ...off, timeout: "3 seconds" },
  all: { rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 1e9, burst: 1e9 }) } }
}
/**
 * One request, as the platform runs it: with the request in context and no deadline of its own.
 * Every iteration of a case runs on one fiber, where the server leaves the request's deadline in
 * `Timeout.currentDeadline` (a platform request has a fiber of its own): without the reset, the
 * requests after the first 3 seconds would be refused as past their deadline.
 */
const asRequest = <A, E>(effect: Effect.Effect<A, E, HttpServerRequest.HttpServerRequest>) =>
  Effect.locally(
    Effect.provideService(effect, HttpServerRequest.HttpServerRequest, request),
    Timeout.currentDeadline,
    Infinity
  )
const scope = Effect.runSync(Scope.make())
const cases: Array<Case> = []
cases.push(effectCase("bare (handler only)", asRequest(app)))
cases.push(effectCase("Timeout.deadline bare", asRequest(Timeout.deadline(app, "3 seconds"))))
for (const [name, options] of Object.entries(variants)) {
  // `make` loads the request path on first use (a dynamic import): it cannot run synchronously
  const r = await Effect.runPromise(
    Scope.extend(ResilientHttpServer.make(options).pipe(Effect.provide(CpuUsage.layerTest(0))), scope)
  )
  cases.push(
    effectCase(name, asRequest(r.middleware(app)) as any)
  )
}
await runSuite({
  name: "http-middleware",
  baseline: "bare (handler only)",
  cases,
  note: "Each case enables one layer (\"none\": all off); \"all\" is every layer with an in-memory token bucket. " +
    "\"Timeout.deadline bare\" is the deadline alone, without the middleware around it."
})
await Effect.runPromise(Scope.close(scope, Exit.void))
