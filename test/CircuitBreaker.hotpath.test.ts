/**
 * The breaker's fast admission: one protected effect run again and again (its matched run is
 * reused while the breaker's generation stays), and Closed calls that do not read the clock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitOpenError } from "../src/Errors.js"

/** Work that fails while `state.failing`, counting its runs. */
const switchable = () => {
  const state = { failing: false, runs: 0 }
  const work = Effect.suspend(() => {
    state.runs++
    return state.failing ? Effect.fail("boom" as const) : Effect.succeed("ok" as const)
  })
  return { state, work }
}

describe("one protected effect run many times", () => {
  it.scoped("counts in the generation it runs in: after a trip and a close, its outcomes count again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "reused", threshold: 2, openFor: "10 seconds" })
      )
      const { state, work } = switchable()
      const call = breaker.protect(work)
      expect(yield* call).toBe("ok")
      expect((yield* breaker.stats).successes).toBe(1)
      state.failing = true
      yield* Effect.either(call)
      yield* Effect.either(call)
      expect(yield* breaker.state).toBe("Open")
      const runs = state.runs
      expect(rejected(yield* Effect.either(call))).toBe(true)
      expect(state.runs).toBe(runs)
      yield* TestClock.adjust("10 seconds")
      state.failing = false
      expect(yield* call).toBe("ok") // the half-open probe
      expect(yield* breaker.state).toBe("Closed")
      // the new generation: a success admitted with a stale token would be dropped
      expect(yield* call).toBe("ok")
      expect((yield* breaker.stats).successes).toBe(1)
      state.failing = true
      yield* Effect.either(call)
      yield* Effect.either(call)
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("run by many fibers at once: every outcome counts once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.countWindow({ name: "shared", size: 100 }))
      const gate = yield* Deferred.make<void>()
      const call = breaker.protect(Effect.as(Deferred.await(gate), 1))
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.fork(call))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(Fiber.all(fibers))
      expect(results.reduce((a, b) => a + b, 0)).toBe(20)
      const stats = yield* breaker.stats
      expect(stats.successes).toBe(20)
      expect(stats.requests).toBe(20)
    }))

  it.scoped("an interrupted run counts as neither; a defect counts as a failure and is passed on", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "edges", threshold: 2 }))
      const started = yield* Deferred.make<void>()
      let defect = false
      const call = breaker.protect(
        Effect.suspend(() =>
          defect ? Effect.die("bug") : Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
        )
      )
      const fiber = yield* Effect.fork(call)
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      expect((yield* breaker.stats).requests).toBe(0)
      defect = true
      const exit = yield* Effect.exit(call)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
      expect((yield* breaker.stats).failures).toBe(1)
      yield* Effect.exit(call)
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("nested: a protected effect inside another run of the same breaker counts twice", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "nested" }))
      const inner = breaker.protect(Effect.succeed(1))
      const outer = breaker.protect(Effect.map(inner, (n) => n + 1))
      expect(yield* outer).toBe(2)
      expect(yield* outer).toBe(2)
      expect((yield* breaker.stats).successes).toBe(4)
    }))

  it.scoped("the ramp after a close applies to it, and once over the plain admission is back", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({
          name: "ramp",
          threshold: 1,
          openFor: "10 seconds",
          ramp: { from: 0.1, over: "10 seconds" }
        })
      )
      const { state, work } = switchable()
      const call = breaker.protect(work)
      const drawing = (u: number) => Effect.withRandom(Random.fixed([u]))
      state.failing = true
      yield* Effect.either(call)
      yield* TestClock.adjust("10 seconds")
      state.failing = false
      expect(yield* call).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
      const refused = yield* Effect.flip(drawing(0.5)(call))
      expect(refused).toBeInstanceOf(CircuitOpenError)
      expect((refused as CircuitOpenError).reason).toBe("ramp")
      yield* TestClock.adjust("10 seconds")
      expect(yield* drawing(0.99)(call)).toBe("ok")
      expect(yield* call).toBe("ok")
    }))
})

describe("Closed calls that do not read the clock", () => {
  it.scoped("a time window still records successes at their time", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.timeWindow({ name: "window", window: "10 seconds", minimumCalls: 4, failureRateThreshold: 0.5 })
      )
      const { state, work } = switchable()
      const call = breaker.protect(work)
      yield* call
      yield* call
      yield* TestClock.adjust("11 seconds") // both successes leave the window
      yield* call
      yield* call
      state.failing = true
      yield* Effect.either(call)
      expect(yield* breaker.state).toBe("Closed") // 1 failure of 3 calls in the window
      yield* Effect.either(call)
      // 2 of 4: tripped; successes dated at an older time would have left the window (2 calls, too few)
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("a registry keeps a breaker called directly, dated by its next sweep", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name }),
        idleTimeToLive: "1 minute"
      })
      const breaker = yield* registry.get("direct")
      const call = breaker.protect(Effect.succeed(1))
      yield* TestClock.adjust("50 seconds")
      yield* call
      yield* TestClock.adjust("40 seconds") // 90 s: idle for 40 s only
      expect(yield* registry.names).toEqual(["direct"])
      yield* TestClock.adjust("60 seconds") // 150 s: idle for 100 s, past the TTL and the sweep after it
      expect(yield* registry.names).toEqual([])
    }))
})

const rejected = (result: Either.Either<unknown, unknown>): boolean =>
  Either.isLeft(result) && result.left instanceof CircuitOpenError
