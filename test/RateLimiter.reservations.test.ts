/**
 * Reservations and their cancel, as golang.org/x/time/rate defines them, on the memory store:
 * x/time/rate's scenarios for the token bucket and GCRA, and waiters interrupted while they wait.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { makeTable } from "../src/internal/ratelimit/memory.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { algorithmsFor, definitionOf, type Driver, play, scenarios } from "./reservationScenarios.js"
import { settle } from "./support.js"

const memoryDriver = (algorithm: RateLimiter.Algorithm): Driver => {
  const table = makeTable(definitionOf(algorithm), { maxKeys: 10, idleTimeToLive: Infinity })
  return {
    step: async (t, n, maxDelay) => table.run("k", t, n, maxDelay),
    cancel: async (t, n, timeToAct) => table.cancel("k", t, n, timeToAct)
  }
}

describe("reservations (x/time/rate scenarios, memory store)", () => {
  for (const scenario of scenarios) {
    for (const [label, algorithm] of algorithmsFor(scenario)) {
      it(`${scenario.name}: ${label}`, async () => {
        expect(await play(scenario, memoryDriver(algorithm), 1_700_000_000_000_000)).toEqual([])
      })
    }
  }
})

describe("an interrupted waiter gives back what x/time/rate's Cancel gives back", () => {
  const waiting = [
    ["token bucket", RateLimiter.tokenBucket({ rate: 10, burst: 2 })],
    ["gcra", RateLimiter.gcra({ limit: 10, period: "1 second", burst: 2 })]
  ] as const
  for (const [label, algorithm] of waiting) {
    it.effect(label, () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: `wait-${label}`, algorithm, onExceeded: "wait" }).pipe(
          Effect.provide(RateLimiterStore.layerMemory())
        )
        yield* limiter.acquire("k", 2) // the burst, at t0
        const first = yield* Effect.fork(limiter.acquire("k", 2)) // acts at t2
        const second = yield* Effect.fork(limiter.acquire("k", 1)) // acts at t3, counting on the first's tokens
        yield* settle
        yield* TestClock.adjust("100 millis")
        // interrupted at t1: of its 2 tokens, the one the second waiter counts on stays taken
        yield* Fiber.interrupt(first)
        const third = yield* Effect.fork(limiter.acquire("k", 2))
        yield* settle
        yield* TestClock.adjust("199 millis") // t2.99
        expect(yield* Fiber.poll(second)).toMatchObject({ _tag: "None" })
        yield* TestClock.adjust("1 millis") // t3
        expect((yield* Fiber.await(second))._tag).toBe("Success")
        // tokens at t1: −3 + 1 refilled + 1 given back = −1; taking 2 more acts at t4 (t5 without the cancel)
        yield* TestClock.adjust("99 millis")
        expect(yield* Fiber.poll(third)).toMatchObject({ _tag: "None" })
        yield* TestClock.adjust("1 millis")
        expect((yield* Fiber.await(third))._tag).toBe("Success")
      }))
  }
})
