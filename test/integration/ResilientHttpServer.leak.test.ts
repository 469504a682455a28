import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { abandon, portOf } from "./aborts.js"
import { get, serve } from "./serve.js"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

const aborted = Number(process.env.ABORTED_REQUESTS ?? 10_000)

const heapAfterGc = () =>
  Effect.promise(async () => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((resolve) => setImmediate(resolve))
    }
    return process.memoryUsage().heapUsed
  })

describe("ResilientHttpServer after many aborted requests", () => {
  it.live(
    `${aborted} aborted requests leave no request fiber running and the heap where it was`,
    () =>
      Effect.scoped(Effect.gen(function*() {
        const body = { id: 1, name: "Ada", about: "x".repeat(2048) }
        const router = HttpRouter.empty.pipe(
          HttpRouter.get(
            "/users/:id",
            Effect.sleep("2 millis").pipe(Effect.as(HttpServerResponse.unsafeJson(body)))
          )
        )
        const server = yield* ResilientHttpServer.make({
          name: "leak",
          router,
          maxConns: 100,
          breaker: {},
          shedding: {}
        })
        // request fibers still running, counted around the whole middleware
        let running = 0
        const counted = <E, R>(app: Parameters<typeof server.middleware<E, R>>[0]) =>
          Effect.suspend(() => {
            running++
            return Effect.ensuring(
              server.middleware(app),
              Effect.sync(() => {
                running--
              })
            )
          })
        const url = yield* serve(router, counted)
        const port = portOf(url)
        const wave = (n: number) =>
          Effect.forEach(Array.from({ length: n }, (_, i) => i % 4), (after) => abandon(port, "/users/7", after), {
            concurrency: 50
          })
        yield* wave(1000)
        yield* Effect.sleep("200 millis")
        const before = yield* heapAfterGc()
        yield* wave(aborted)
        const until = Date.now() + 5000
        while ((running > 0 || (yield* server.inFlight) > 0) && Date.now() < until) yield* Effect.sleep("10 millis")
        expect(running).toBe(0)
        expect(yield* server.inFlight).toBe(0)
        expect((yield* get(`${url}/users/1`)).status).toBe(200)
        const after = yield* heapAfterGc()
        expect(after / before).toBeLessThan(1.1)
      })),
    300_000
  )
})
