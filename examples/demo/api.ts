/**
 * The demo's user API: `GET /api/users/:id` fetches the user from the flaky downstream.
 *
 * Server side, `ResilientHttpServer` applies, outermost first: max connections (40 in flight) → a
 * circuit breaker per route → load shedding (the server's default shedder: this process's event-loop
 * utilization against 0.9) → a per-user rate limit by tier (free 10/s, pro 60/s, token bucket, in memory or in Redis)
 * → a 1 s request deadline. Client side, `ResilientHttpClient` gives the downstream host its own
 * breaker and bulkhead (48 calls, 16 queued for at most 250 ms), a 300 ms per-try timeout clamped
 * to the request's deadline, and two retries with jittered exponential backoff. `/health` reports every breaker, `/metrics` serves
 * Prometheus text.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Option } from "effect"
import type { Scope } from "effect"
import { createServer } from "node:http"
import {
  CircuitBreaker,
  Health,
  Metrics,
  RateLimiter,
  RateLimiterStore,
  RedisStore,
  ResilientHttpClient,
  ResilientHttpServer
} from "../../src/index.js"
import type { BreakerState, OverloadSample } from "./model.js"

export interface Api {
  readonly port: number
  readonly store: string
  readonly description: string
  /** The route breaker and the client's breaker for the downstream host, in that order. */
  readonly breakers: Effect.Effect<
    ReadonlyArray<{ readonly name: string; readonly state: BreakerState; readonly dropRatio?: number | undefined }>
  >
  /** The server's load shedder now: its overload signal against its threshold. */
  readonly overload: Effect.Effect<Omit<OverloadSample, "t"> | undefined>
}

export const ROUTE = "GET /api/users/:id"

const tierOf = (key: string) => key.slice(0, key.indexOf(":"))

/** One `RateLimiter` over the tiers: the key is `<tier>:<user>`. */
const byTier = (tiers: RateLimiter.Tiered<"free" | "pro">, name: string): RateLimiter.RateLimiter => ({
  name,
  algorithm: tiers.limiters.free.algorithm,
  take: (key, cost) => tiers.take(tierOf(key), key, cost),
  acquire: (key, cost) => tiers.limiter(tierOf(key)).acquire(key, cost),
  protect: (key) => tiers.protect(tierOf(key), key),
  reserve: (key, cost, maxDelay) => tiers.limiter(tierOf(key)).reserve(key, cost, maxDelay)
})

const userKey = (request: HttpServerRequest.HttpServerRequest): string => {
  const user = request.headers["x-user-id"] ?? Option.getOrElse(request.remoteAddress, () => "anonymous")
  const tier = request.headers["x-user-tier"] === "pro" ? "pro" : "free"
  return `${tier}:${user}`
}

const rejection = (status: number, code: string, message: string, extra: Record<string, unknown> = {}) =>
  HttpServerResponse.unsafeJson({ error: { code, status, message, route: ROUTE, ...extra } }, { status })

export const start = (
  options: { readonly downstreamUrl: string; readonly redisUrl?: string; readonly port?: number }
): Effect.Effect<Api, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const storeLayer = options.redisUrl === undefined
      ? RateLimiterStore.layerMemory()
      : RedisStore.layer({ url: options.redisUrl, prefix: "demo:" })
    const store = yield* Layer.build(storeLayer)
    const tiers = yield* RateLimiter.tiered({
      name: "user-api",
      tiers: {
        free: RateLimiter.tokenBucket({ rate: 10, burst: 10 }),
        pro: RateLimiter.tokenBucket({ rate: 60, burst: 60 })
      },
      fallback: "free"
    }).pipe(Effect.provide(store))

    const registry = Context.get(
      yield* Layer.build(CircuitBreaker.layerRegistry({
        policy: (name) => CircuitBreaker.sre({ name, window: "5 seconds", buckets: 20 })
      })),
      CircuitBreaker.Registry
    )

    // the server's default load shedder (its default overload signal and threshold)
    const server = yield* ResilientHttpServer.make({
      name: "user-api",
      maxConns: 40,
      breaker: { registry },
      shedding: {},
      rateLimit: { limiter: byTier(tiers, "user-api.tier"), key: userKey },
      timeout: "1 second",
      routes: {
        [ROUTE]: {},
        "/health": { breaker: false, shedding: false, rateLimit: false },
        "/metrics": { breaker: false, shedding: false, rateLimit: false }
      }
    })

    // keep-alive: a new connection per downstream call costs both processes a connect and an accept
    const platformClient = yield* Layer.build(
      NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true })))
    )
    const client = yield* ResilientHttpClient.make({
      name: "downstream",
      breaker: { registry },
      bulkhead: { maxConcurrent: 48, maxQueue: 16, queueTimeout: "250 millis" },
      timeout: "300 millis",
      retry: { times: 2 }
    }).pipe(Effect.provide(platformClient))

    const downstreamHost = new URL(options.downstreamUrl).host
    const clientBreakerName = `downstream ${downstreamHost}`
    const routeBreaker = yield* registry.get(ROUTE)
    const clientBreaker = yield* registry.get(clientBreakerName)

    const health = yield* Health.make({
      checks: {
        downstream: client.get(`${options.downstreamUrl}/ping`).pipe(
          Effect.flatMap((r) => r.status < 500 ? Effect.void : Effect.fail(`downstream answered ${r.status}`))
        )
      },
      breakers: [routeBreaker, clientBreaker]
    })
    const metrics = yield* Metrics.make({ serviceName: "user-api" })

    const getUser = Effect.gen(function*() {
      const { id } = yield* HttpRouter.params
      const response = yield* client.get(`${options.downstreamUrl}/users/${encodeURIComponent(id ?? "")}`)
      if (response.status >= 200 && response.status < 300) {
        return HttpServerResponse.unsafeJson(yield* response.json)
      }
      return rejection(502, "downstream_error", `the downstream answered ${response.status}`, {
        downstreamStatus: response.status
      })
    }).pipe(
      Effect.catchTags({
        CircuitOpenError: (e) => Effect.succeed(rejection(503, "circuit_open", e.message, { breaker: e.breaker })),
        BulkheadFullError: (e) => Effect.succeed(rejection(503, "bulkhead_full", e.message, { bulkhead: e.bulkhead })),
        RequestError: (e) => Effect.succeed(rejection(502, "downstream_unreachable", e.message)),
        ResponseError: (e) => Effect.succeed(rejection(502, "downstream_error", e.message))
      })
    )

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/api/users/:id", getUser),
      HttpRouter.get("/health", health.httpApp),
      HttpRouter.get("/metrics", Metrics.httpApp.pipe(Effect.provideService(Metrics.PrometheusRegistry, metrics)))
    )

    const http = yield* NodeHttpServer.make(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
    yield* http.serve(router, server.middleware).pipe(Effect.provide(NodeHttpServer.layerContext))
    const port = http.address._tag === "TcpAddress" ? http.address.port : 0

    return {
      port,
      store: options.redisUrl === undefined ? "memory" : `redis (${options.redisUrl})`,
      description:
        "server: max 40 connections → breaker per route → load shedding (default: event-loop utilization over 0.9) → per-user rate limit (free 10/s, pro 60/s) → 1 s deadline; " +
        "client: breaker + bulkhead (48 + 16 queued) per host, 300 ms per try, 2 retries with jittered backoff",
      overload: Option.match(server.shedder, {
        onNone: () => Effect.succeed(undefined),
        onSome: (shedder) =>
          Effect.map(shedder.stats, (s) => ({
            signal: s.signal,
            value: Math.round(s.value * 1000) / 1000,
            threshold: s.threshold,
            flying: s.flying,
            dropped: s.dropped
          }))
      }),
      breakers: Effect.all([
        Effect.map(routeBreaker.stats, (s) => ({ name: `route ${ROUTE}`, state: s.state, dropRatio: s.dropRatio })),
        Effect.map(clientBreaker.stats, (s) => ({
          name: `client → ${clientBreakerName}`,
          state: s.state,
          dropRatio: s.dropRatio
        }))
      ])
    } satisfies Api
  })
