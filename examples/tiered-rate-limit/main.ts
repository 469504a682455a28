/**
 * Per-user rate limits by tier, kept in Redis so every instance of the service shares them (the
 * per-user limiter map of a Go service, as tiers):
 *
 *   free: token bucket, 1 request/s, bursts of 5
 *   pro:  token bucket, 20 requests/s, bursts of 40
 *
 * The user comes from the `x-user-id` header and the tier from a small user table. Every answer
 * carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; a refusal is a 429 with
 * `Retry-After` and a JSON body. Uses `REDIS_URL` when set, else starts its own `redis-server` on a
 * free loopback port.
 *
 *   npm run example:tiered-rate-limit
 *   for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} ' -H 'x-user-id: alice' http://127.0.0.1:8082/api/report; done
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Duration, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { RateLimiter, RedisStore } from "../../src/index.js"
import * as Redis from "../shared/redisServer.js"

const plans: Readonly<Record<string, "free" | "pro">> = { alice: "free", bob: "pro", carol: "pro" }

const seconds = (d: Duration.Duration) => String(Math.max(0, Math.ceil(Duration.toMillis(d) / 1000)))

const App = Layer.unwrapScoped(Effect.gen(function*() {
  const url = yield* Redis.url
  const store = yield* Layer.build(RedisStore.layer({ url, prefix: "example:tiers:" }))
  const tiers = yield* RateLimiter.tiered({
    name: "report-api",
    tiers: {
      free: RateLimiter.tokenBucket({ rate: 1, burst: 5 }),
      pro: RateLimiter.tokenBucket({ rate: 20, burst: 40 })
    },
    fallback: "free"
  }).pipe(Effect.provide(store))
  yield* Effect.logInfo(`rate limits in Redis at ${url}`)

  /** Applies the caller's tier limit to `handler` and sets the rate-limit headers. */
  const limited = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const user = request.headers["x-user-id"]
      if (user === undefined || user === "") {
        return HttpServerResponse.unsafeJson({ error: { code: "unauthorized", message: "missing x-user-id" } }, {
          status: 401
        })
      }
      const tier = plans[user] ?? "free"
      const decision = yield* tiers.take(tier, `user:${user}`)
      const headers = {
        "ratelimit-limit": String(decision.limit),
        "ratelimit-remaining": String(Math.max(0, Math.floor(decision.remaining))),
        "ratelimit-reset": seconds(decision.resetAfter)
      }
      if (!decision.allowed) {
        yield* Effect.logWarning(`rate limit exceeded for user ${user}`).pipe(Effect.annotateLogs({ tier }))
        return HttpServerResponse.unsafeJson(
          {
            error: {
              code: "rate_limited",
              message: `the ${tier} tier allows ${decision.limit} requests in a burst`,
              tier
            }
          },
          { status: 429, headers: { ...headers, "retry-after": seconds(decision.retryAfter) } }
        )
      }
      return HttpServerResponse.setHeaders(yield* handler, headers)
    }).pipe(
      Effect.catchTag("StoreError", () =>
        Effect.succeed(
          HttpServerResponse.unsafeJson({
            error: { code: "limiter_unavailable", message: "the rate-limit store is unavailable" }
          }, { status: 503 })
        ))
    )

  const report = Effect.map(
    HttpServerRequest.HttpServerRequest,
    (request) => {
      const user = request.headers["x-user-id"] ?? ""
      return HttpServerResponse.unsafeJson({ user, tier: plans[user] ?? "free", report: "ok" })
    }
  )

  const router = HttpRouter.empty.pipe(HttpRouter.get("/api/report", limited(report)))
  return HttpServer.serve(router).pipe(HttpServer.withLogAddress)
}))

const ServerLive = Layer.unwrapEffect(Effect.map(
  Config.integer("PORT").pipe(Config.withDefault(8082)),
  (port) => NodeHttpServer.layer(createServer, { host: "127.0.0.1", port })
))

NodeRuntime.runMain(Layer.launch(App.pipe(Layer.provide(ServerLive))))
