/**
 * A breaker that closes by itself and then ramps traffic back up: a downstream goes down, the
 * breaker trips and, with nobody calling it, its recovery probe checks the downstream every
 * 200 ms; once the downstream heals the next probe closes it. After the close the breaker admits
 * 10 % of calls, growing to all of them over one second. Exits when done.
 *
 *   npm run example:breaker-recovery
 */
import { Effect, Either, Logger, LogLevel, Ref } from "effect"
import { CircuitBreaker } from "../../src/index.js"

const program = Effect.gen(function*() {
  const healthy = yield* Ref.make(false)
  const probes = yield* Ref.make(0)
  const downstream = Effect.flatMap(Ref.get(healthy), (h) => h ? Effect.succeed("ok") : Effect.fail("down"))
  const breaker = yield* CircuitBreaker.make(
    CircuitBreaker.consecutive({
      name: "inventory",
      threshold: 3,
      openFor: "1 minute",
      probe: { effect: Effect.zipRight(Ref.update(probes, (n) => n + 1), downstream), every: "200 millis" },
      ramp: { from: 0.1, over: "1 second" }
    })
  )
  for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(downstream))
  console.log(`downstream down: breaker ${yield* breaker.state} after 3 failures (open for 1 minute)`)
  yield* Effect.sleep("700 millis")
  yield* Ref.set(healthy, true)
  const healedAt = Date.now()
  console.log(`downstream healed; ${yield* Ref.get(probes)} probes so far, no user call`)
  while ((yield* breaker.state) !== "Closed") yield* Effect.sleep("10 millis")
  console.log(`breaker Closed ${Date.now() - healedAt} ms after the downstream healed (probe every 200 ms)`)
  for (let step = 0; step < 5; step++) {
    const results = yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.either(breaker.protect(downstream)))
    const admitted = results.filter(Either.isRight).length
    console.log(`  ramp: ${Math.round(admitted / 2)} % of 200 calls admitted`)
    yield* Effect.sleep("250 millis")
  }
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None))

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
