import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream, TestClock } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { settle } from "./support.js"

/** Collects what `changes` emits into an array, from a fiber started (and subscribed) now. */
const watch = <A>(changes: Stream.Stream<A>) =>
  Effect.gen(function*() {
    const seen: Array<A> = []
    yield* Effect.forkScoped(Stream.runForEach(changes, (a) => Effect.sync(() => seen.push(a))))
    yield* settle
    return seen
  })

describe("live views", () => {
  it.scoped("a bulkhead's view follows every admission, queueing, rejection and release", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "view", maxConcurrent: 2, maxQueue: 1, queueTimeout: "1 second" })
      const seen = yield* watch(bulkhead.view.changes)
      const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const calls = []
      for (const gate of gates) {
        calls.push(yield* Effect.fork(bulkhead.protect(Deferred.await(gate))))
        yield* settle
      }
      yield* Effect.flip(bulkhead.protect(Effect.void)) // full: rejected
      yield* settle
      yield* Deferred.succeed(gates[0], undefined) // its permit goes to the queued call
      yield* settle
      yield* Deferred.succeed(gates[1], undefined)
      yield* Deferred.succeed(gates[2], undefined)
      yield* Effect.forEach(calls, Fiber.join)
      yield* settle
      const heavy = yield* Effect.fork(bulkhead.protectWeighted(2)(Effect.sleep("1 second")))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(heavy)
      yield* settle
      const states = seen.map((s) => [s.active, s.queued, s.rejected])
      expect(states).toEqual([
        [0, 0, 0], // at subscription
        [1, 0, 0],
        [2, 0, 0],
        [2, 1, 0], // queued
        [2, 1, 1], // rejected
        [2, 0, 1], // handed over to the queued call
        [1, 0, 1],
        [0, 0, 1],
        [2, 0, 1], // a weighted call holds two
        [0, 0, 1]
      ])
      expect(yield* bulkhead.view.get).toEqual(yield* bulkhead.stats)
    }))

  it.scoped("a breaker's view follows every state change, isolation and reset included", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "view", threshold: 2, openFor: "1 second", halfOpenMaxCalls: 1 })
      )
      const seen = yield* watch(breaker.view.changes)
      const fail = Effect.ignore(breaker.protect(Effect.fail("boom")))
      yield* fail
      yield* fail
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(Effect.void)
      yield* settle
      yield* breaker.isolate
      yield* settle
      yield* breaker.reset
      yield* settle
      expect(seen.map((s) => s.state)).toEqual(["Closed", "Open", "HalfOpen", "Closed", "Isolated", "Closed"])
      expect((yield* breaker.view.get).state).toBe("Closed")
    }))
})
