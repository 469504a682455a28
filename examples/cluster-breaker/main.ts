/**
 * Three instances of a service share a breaker through Redis with `quorum(2)`: one instance seeing
 * the downstream fail opens only its own breaker; once a second one trips, the breaker opens on
 * all three (the third never called the failing downstream). Each then closes by its own probe.
 * Starts a throw-away `redis-server` on loopback unless `REDIS_URL` is set. Exits when done.
 *
 *   npm run example:cluster-breaker
 */
import { Effect, Logger, LogLevel, Ref } from "effect"
import { CircuitBreaker, CircuitBreakerCluster, RedisStore } from "../../src/index.js"
import * as Redis from "../shared/redisServer.js"

const failing = Effect.fail("payments down")

const program = Effect.gen(function*() {
  const url = yield* Redis.url
  const healthy = yield* Ref.make(false)
  const probe = Effect.flatMap(Ref.get(healthy), (h) => h ? Effect.void : failing)
  const instances = yield* Effect.forEach(
    ["a", "b", "c"],
    (instance) =>
      Effect.flatMap(RedisStore.connect(url), (client) =>
        CircuitBreakerCluster.make(
          CircuitBreaker.consecutive({
            name: "payments",
            threshold: 3,
            openFor: "1 minute",
            probe: { effect: probe, every: "1 second" }
          }),
          { mode: CircuitBreakerCluster.quorum(2), client, instance, interval: "100 millis" }
        ))
  )
  const [a, b, c] = instances
  const show = (label: string) =>
    Effect.flatMap(
      Effect.forEach(instances, (i) => i.state),
      (states) => Effect.sync(() => console.log(`${label.padEnd(44)} a=${states[0]} b=${states[1]} c=${states[2]}`))
    )
  yield* show("start")
  for (let i = 0; i < 3; i++) yield* Effect.either(a.protect(failing))
  yield* Effect.sleep("500 millis")
  yield* show("a saw 3 failures (quorum 2 not reached)")
  for (let i = 0; i < 3; i++) yield* Effect.either(b.protect(failing))
  yield* Effect.sleep("500 millis")
  yield* show("b saw 3 failures too (quorum reached)")
  // the downstream heals: each instance's probe (every second) closes its own breaker
  yield* Ref.set(healthy, true)
  yield* Effect.sleep("1500 millis")
  yield* show("downstream healed, probes succeeded")
  console.log(`c answered: ${yield* c.protect(Effect.succeed("charged"))}`)
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None))

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
