/**
 * What the cross-service features cost per call: a Closed state-machine breaker with a recovery
 * probe and a ramp configured (not ramping), while ramping (one random draw per call), and
 * following a quorum through Redis (the call path never touches Redis: the sync runs in its own
 * fiber); and per request through the HTTP client, over an in-process transport, with deadline
 * propagation and learned limits on and off, and learned limits shared through Redis (the call path
 * records what it heard for the next sync round; the round runs in its own fiber).
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { createClient } from "redis"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as CircuitBreakerCluster from "../src/CircuitBreakerCluster.js"
import { shareScript } from "../src/internal/learnedLimitsShare.js"
import type { RedisClient } from "../src/RedisStore.js"
import * as ResilientHttpClient from "../src/ResilientHttpClient.js"
import * as Timeout from "../src/Timeout.js"
import { redisServerMissing, startRedis } from "../test/integration/redisServer.js"
import { effectCase, printTable, runSuite, scopedEffectCase } from "./harness.js"

const succeed = Effect.succeed(1)
const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(self, LogLevel.None)

const breakerCase = (label: string, build: Effect.Effect<CircuitBreaker.CircuitBreaker, unknown, any>) =>
  scopedEffectCase(label, Effect.map(quiet(build), (b) => b.protect(succeed)))

/** A Redis that answers every sync round at once: a quorum never reached, one instance sharing. */
const answering: RedisClient = {
  evalsha: () => Promise.resolve([0, 0, 0]),
  scriptLoad: () => Promise.resolve("sha"),
  ping: () => Promise.resolve("PONG"),
  quit: () => Promise.resolve()
}

/** A breaker that tripped and closed again, so its ramp (from 100 %, over an hour) is running. */
const ramping = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make(
    CircuitBreaker.consecutive({
      name: "bench-ramping",
      threshold: 1,
      openFor: "1 millis",
      ramp: { from: 1, over: "1 hour" }
    })
  )
  yield* Effect.either(breaker.protect(Effect.fail("boom")))
  yield* Effect.sleep("5 millis")
  yield* breaker.protect(succeed)
  return breaker
})

await runSuite({
  name: "cross-service breakers (per call, Closed, success)",
  baseline: "consecutive.protect(succeed)",
  cases: [
    effectCase("bare Effect.succeed", succeed),
    breakerCase(
      "consecutive.protect(succeed)",
      CircuitBreaker.make(CircuitBreaker.consecutive({ name: "bench-plain" }))
    ),
    breakerCase(
      "consecutive + probe + ramp, not ramping",
      CircuitBreaker.make(CircuitBreaker.consecutive({
        name: "bench-probe",
        probe: { effect: Effect.void, every: "1 second" },
        ramp: { from: 0.1, over: "30 seconds" }
      }))
    ),
    breakerCase("consecutive while ramping (a random draw)", ramping),
    breakerCase(
      "consecutive in quorum(2) through Redis",
      CircuitBreakerCluster.make(CircuitBreaker.consecutive({ name: "bench-quorum" }), {
        mode: CircuitBreakerCluster.quorum(2),
        client: answering
      })
    )
  ],
  note: "Overhead against the plain breaker: the call path of each feature."
})

/** An in-process transport: every request gets the same empty 200 at once. */
const ok = new Response(null, { status: 200 })
const transport = HttpClient.make((request) => Effect.succeed(HttpClientResponse.fromWeb(request, ok)))
const withQuota = new Response(null, {
  status: 200,
  headers: { "ratelimit-remaining": "1000000000", "ratelimit-reset": "3600" }
})

const plain = { breaker: false, bulkhead: false, retry: false, timeout: false } as const

const clientCase = (
  label: string,
  options: ResilientHttpClient.Options,
  around: (self: Effect.Effect<unknown, unknown>) => Effect.Effect<unknown, unknown> = (self) => self
) =>
  scopedEffectCase(
    label,
    Effect.map(ResilientHttpClient.wrap(transport, options), (client) => around(client.get("http://api.local/users/1")))
  )

const withinDeadline = (self: Effect.Effect<unknown, unknown>) =>
  Effect.locally(self, Timeout.currentDeadline, Number.MAX_SAFE_INTEGER)

await runSuite({
  name: "cross-service HTTP client (per request, in-process transport)",
  baseline: "client, every stage off",
  cases: [
    clientCase("client, every stage off", { ...plain, propagateDeadline: false }),
    clientCase("+ deadline header, no deadline", plain),
    clientCase("+ deadline header, inside a deadline", plain, withinDeadline),
    clientCase("+ learned limits, host unknown", { ...plain, propagateDeadline: false, learnLimits: {} }),
    scopedEffectCase(
      "+ learned limits, host with quota",
      Effect.gen(function*() {
        const limits = yield* ResilientHttpClient.wrap(
          HttpClient.make((request) => Effect.succeed(HttpClientResponse.fromWeb(request, withQuota))),
          { ...plain, propagateDeadline: false, learnLimits: {} }
        )
        return limits.get("http://api.local/users/1")
      })
    ),
    scopedEffectCase(
      "+ learned limits shared through Redis, host with quota",
      Effect.gen(function*() {
        const limits = yield* ResilientHttpClient.wrap(
          HttpClient.make((request) => Effect.succeed(HttpClientResponse.fromWeb(request, withQuota))),
          { ...plain, propagateDeadline: false, learnLimits: { share: { client: answering } } }
        )
        return limits.get("http://api.local/users/1")
      })
    )
  ],
  note: "Overhead against the client with every stage off."
})

/**
 * Shared learned limits: what one sync round costs Redis, on a local redis-server, with three
 * instances that each publish every host each round (the worst case: a round sends only the hosts
 * heard since the last one). Redis's own time per script call comes from `INFO commandstats`.
 */
const syncRounds = async () => {
  if (redisServerMissing() !== undefined) return
  const redis = await startRedis()
  const client = createClient({ url: redis.url })
  await client.connect()
  try {
    const sha = await client.scriptLoad(shareScript)
    const rows: Array<Array<string>> = []
    for (const hosts of [1, 10, 100]) {
      await client.del("bench{upstream}")
      const argsFor = (instance: string) => {
        const args = [instance, "1500"]
        for (let h = 0; h < hosts; h++) args.push(`host-${h}.example:443`, "30", "60000", "100", "5")
        return args
      }
      const instances = ["a", "b", "c"]
      for (const i of instances) await client.evalSha(sha, { keys: ["bench{upstream}"], arguments: argsFor(i) })
      await client.configResetStat()
      const rounds = 1000
      const started = performance.now()
      for (let n = 0; n < rounds; n++) {
        await client.evalSha(sha, { keys: ["bench{upstream}"], arguments: argsFor(instances[n % 3]) })
      }
      const wall = (performance.now() - started) / rounds
      const stats = await client.info("commandstats")
      const perCall = /cmdstat_evalsha:.*usec_per_call=([\d.]+)/.exec(stats)?.[1] ?? "?"
      rows.push([`${hosts} × 3 instances`, `${perCall} µs`, `${(wall * 1000).toFixed(0)} µs`])
    }
    console.log("\n## shared learned limits: one sync round on redis-server\n")
    printTable(["hosts in the hash", "Redis time per round", "round trip (wall)"], rows)
    console.log("\nEach instance runs one round per `interval` (default 500 ms), outside the call path.")
  } finally {
    await client.quit().catch(() => undefined)
    await redis.stop()
  }
}

await syncRounds()
