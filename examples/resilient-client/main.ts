/**
 * A resilient HTTP client calling a flaky server (the classic Go `ResilientClient`): a gobreaker-style
 * breaker for the host (trips when 60 % of the requests failed, as in the seed, but only once at
 * least 20 were made so an unlucky start does not trip it; 3 probes while half-open), a per-try
 * timeout, and retries with exponential backoff and jitter for idempotent requests on 5xx, 429 and
 * network errors.
 *
 * It starts the flaky server on 127.0.0.1 itself, then calls it in three stages — flaky (20 % of
 * calls fail), down (every call fails), recovered — and prints what the client saw and what the
 * server actually served. Exits when done.
 *
 *   npm run example:resilient-client
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Clock, Effect, Either, Logger } from "effect"
import { CircuitBreaker, ResilientHttpClient } from "../../src/index.js"
import * as Flaky from "../shared/flakyServer.js"

const stages = [
  { name: "flaky (20 % errors)", calls: 30, behaviour: { errorRate: 0.2, down: false } },
  { name: "down (every call 503)", calls: 30, behaviour: { down: true } },
  { name: "recovered", calls: 30, behaviour: { errorRate: 0, down: false } }
] as const

const program = Effect.gen(function*() {
  const server = yield* Flaky.start({ behaviour: { latencyMs: 5, jitterMs: 5 } })
  console.log(`flaky server on ${server.url}`)
  const openFor = "1 second"

  const client = yield* ResilientHttpClient.make({
    name: "users",
    breaker: {
      // the classic gobreaker settings (60 % failures trip it), with at least 20 requests before a trip
      // and a short open period so the example finishes quickly
      policy: (name) =>
        CircuitBreaker.custom({
          name,
          halfOpenMaxCalls: 3,
          interval: "10 seconds",
          openFor,
          readyToTrip: (c) => c.requests >= 20 && c.totalFailures / c.requests >= 0.6
        })
    },
    timeout: "500 millis",
    retry: { times: 2 }
  })

  for (const stage of stages) {
    yield* server.set(stage.behaviour)
    if (stage.name === "recovered") {
      console.log(`  (waiting ${openFor} for the breaker to let probes through)`)
      yield* Effect.sleep(openFor)
    }
    const before = yield* server.served
    const tally: Record<string, number> = {}
    let slowest = 0
    for (let i = 0; i < stage.calls; i++) {
      const start = yield* Clock.currentTimeMillis
      const result = yield* Effect.either(client.get(`${server.url}/users/${i}`))
      slowest = Math.max(slowest, (yield* Clock.currentTimeMillis) - start)
      const outcome = Either.isRight(result)
        ? result.right.status < 300 ? "ok" : `gave up (${result.right.status})`
        : result.left._tag === "CircuitOpenError"
        ? "rejected by the open breaker"
        : result.left._tag
      tally[outcome] = (tally[outcome] ?? 0) + 1
    }
    const after = yield* server.served
    const served = Object.entries(after).map(([status, n]) => `${status}×${n - (before[Number(status)] ?? 0)}`)
      .filter((s) => !s.endsWith("×0"))
    console.log(`stage ${stage.name}: ${stage.calls} calls`)
    console.log(`  client saw:    ${Object.entries(tally).map(([k, n]) => `${k}: ${n}`).join(", ")}`)
    console.log(`  server served: ${served.join(", ") || "nothing"} (retries included)`)
    console.log(`  slowest call:  ${slowest} ms`)
  }
}).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layer))

/** One line per log entry (the breaker's state changes), indented under the stage it belongs to. */
const compact = Logger.make(({ logLevel, message }) => {
  const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
  console.log(`  ${logLevel.label.toLowerCase()}: ${text}`)
})

NodeRuntime.runMain(program.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, compact))), {
  disablePrettyLogger: true
})
