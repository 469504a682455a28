/**
 * The demo: a flaky downstream and a user API protected by the resilient middleware and client, both
 * on 127.0.0.1, driven through four phases — normal, downstream outage, overload, recovery — with
 * live progress, a summary table and an HTML report (`demo-report.html`).
 *
 *   npm run demo                      # in-memory rate-limit store
 *   npm run demo -- --redis redis://127.0.0.1:6379
 *   npm run demo -- --quick           # phases of about a second each (also DEMO_SCALE=0.2)
 *   npm run demo -- --out report.html
 *
 * Ctrl-C stops the load, shuts both servers down and still writes the report of what ran.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, HashMap, Logger, LogLevel } from "effect"
import { writeFileSync } from "node:fs"
import * as Path from "node:path"
import { parseArgs } from "node:util"
import * as Flaky from "../shared/flakyServer.js"
import * as Api from "./api.js"
import { render } from "./report.js"
import type { Phase, User } from "./run.js"
import { run } from "./run.js"
import { summaryText } from "./stats.js"
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

const seconds = (s: number) => Math.max(600, Math.round(s * 1000 * scale))

/** The downstream's behaviour and the offered load in each phase. */
const phases: ReadonlyArray<Phase> = [
  {
    name: "normal",
    title: "Normal traffic",
    description:
      "healthy downstream (15–25 ms, 1 % errors); one free-tier user sends a quarter of the traffic and meets its rate limit",
    durationMs: seconds(8),
    rps: 100,
    downstream: { ...Flaky.healthy, errorRate: 0.01 }
  },
  {
    name: "outage",
    title: "Downstream outage",
    description:
      "the downstream answers 503 to everything; the client retries, then its per-host breaker and the route breaker open and calls fail fast",
    durationMs: seconds(10),
    rps: 100,
    downstream: { down: true }
  },
  {
    name: "overload",
    title: "Overload",
    description:
      "four times the traffic while the downstream slows down (150–250 ms, 2 % of calls hang for 2 s): more requests would be in flight than the API allows, so max connections (and load shedding, once this process's event loop is busy more than 90 % of the time) answer the excess with an immediate 503 instead of queueing it; the per-try timeout and retries absorb the hung calls",
    durationMs: seconds(9),
    rps: 400,
    downstream: { down: false, latencyMs: 150, jitterMs: 100, errorRate: 0.01, hangRate: 0.02, hangMs: 2000 }
  },
  {
    name: "recovery",
    title: "Recovery",
    description: "normal traffic on a healthy downstream: breakers close again and almost everything is admitted",
    durationMs: seconds(10),
    rps: 100,
    downstream: { ...Flaky.healthy, errorRate: 0.01 }
  }
]

const warmupMs = Math.max(200, Math.round(1000 * scale))

const users: ReadonlyArray<User> = [
  { id: "alice", tier: "free", weight: 3 },
  ...Array.from({ length: 8 }, (_, i) => ({ id: `pro-${i + 1}`, tier: "pro" as const, weight: 1 }))
]

const view = Terminal.make(process.stdout)
const events: Array<{ at: number; level: string; message: string }> = []

/**
 * Log lines of the toolkit (breaker state changes, warnings) go above the live view and into the
 * report; a line repeated within a second is shown once.
 */
const logger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const parts = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : JSON.stringify(m))
  // `lastErrors` and the breaker/from/to annotations repeat what the message already says
  const notes = HashMap.toEntries(annotations)
    .filter(([k]) => !["lastErrors", "breaker", "from", "to"].includes(k))
    .map(([k, v]) =>
      `${k}=${typeof v === "number" ? Math.round(v * 100) / 100 : typeof v === "string" ? v : JSON.stringify(v)}`
    )
  const failure = Cause.isEmpty(cause) ? [] : [Cause.pretty(cause).split("\n")[0]]
  const full = [...parts, ...notes, ...failure].join(" ")
  const text = full.length > 200 ? full.slice(0, 197) + "..." : full
  const at = date.getTime()
  const last = events.length > 0 ? events[events.length - 1] : undefined
  if (last !== undefined && last.message === text && at - last.at < 1000) return
  events.push({ at, level: logLevel.label, message: text })
  view.log(`${date.toISOString().slice(11, 23)} ${logLevel.label.padEnd(5)} ${text}`)
})

const program = Effect.gen(function*() {
  const out = Path.resolve(args.out)
  const downstream = yield* Flaky.start()
  const api = yield* Api.start({ downstreamUrl: downstream.url, ...(args.redis ? { redisUrl: args.redis } : {}) })
  view.log(`downstream  ${downstream.url}  (flaky; its behaviour changes with each phase)`)
  view.log(`user API    http://127.0.0.1:${api.port}  (rate-limit store: ${api.store})`)
  view.log(`            try: curl -i -H 'x-user-id: alice' http://127.0.0.1:${api.port}/api/users/1`)
  view.log(`            health: /health   metrics: /metrics`)
  view.log(
    `load        ${phases.map((p) => `${p.name} ${(p.durationMs / 1000).toFixed(1)}s @ ${p.rps}/s`).join(", ")}\n`
  )

  const result = yield* run(
    {
      apiPort: api.port,
      downstream,
      breakers: api.breakers,
      overload: api.overload,
      facts: {
        "rate-limit store": api.store,
        "downstream": downstream.url,
        "user API": `http://127.0.0.1:${api.port}`,
        "protection": api.description,
        "users": `${users.map((u) => `${u.id} (${u.tier})`).join(", ")}; alice sends ${
          Math.round((3 / 11) * 100)
        } % of the traffic`,
        "scale": String(scale),
        "warm-up": `${
          (warmupMs / 1000).toFixed(1)
        } s at 50 req/s from a separate user before the first phase, not recorded`
      }
    },
    {
      phases,
      users,
      warmup: { durationMs: warmupMs, rps: 50 },
      maxInFlight: 256,
      requestTimeoutMs: 5000,
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
  Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
