/**
 * The demo: a flaky downstream and a user API protected by the resilient middleware and client, both
 * on 127.0.0.1 and each in its own process, driven from this one (the load driver) through four phases — normal, downstream outage, overload, recovery — with
 * live progress, a summary table and an HTML report (`demo-report.html`).
 *
 *   npm run demo                      # in-memory rate-limit store
 *   npm run demo -- --redis redis://127.0.0.1:6379
 *   npm run demo -- --quick           # phases of about a second each (also DEMO_SCALE=0.2)
 *   npm run demo -- --out report.html
 *
 * The phases, users and load are defined in `phases.ts`. Ctrl-C stops the load, shuts both servers
 * down and still writes the report of what ran.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger, LogLevel } from "effect"
import { writeFileSync } from "node:fs"
import * as Path from "node:path"
import { parseArgs } from "node:util"
import * as Log from "./logging.js"
import * as Phases from "./phases.js"
import { render } from "./report.js"
import { run } from "./run.js"
import { summaryText } from "./stats.js"
import * as System from "./system.js"
import * as Terminal from "./terminal.js"

const { values: args } = parseArgs({
  options: {
    redis: { type: "string" },
    quick: { type: "boolean", default: false },
    out: { type: "string", default: "demo-report.html" },
    scale: { type: "string" }
  },
  allowPositionals: false
})

const scale = (() => {
  const raw = args.scale ?? process.env.DEMO_SCALE ?? (args.quick ? "0.15" : "1")
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0 || n > 1) {
    console.error(`invalid scale ${JSON.stringify(raw)}: expected a number in (0, 1]`)
    process.exit(2)
  }
  return n
})()

const phases = Phases.phases(scale)
const warmup = Phases.warmup(scale)
const users = Phases.users

const view = Terminal.make(process.stdout)
const events: Array<{ at: number; level: string; message: string }> = []

/**
 * Log lines of the toolkit (breaker state changes, warnings) from every process go above the live
 * view and into the report; a line repeated within a second is shown once.
 */
const onLog = (line: Log.LogLine) => {
  const last = events.length > 0 ? events[events.length - 1] : undefined
  if (last !== undefined && last.message === line.message && line.at - last.at < 1000) return
  events.push(line)
  view.log(`${new Date(line.at).toISOString().slice(11, 23)} ${line.level.padEnd(5)} ${line.message}`)
}

const program = Effect.gen(function*() {
  const out = Path.resolve(args.out)
  const sut = yield* System.start({ redisUrl: args.redis, onLog })
  view.log(
    `downstream  ${sut.downstream.url}  (flaky, pid ${sut.pids.downstream}; its behaviour changes with each phase)`
  )
  view.log(`user API    http://127.0.0.1:${sut.apiPort}  (pid ${sut.pids.api}; rate-limit store: ${sut.store})`)
  view.log(`            try: curl -i -H 'x-user-id: alice' http://127.0.0.1:${sut.apiPort}/api/users/1`)
  view.log(`            health: /health   metrics: /metrics`)
  view.log(
    `load        ${phases.map((p) => `${p.name} ${(p.durationMs / 1000).toFixed(1)}s @ ${p.rps}/s`).join(", ")}\n`
  )

  const result = yield* run(
    {
      apiPort: sut.apiPort,
      downstream: sut.downstream,
      breakers: sut.breakers,
      overload: sut.overload,
      cpu: sut.cpu,
      facts: {
        "rate-limit store": sut.store,
        "downstream": sut.downstream.url,
        "user API": `http://127.0.0.1:${sut.apiPort}`,
        "protection": sut.description,
        "processes":
          `the load driver (pid ${process.pid}), the user API (pid ${sut.pids.api}) and the downstream (pid ${sut.pids.downstream}) each run in their own Node process`,
        "priority": sut.priority,
        "users": `${users.map((u) => `${u.id} (${u.tier})`).join(", ")}; alice sends ${
          Math.round((3 / 11) * 100)
        } % of the traffic`,
        "scale": String(scale)
      }
    },
    {
      phases,
      users,
      warmup,
      maxInFlight: Phases.MAX_IN_FLIGHT,
      requestTimeoutMs: Phases.REQUEST_TIMEOUT_MS,
      view,
      events,
      title: "effect-resilience demo"
    },
    (r) =>
      Effect.sync(() => {
        writeFileSync(out, render(r.report))
        view.log("")
        view.log(summaryText(r.report.summary))
        view.log("")
        const sent = r.records.filter((x) => x.outcome !== "skipped").length
        view.log(
          `${r.report.interrupted === true ? "interrupted; partial " : ""}report: ${out} (${sent} requests in ${
            (r.report.totalMs / 1000).toFixed(1)
          } s)`
        )
      })
  )
  return result
}).pipe(
  Effect.scoped,
  Effect.catchAll((error) =>
    Effect.sync(() => {
      const message = typeof error === "object" && error !== null && "message" in error
        ? String(error.message)
        : String(error)
      console.error(`the demo could not run: ${message}`)
      process.exitCode = 1
    })
  ),
  Effect.onInterrupt(() => Effect.sync(() => console.log("shut down cleanly"))),
  Effect.provide(Logger.replace(Logger.defaultLogger, Log.make(onLog))),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
