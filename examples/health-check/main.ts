/**
 * A health checker (the classic Go `HealthChecker`): named checks, each run through its own circuit
 * breaker, reported as `healthy`, `unhealthy` or `circuit_open`, served at `/health` with 200 while
 * the service can serve and 503 when it cannot.
 *
 * Two checks: `database` (an in-process lookup) and `downstream` (a ping to a flaky HTTP server the
 * example starts on 127.0.0.1). `/admin/down` and `/admin/up` switch the downstream off and on, so
 * you can watch the check go `unhealthy` and, after three failures in a row, `circuit_open` (its
 * breaker then answers without calling the downstream until it probes again).
 *
 *   npm run example:health-check
 *   curl -i http://127.0.0.1:8080/health
 *   curl http://127.0.0.1:8080/admin/down; curl -i http://127.0.0.1:8080/health
 */
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { CircuitBreaker, Health } from "../../src/index.js"
import * as Flaky from "../shared/flakyServer.js"

const App = Layer.unwrapScoped(Effect.gen(function*() {
  const downstream = yield* Flaky.start()
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)

  const health = yield* Health.make({
    timeout: "1 second",
    checks: {
      database: Effect.sleep("2 millis"),
      downstream: {
        check: client.get(`${downstream.url}/ping`),
        timeout: "500 millis",
        // opens after 3 failures in a row, probes again after 5 seconds
        policy: CircuitBreaker.consecutive({ name: "health downstream", threshold: 3, openFor: "5 seconds" })
      }
    }
  })

  const router = HttpRouter.empty.pipe(
    HttpRouter.get("/health", health.httpApp),
    HttpRouter.get(
      "/admin/down",
      Effect.as(downstream.set({ down: true }), HttpServerResponse.text("downstream is down\n"))
    ),
    HttpRouter.get(
      "/admin/up",
      Effect.as(downstream.set({ down: false }), HttpServerResponse.text("downstream is up\n"))
    )
  )
  return HttpServer.serve(router).pipe(HttpServer.withLogAddress)
}))

const ServerLive = Layer.unwrapEffect(Effect.map(
  Config.integer("PORT").pipe(Config.withDefault(8080)),
  (port) => NodeHttpServer.layer(createServer, { host: "127.0.0.1", port })
))

NodeRuntime.runMain(Layer.launch(App.pipe(Layer.provide(ServerLive), Layer.provide(NodeHttpClient.layer))))
