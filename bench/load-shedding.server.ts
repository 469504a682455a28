/**
 * The server of the load-shedding experiment, run as a child process by
 * `bench/load-shedding.bench.ts`: `GET /work` costs `COST_MS` of CPU time, spent in `SLICES` slices
 * with a yield to the event loop between them (as a handler with a few awaits does), so requests
 * admitted together share the CPU. `PROTECTION` is
 *
 * - `none`;
 * - `cpu`: `LoadShedder` with go-zero's CPU signal and constants (`CpuUsage.layer`, which reads the
 *   container's cgroup here, as go-zero does);
 * - `default`: `LoadShedder` with its defaults (or the signal in `SIGNAL`, JSON, for comparisons);
 * - `limiter`: `AdaptiveLimiter` (gradient2).
 *
 * A rejection is a 503. The `x-priority` header (`critical`, `standard`, `sheddable`) sets the
 * request's tier. `GET /stats` reports the protection's counters. Prints `{"port":…}` on its first
 * stdout line once it listens on 127.0.0.1.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as AdaptiveLimiter from "../src/AdaptiveLimiter.js"
import * as CpuUsage from "../src/CpuUsage.js"
import type { OverloadedError } from "../src/Errors.js"
import * as LoadShedder from "../src/LoadShedder.js"
import { slicedWork } from "../test/integration/cpuHandler.js"

const protection = process.env.PROTECTION ?? "none"
const costMs = Number(process.env.COST_MS ?? 2)
const slices = Number(process.env.SLICES ?? 4)

const work = slicedWork(costMs, slices)

const unavailable = HttpServerResponse.empty({ status: 503 })

type Guard = (
  priority: LoadShedder.Priority | undefined
) => Effect.Effect<HttpServerResponse.HttpServerResponse, OverloadedError>

const priorityOf = (value: string | undefined): LoadShedder.Priority | undefined =>
  value === "critical" || value === "standard" || value === "sheddable" ? value : undefined

const shedderGuard = (shedder: LoadShedder.LoadShedder): Guard => (priority) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      shedder.admit(priority),
      (ticket) => Effect.onExit(restore(work), (exit) => exit._tag === "Success" ? ticket.pass : ticket.fail)
    )
  )

const ServerLive = Layer.unwrapScoped(Effect.gen(function*() {
  let guard: Guard = () => work
  let stats: Effect.Effect<unknown> = Effect.succeed({})
  if (protection === "cpu") {
    const shedder = yield* LoadShedder.make({ name: "bench", signal: LoadShedder.cpu() }).pipe(
      Effect.provide(CpuUsage.layer)
    )
    guard = shedderGuard(shedder)
    stats = shedder.stats
  } else if (protection === "default") {
    const shedder = yield* LoadShedder.make({
      name: "bench",
      ...(process.env.SIGNAL === undefined ? {} : { signal: JSON.parse(process.env.SIGNAL) }),
      ...(process.env.BUCKETS === undefined ? {} : { buckets: Number(process.env.BUCKETS) })
    })
    guard = shedderGuard(shedder)
    stats = shedder.stats
  } else if (protection === "limiter") {
    const limiter = yield* AdaptiveLimiter.make({ name: "bench" })
    guard = () => limiter.protect(work)
    stats = limiter.stats
  } else if (protection !== "none") {
    return yield* Effect.dieMessage(`unknown PROTECTION ${protection}`)
  }
  const guarded = Effect.flatMap(
    HttpServerRequest.HttpServerRequest,
    (request) =>
      guard(priorityOf(request.headers["x-priority"])).pipe(
        Effect.catchTag("OverloadedError", () => Effect.succeed(unavailable))
      )
  )
  const router = HttpRouter.empty.pipe(
    HttpRouter.get("/work", guarded),
    HttpRouter.get("/stats", Effect.flatMap(stats, (s) => HttpServerResponse.json(s)))
  )
  return HttpServer.serve(router)
}))

const Announce = Layer.effectDiscard(Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag === "TcpAddress") process.stdout.write(JSON.stringify({ port: address.port }) + "\n")
}))

const Main = Layer.mergeAll(ServerLive, Announce).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1", backlog: 4096 }))
)

NodeRuntime.runMain(Layer.launch(Main))
