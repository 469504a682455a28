/**
 * The server of the overload test, in its own process: `GET /work` spends `COST_MS` of CPU time in
 * four slices with a yield to the event loop between them (as a handler with a few awaits does, so
 * requests admitted together share the CPU), behind `ResilientHttpServer` with the default load
 * shedder, or with `SHEDDING=off` the same server without it. Every other stage is off, so shedding
 * alone makes the difference. Prints `{"port":…}` once it listens on 127.0.0.1.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { slicedWork } from "./cpuHandler.js"

const costMs = Number(process.env.COST_MS ?? 20)
const shedding = process.env.SHEDDING !== "off"
const slices = 4

const work = slicedWork(costMs, slices)

const router = HttpRouter.empty.pipe(HttpRouter.get("/work", work))

const Serve = Layer.unwrapScoped(Effect.gen(function*() {
  const server = yield* ResilientHttpServer.make({
    name: "overload",
    router,
    shedding: shedding ? {} : false,
    breaker: false,
    timeout: false,
    maxConns: false
  })
  return HttpServer.serve(router, server.middleware)
}))

const Announce = Layer.effectDiscard(Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  if (address._tag === "TcpAddress") process.stdout.write(JSON.stringify({ port: address.port }) + "\n")
}))

// the test holds this pipe open: when the test process is gone, so is the server
process.stdin.on("close", () => process.exit(0))
process.stdin.resume()

NodeRuntime.runMain(Layer.launch(
  Layer.mergeAll(Serve, Announce).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1", backlog: 4096 }))
  )
))
