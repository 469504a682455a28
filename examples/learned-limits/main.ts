/**
 * The HTTP client learns a server's quota from its `RateLimit-*` headers and holds requests back
 * until the quota resets, instead of collecting 429s: a server on 127.0.0.1 allows 5 requests per
 * second; 12 requests go through without a single 429, and a client set to fail fast gets
 * `RateLimitedError` at once while the quota is spent. Exits when done.
 *
 *   npm run example:learned-limits
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Effect, Either, Layer, Logger, LogLevel } from "effect"
import { createServer } from "node:http"
import { ResilientHttpClient } from "../../src/index.js"

const QUOTA = 5
let windowStart = Date.now()
let used = 0
const served: Record<number, number> = {}

const limited = Effect.sync(() => {
  const now = Date.now()
  if (now - windowStart >= 1000) {
    windowStart = now
    used = 0
  }
  const status = used < QUOTA ? 200 : 429
  if (status === 200) used++
  served[status] = (served[status] ?? 0) + 1
  return HttpServerResponse.text(status === 200 ? "ok" : "slow down", {
    status,
    headers: {
      "ratelimit-limit": String(QUOTA),
      "ratelimit-remaining": String(QUOTA - used),
      "ratelimit-reset": String(Math.ceil((windowStart + 1000 - now) / 1000))
    }
  })
})

const program = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  if (server.address._tag !== "TcpAddress") return
  const url = `http://127.0.0.1:${server.address.port}/quota`
  const waiting = yield* ResilientHttpClient.make({ name: "api", retry: false, learnLimits: { onLimited: "wait" } })
  const started = Date.now()
  const statuses = yield* Effect.forEach(
    Array.from({ length: 12 }),
    () => Effect.map(waiting.get(url), (r) => r.status)
  )
  console.log(`12 requests in ${Date.now() - started} ms, the client saw: ${statuses.join(" ")}`)
  console.log(`the server answered: ${Object.entries(served).map(([s, n]) => `${s}×${n}`).join(", ")}`)
  const failFast = yield* ResilientHttpClient.make({ name: "api", retry: false, learnLimits: { onLimited: "fail" } })
  const outcomes = yield* Effect.forEach(Array.from({ length: 7 }), () => Effect.either(failFast.get(url)))
  console.log(
    `fail fast: ${
      outcomes.map((o) => Either.isRight(o) ? String(o.right.status) : o.left._tag).join(" ")
    } (the RateLimit headers said the quota was spent)`
  )
}).pipe(
  Effect.provide(NodeHttpClient.layerUndici),
  Effect.provide(
    HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.get("/quota", limited))).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
    )
  ),
  Effect.scoped,
  Logger.withMinimumLogLevel(LogLevel.None)
)

Effect.runPromise(program).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
