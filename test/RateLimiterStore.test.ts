import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { makeTable } from "../src/internal/ratelimit/memory.js"
import * as TokenBucket from "../src/internal/ratelimit/tokenBucket.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"

describe("RateLimiterStore.layerMemory bounds", () => {
  it.effect("the key cap evicts the least recently used key", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({
        name: "cap",
        algorithm: RateLimiter.fixedWindow({ limit: 1, window: "1 hour" })
      }).pipe(Effect.provide(RateLimiterStore.layerMemory({ maxKeys: 3 })))
      yield* limiter.take("a")
      yield* limiter.take("b")
      yield* limiter.take("c")
      yield* TestClock.adjust("2 seconds")
      yield* limiter.take("a") // recently used again: moves to the back
      yield* limiter.take("d") // evicts b, the least recently used
      expect((yield* limiter.take("a")).allowed).toBe(false)
      expect((yield* limiter.take("c")).allowed).toBe(false)
      expect((yield* limiter.take("b")).allowed).toBe(true) // forgotten: fresh again
    }))

  it("idle keys expire with their state, bounded by idleTimeToLive", () => {
    const def = TokenBucket.make({ rate: 10, burst: 10 })
    const table = makeTable(def, { maxKeys: 1000, idleTimeToLive: Infinity })
    for (let i = 0; i < 100; i++) table.run(`k${i}`, 0, 1, 0)
    expect(table.size()).toBe(100)
    // refilled after 100 ms: every key is dead; each insertion sweeps two
    for (let i = 0; i < 60; i++) table.run(`n${i}`, 200_000, 1, 0)
    expect(table.size()).toBe(60)
    const short = makeTable(def, { maxKeys: 1000, idleTimeToLive: 5000 })
    short.run("a", 0, 10, 0)
    expect(short.run("a", 4000, 1, 0).allowed).toBe(false)
    // forgotten after 5 ms idle although the bucket would still be refilling
    expect(short.run("a", 10_000, 10, 0).allowed).toBe(true)
  })
})
