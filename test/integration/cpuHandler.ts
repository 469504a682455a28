/**
 * The handler the overload experiments serve: a known amount of CPU time spent in slices with a
 * yield to the event loop between them, as a handler with a few awaits does, so requests admitted
 * together share the CPU. Used by the overload integration test's server and the load-shedding
 * benchmark's server.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"

let sink = 0

/** Burns `ms` of CPU time, not wall time: a descheduled process must not finish its work early. */
export const spin = (ms: number): void => {
  const start = process.cpuUsage()
  const micros = ms * 1000
  for (;;) {
    for (let i = 0; i < 2000; i++) sink = (sink * 31 + i) | 0
    const used = process.cpuUsage(start)
    if (used.user + used.system >= micros) return
  }
}

/** One turn of the event loop (`setImmediate`), cancelled if the fiber is interrupted first. */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** `costMs` of CPU time in `slices` slices, then a 200 "ok". */
export const slicedWork = (costMs: number, slices: number): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    for (let i = 0; i < slices; i++) {
      spin(costMs / slices)
      yield* yieldToEventLoop
    }
    return HttpServerResponse.text("ok")
  })
