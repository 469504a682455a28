/**
 * The server of the load-shedding experiment, run as a child process by
 * `bench/load-shedding.bench.ts`: `GET /work` costs `COST_MS` of CPU time, spent in `SLICES` slices
 * with a yield to the event loop between them (as a handler with a few awaits does), so requests
 * admitted together share the CPU. `PROTECTION` is `none`, `shedder` (LoadShedder, shed → 503) or
 * `limiter` (AdaptiveLimiter, rejected → 503). `GET /stats` reports the protection's counters.
 * Prints `{"port":…}` on its first stdout line once it listens on 127.0.0.1.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as AdaptiveLimiter from "../src/AdaptiveLimiter.js"
import * as CpuUsage from "../src/CpuUsage.js"
import * as LoadShedder from "../src/LoadShedder.js"

const protection = process.env.PROTECTION ?? "none"
const costMs = Number(process.env.COST_MS ?? 2)
const slices = Number(process.env.SLICES ?? 4)

/** Burns `ms` of CPU time (not wall time: a descheduled process must not finish its work early). */
const spin = (ms: number) => {
  const start = process.cpuUsage()
  const micros = ms * 1000
  for (;;) {
    for (let i = 0; i < 2000; i++) sink = (sink * 31 + i) | 0
    const used = process.cpuUsage(start)
    if (used.user + used.system >= micros) return
  }
}
let sink = 0

const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const work = Effect.gen(function*() {
  for (let i = 0; i < slices; i++) {
    spin(costMs / slices)
    yield* yieldToEventLoop
  }
  return HttpServerResponse.text("ok")
})

const unavailable = HttpServerResponse.empty({ status: 503 })

const ServerLive = Layer.unwrapScoped(Effect.gen(function*() {
  let guard: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | { readonly _tag: "OverloadedError" }, R> = (
    effect
  ) => effect
  let stats: Effect.Effect<unknown> = Effect.succeed({})
  if (protection === "shedder") {
    const shedder = yield* LoadShedder.make({ name: "bench" })
    guard = shedder.protect
    stats = shedder.stats
  } else if (protection === "limiter") {
    const limiter = yield* AdaptiveLimiter.make({ name: "bench" })
    guard = (effect) => limiter.protect(effect)
    stats = limiter.stats
  }
  const guarded = guard(work).pipe(
    Effect.catchIf((e): e is { readonly _tag: "OverloadedError" } => e._tag === "OverloadedError", () => unavailable)
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
  Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1", backlog: 4096 })),
  Layer.provide(CpuUsage.layerWith({ source: (process.env.CPU_SOURCE ?? "event-loop") as "event-loop" }))
)

NodeRuntime.runMain(Layer.launch(Main))
