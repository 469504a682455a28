/**
 * The demo's user API in its own process (see `api.ts`). It waits for its settings from the demo
 * (the parent process), `{ type: "start", downstreamUrl, redisUrl? }`, after announcing
 * `{ type: "waiting" }`; then it listens on a free port of 127.0.0.1, reports
 * `{ type: "ready", port, store, description }`, and every 100 ms sends
 * `{ type: "sample", breakers, overload, cpuMs }`: its breakers' states, its load shedder's reading
 * and the CPU time it has used.
 * Its log lines go to the parent as `{ type: "log", at, level, message }`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger, LogLevel, Schedule } from "effect"
import * as Api from "./api.js"
import { cpuMs, fromParent, toParent } from "./ipc.js"
import * as Log from "./logging.js"

interface Settings {
  readonly downstreamUrl: string
  readonly redisUrl?: string
}

const settings = Effect.async<Settings>((resume) => {
  fromParent((m) => {
    if (m.type === "start") {
      resume(Effect.succeed({
        downstreamUrl: String(m.downstreamUrl),
        ...(typeof m.redisUrl === "string" ? { redisUrl: m.redisUrl } : {})
      }))
    }
  })
  toParent({ type: "waiting" })
})

const program = Effect.gen(function*() {
  const api = yield* Api.start(yield* settings)
  toParent({ type: "ready", port: api.port, store: api.store, description: api.description })
  const sample = Effect.flatMap(
    Effect.all({ breakers: api.breakers, overload: api.overload }),
    ({ breakers, overload }) => Effect.sync(() => toParent({ type: "sample", breakers, overload, cpuMs: cpuMs() }))
  )
  return yield* Effect.repeat(sample, Schedule.spaced("100 millis")).pipe(Effect.zipRight(Effect.never))
}).pipe(
  Effect.scoped,
  Effect.catchAll((error) =>
    Effect.sync(() => {
      const message = typeof error === "object" && error !== null && "message" in error
        ? String(error.message)
        : String(error)
      console.error(`the user API could not start: ${message}`)
      process.exitCode = 1
    })
  ),
  Effect.provide(Logger.replace(Logger.defaultLogger, Log.make((line) => toParent({ type: "log", ...line })))),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
