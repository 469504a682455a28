/**
 * Map-reduce fan-out (go-zero's `ProcessLargeDataset` pattern): fetch many users in parallel with a
 * bounded number of workers and fold the results.
 *
 * `GET /api/users?ids=1-100&workers=10` fetches every id from a downstream the example starts on
 * 127.0.0.1 (10–20 ms a call, 5 % of calls fail). As in go-zero, a failed fetch is logged and
 * skipped; with `strict=true` the first failure cancels the rest and the answer is 502. The answer
 * says how many users came back, which ids failed, the most mappers seen in flight, and how long
 * it took.
 *
 *   npm run example:map-reduce
 *   curl 'http://127.0.0.1:8081/api/users?ids=1-100&workers=10'
 */
import {
  HttpClient,
  HttpClientResponse,
  HttpRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpClient, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Config, Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { MapReduce } from "../../src/index.js"
import * as Flaky from "../shared/flakyServer.js"

const UserData = Schema.Struct({ id: Schema.String, name: Schema.String })
type UserData = typeof UserData.Type

/** "1-5,9" → [1, 2, 3, 4, 5, 9] (at most 1000 ids). */
const parseIds = (s: string): Array<number> =>
  s.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map((x) => Number.parseInt(x, 10))
    if (!Number.isFinite(a)) return []
    const end = Number.isFinite(b) ? Math.min(b, a + 999) : a
    return Array.from({ length: Math.max(0, end - a + 1) }, (_, i) => a + i)
  }).slice(0, 1000)

const App = Layer.unwrapScoped(Effect.gen(function*() {
  const downstream = yield* Flaky.start({ behaviour: { latencyMs: 10, jitterMs: 10, errorRate: 0.05 } })
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)

  const fetchUser = (id: number) =>
    client.get(`${downstream.url}/users/${id}`).pipe(
      Effect.flatMap(HttpClientResponse.schemaBodyJson(UserData)),
      Effect.scoped
    )

  const batch = Effect.gen(function*() {
    const params = yield* HttpServerRequest.schemaSearchParams(Schema.Struct({
      ids: Schema.optionalWith(Schema.String, { default: () => "1-50" }),
      workers: Schema.optionalWith(Schema.NumberFromString, { default: () => 10 }),
      strict: Schema.optionalWith(Schema.BooleanFromString, { default: () => false })
    }))
    const ids = parseIds(params.ids)
    const start = yield* Clock.currentTimeMillis
    let inFlight = 0
    let maxInFlight = 0
    const failed: Array<number> = []

    const result = yield* MapReduce.mapReduce({
      source: ids,
      workers: params.workers,
      map: (id, cancel) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          const user = yield* fetchUser(id).pipe(
            Effect.ensuring(Effect.sync(() => inFlight--)),
            Effect.catchAll((error) =>
              params.strict
                ? cancel({ id, reason: error.message })
                : Effect.zipRight(
                  Effect.logWarning(`failed to fetch user ${id}: ${error.message}`),
                  Effect.sync(() => {
                    failed.push(id)
                    return undefined
                  })
                )
            )
          )
          return user
        }),
      initial: [] as Array<UserData>,
      reduce: (users, user) => (user === undefined ? users : [...users, user])
    }).pipe(Effect.either)

    const elapsedMs = (yield* Clock.currentTimeMillis) - start
    if (result._tag === "Left") {
      const e = result.left
      return HttpServerResponse.unsafeJson({
        error: "_tag" in e ? e.message : `user ${e.id} failed: ${e.reason}`,
        cancelled: true,
        maxInFlight,
        elapsedMs
      }, { status: "_tag" in e ? 400 : 502 })
    }
    return HttpServerResponse.unsafeJson({
      requested: ids.length,
      fetched: result.right.length,
      failed: failed.sort((a, b) => a - b),
      workers: params.workers,
      maxInFlight,
      elapsedMs,
      users: result.right
    })
  }).pipe(
    Effect.catchTag(
      "ParseError",
      (e) => Effect.succeed(HttpServerResponse.unsafeJson({ error: e.message }, { status: 400 }))
    )
  )

  const router = HttpRouter.empty.pipe(HttpRouter.get("/api/users", batch))
  return HttpServer.serve(router).pipe(HttpServer.withLogAddress)
}))

const ServerLive = Layer.unwrapEffect(Effect.map(
  Config.integer("PORT").pipe(Config.withDefault(8081)),
  (port) => NodeHttpServer.layer(createServer, { host: "127.0.0.1", port })
))

NodeRuntime.runMain(Layer.launch(App.pipe(Layer.provide(ServerLive), Layer.provide(NodeHttpClient.layer))))
