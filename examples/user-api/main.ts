/**
 * go-zero's `user-api` with full resilience, configured as in its YAML:
 *
 *   Name: user-api
 *   Mode: pro          # load shedding on
 *   Host: 127.0.0.1
 *   Port: 8888
 *   Timeout: 30000     # 30 s service timeout
 *   MaxConns: 1000
 *   RateLimit: { Rate: 100, Burst: 100, KeyBy: header:x-user-id }
 *   Breaker:   { K: 1.5, Protection: 5, Window: 10s, Buckets: 40 }
 *
 * The configuration is read with `effect/Config` (`Config.layerConfig` builds the whole middleware
 * from it); environment variables override the YAML (`PORT=0` picks a free port,
 * `RateLimit_Rate=5 RateLimit_Burst=5` lowers the limit). A bad value stops the start-up with an error naming the key.
 *
 *   npm run example:user-api
 *   curl -i -H 'x-user-id: 42' http://127.0.0.1:8888/api/users/1
 *   curl http://127.0.0.1:8888/health
 *   curl http://127.0.0.1:8888/metrics
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config as EffectConfig, ConfigProvider, Effect, Layer, Random } from "effect"
import { createServer } from "node:http"
import { Config, Health, Metrics, ResilientHttpServer } from "../../src/index.js"

/** The service configuration, as go-zero's YAML would hold it. */
const yaml = {
  Name: "user-api",
  Mode: "pro",
  Host: "127.0.0.1",
  Port: 8888,
  Timeout: 30000,
  MaxConns: 1000,
  RateLimit: { Rate: 100, Burst: 100, KeyBy: "header:x-user-id" },
  Breaker: { K: 1.5, Protection: 5, Window: "10 seconds", Buckets: 40 }
}

/** Environment first (`PORT`, `Timeout`, `RateLimit_Rate`, …), then the YAML. */
const provider = ConfigProvider.fromEnv({ pathDelim: "_" }).pipe(
  ConfigProvider.orElse(() => ConfigProvider.fromJson(yaml))
)

interface User {
  readonly id: number
  readonly name: string
  readonly email: string
}

const users: ReadonlyArray<User> = [
  { id: 1, name: "Ada Lovelace", email: "ada@example.com" },
  { id: 2, name: "Grace Hopper", email: "grace@example.com" },
  { id: 3, name: "Barbara Liskov", email: "barbara@example.com" }
]

/** The "database": a few milliseconds per lookup. */
const findUser = (id: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep(yield* Random.nextRange(2, 8))
    return users.find((u) => u.id === id)
  })

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/api/users/:id",
    Effect.gen(function*() {
      const { id } = yield* HttpRouter.params
      const user = yield* findUser(Number(id))
      return user === undefined
        ? HttpServerResponse.unsafeJson({ error: { code: "not_found", status: 404, message: "no such user" } }, {
          status: 404
        })
        : HttpServerResponse.unsafeJson(user)
    })
  ),
  HttpRouter.get("/health", Health.httpApp),
  HttpRouter.get("/metrics", Metrics.httpApp)
)

/** The middleware from the configuration, applied to the router. */
const App = Layer.unwrapScoped(Effect.gen(function*() {
  const server = yield* ResilientHttpServer.Server
  return HttpServer.serve(router, server.middleware).pipe(HttpServer.withLogAddress)
}))

/** Health: a database check through its own breaker, plus the route breaker of the API. */
const HealthLive = Layer.scoped(
  Health.Health,
  Effect.gen(function*() {
    const server = yield* ResilientHttpServer.Server
    const health = yield* Health.make({ checks: { database: Effect.asVoid(findUser(1)) } })
    const route = yield* server.breaker("GET /api/users/:id")
    if (route._tag === "Some") yield* health.registerBreaker(route.value)
    return health
  })
)

const ServerLive = Layer.unwrapEffect(Effect.gen(function*() {
  const host = yield* EffectConfig.string("Host")
  const port = yield* EffectConfig.integer("PORT").pipe(EffectConfig.orElse(() => EffectConfig.integer("Port")))
  return NodeHttpServer.layer(createServer, { host, port })
}))

const Main = App.pipe(
  Layer.provide(HealthLive),
  Layer.provide(Config.layerConfig(undefined, { router })),
  Layer.provide(Metrics.layer({ serviceName: "user-api" })),
  Layer.provide(ServerLive),
  Layer.provide(Layer.setConfigProvider(provider))
)

NodeRuntime.runMain(Layer.launch(Main))
