/**
 * One hop of the deadline chain: a service behind the resilient server middleware that works for
 * `WORK_MS` (default 50 ms; `?slow=<NAME>` makes it work 2 seconds instead), then calls `NEXT`
 * through the resilient client, which sends what is left of the request's deadline on. It answers
 * the budget it received, after how many ms it called on (`forwardedAfter`) and how long it spent
 * in all, with its downstream's answer nested (a downstream's failure is passed back as it came); when its
 * deadline interrupts the work it prints `<NAME> interrupted after <n> ms (budget <b> ms)`.
 *
 *   NAME=C PORT=0 tsx examples/deadline-chain/service.ts
 *   NAME=B NEXT=http://127.0.0.1:<C's port> PORT=0 tsx examples/deadline-chain/service.ts
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { ResilientHttpClient, ResilientHttpServer } from "../../src/index.js"

const name = process.env.NAME ?? "service"
const work = Number(process.env.WORK_MS ?? 50)
const next = process.env.NEXT

const chain = (client: ResilientHttpClient.ResilientHttpClient) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const arrived = Date.now()
    const budget = Number(request.headers["x-request-timeout"])
    const query = new URL(request.url, "http://local").search
    const slow = new URLSearchParams(query).get("slow") === name
    yield* Effect.sleep(slow ? 2000 : work).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => console.log(`${name} interrupted after ${Date.now() - arrived} ms (budget ${budget} ms)`))
      )
    )
    const forwardedAfter = Date.now() - arrived
    if (next === undefined) {
      return HttpServerResponse.unsafeJson({ name, budget, forwardedAfter, spent: Date.now() - arrived })
    }
    const reply = yield* client.get(`${next}/chain${query}`)
    const downstream = yield* reply.json
    // a failed hop fails the chain: its status and body go back up as they came (a deadline that
    // ran out below arrives here as the downstream's timeout, just before this hop's own)
    return reply.status === 200
      ? HttpServerResponse.unsafeJson({ name, budget, forwardedAfter, spent: Date.now() - arrived, downstream })
      : HttpServerResponse.unsafeJson(downstream, { status: reply.status })
  })

const App = Layer.unwrapScoped(Effect.gen(function*() {
  const client = yield* ResilientHttpClient.make({ name, breaker: false, retry: false })
  // the service's own timeout is long: the caller's budget is what bounds each request
  const server = yield* ResilientHttpServer.make({ name, timeout: "10 seconds", shedding: false })
  const router = HttpRouter.empty.pipe(HttpRouter.get("/chain", chain(client)))
  return HttpServer.serve(router, server.middleware).pipe(HttpServer.withLogAddress)
}))

const port = Number(process.env.PORT ?? 0)
const Main = App.pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port })),
  Layer.provide(NodeHttpClient.layerUndici)
)

NodeRuntime.runMain(Layer.launch(Main))
