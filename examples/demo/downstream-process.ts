/**
 * The demo's downstream in its own process: the flaky server of the examples on a free port of
 * 127.0.0.1. The demo (the parent process) switches its behaviour at each phase with a
 * `{ type: "set", id, behaviour }` message, answered by `{ type: "ack", id }`; it reports
 * `{ type: "ready", url }` once it listens, then `{ type: "sample", cpuMs, served }` every 100 ms
 * (`served`: the calls it has answered so far).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger, LogLevel, Runtime, Schedule } from "effect"
import type { Behaviour } from "../shared/flakyServer.js"
import * as Flaky from "../shared/flakyServer.js"
import { cpuMs, fromParent, toParent } from "./ipc.js"
import * as Log from "./logging.js"

const program = Effect.gen(function*() {
  const server = yield* Flaky.start()
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  fromParent((m) => {
    if (m.type !== "set") return
    runFork(Effect.zipRight(
      server.set(m.behaviour as Partial<Behaviour>),
      Effect.sync(() => toParent({ type: "ack", id: m.id }))
    ))
  })
  toParent({ type: "ready", url: server.url })
  const sample = Effect.flatMap(
    server.served,
    (byStatus) =>
      Effect.sync(() =>
        toParent({ type: "sample", cpuMs: cpuMs(), served: Object.values(byStatus).reduce((a, b) => a + b, 0) })
      )
  )
  return yield* Effect.repeat(sample, Schedule.spaced("100 millis")).pipe(Effect.zipRight(Effect.never))
}).pipe(
  Effect.scoped,
  Effect.provide(Logger.replace(Logger.defaultLogger, Log.make((line) => toParent({ type: "log", ...line })))),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
