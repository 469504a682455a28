import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Random, Ref, Schedule, TestClock } from "effect"
import * as Backoff from "../src/Backoff.js"
import { CircuitOpenError, InvalidOptionsError, RateLimitedError, RetryableError } from "../src/Errors.js"

/** The delays (millis) a schedule chooses for `n` consecutive failures. */
const delays = <Out, R>(schedule: Schedule.Schedule<Out, unknown, R>, n: number, input: unknown = "boom") =>
  Effect.map(
    Schedule.run(Schedule.delays(schedule), 0, Array.from({ length: n }, () => input)),
    (chunk) => Chunk.toReadonlyArray(chunk).map(Duration.toMillis)
  )

/** Retries a failing effect under TestClock and records the clock time of every attempt. */
const attemptTimes = <Out>(schedule: Schedule.Schedule<Out, unknown>, error: unknown = "boom") =>
  Effect.gen(function*() {
    const times = yield* Ref.make<Array<number>>([])
    const fiber = yield* Effect.fork(
      Effect.retry(
        Effect.flatMap(
          Effect.clockWith((c) => c.currentTimeMillis),
          (t) => Effect.zipRight(Ref.update(times, (ts) => [...ts, t]), Effect.fail(error))
        ),
        schedule
      )
    )
    yield* TestClock.adjust("1 hour")
    const exit = yield* fiber.await
    return { times: yield* Ref.get(times), exit }
  })

describe("Backoff delay sequences", () => {
  it.effect("constant", () =>
    Effect.gen(function*() {
      expect(yield* delays(Backoff.constant("250 millis"), 4)).toEqual([250, 250, 250, 250])
    }))

  it.effect("linear: base, base + step, … capped", () =>
    Effect.gen(function*() {
      expect(yield* delays(Backoff.linear("100 millis"), 4)).toEqual([100, 200, 300, 400])
      expect(yield* delays(Backoff.linear({ base: "100 millis", step: "50 millis", cap: "220 millis" }), 5))
        .toEqual([100, 150, 200, 220, 220])
    }))

  it.effect("exponential: base · factor^n, capped", () =>
    Effect.gen(function*() {
      expect(yield* delays(Backoff.exponential({ base: "100 millis" }), 6)).toEqual([100, 200, 400, 800, 1600, 3200])
      expect(yield* delays(Backoff.exponential({ base: "100 millis", factor: 3, cap: "1 second" }), 5))
        .toEqual([100, 300, 900, 1000, 1000])
    }))

  it.effect("exponential never overflows to Infinity", () =>
    Effect.gen(function*() {
      const ds = yield* delays(Backoff.exponential({ base: "1 second", cap: "30 seconds" }), 2000)
      expect(ds[1999]).toBe(30_000)
    }))

  it.effect("fibonacci: 1, 1, 2, 3, 5, 8 × base, capped", () =>
    Effect.gen(function*() {
      expect(yield* delays(Backoff.fibonacci("10 millis"), 7)).toEqual([10, 10, 20, 30, 50, 80, 130])
      expect(yield* delays(Backoff.fibonacci({ base: "10 millis", cap: "45 millis" }), 7))
        .toEqual([10, 10, 20, 30, 45, 45, 45])
    }))

  it.effect("decorrelatedJitter: uniform in [base, 3·previous), capped, from Random", () =>
    Effect.gen(function*() {
      // random 0.5: 100 + 0.5·(300 − 100) = 200; then 100 + 0.5·(600 − 100) = 350; …
      const ds = yield* delays(Backoff.decorrelatedJitter({ base: "100 millis", cap: "1 second" }), 4).pipe(
        Effect.withRandom(Random.fixed([0.5]))
      )
      expect(ds).toEqual([200, 350, 575, 912.5])
      const many = yield* delays(Backoff.decorrelatedJitter({ base: "100 millis", cap: "1 second" }), 500)
      let previous = 100
      for (const d of many) {
        expect(d).toBeGreaterThanOrEqual(100)
        expect(d).toBeLessThanOrEqual(Math.min(1000, previous * 3))
        previous = d
      }
      expect(new Set(many).size).toBeGreaterThan(100)
    }))

  it.effect("the schedule really waits those delays under Effect.retry", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes(Backoff.exponential({ base: "100 millis" }).pipe(Backoff.upTo(5)))
      expect(times).toEqual([0, 100, 300, 700, 1500])
    }))
})

describe("Backoff.jitter", () => {
  const draws = 2000
  it.effect("full: within [0, d) and actually spread", () =>
    Effect.gen(function*() {
      const ds = yield* delays(Backoff.constant("1 second").pipe(Backoff.jitter("full")), draws)
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(0)
      expect(Math.max(...ds)).toBeLessThan(1000)
      expect(Math.min(...ds)).toBeLessThan(100)
      expect(Math.max(...ds)).toBeGreaterThan(900)
    }))

  it.effect("equal: within [d/2, d)", () =>
    Effect.gen(function*() {
      const ds = yield* delays(Backoff.constant("1 second").pipe(Backoff.jitter("equal")), draws)
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(500)
      expect(Math.max(...ds)).toBeLessThan(1000)
      expect(Math.min(...ds)).toBeLessThan(550)
      expect(Math.max(...ds)).toBeGreaterThan(950)
    }))

  it.effect("a fraction: ±10 % around the delay", () =>
    Effect.gen(function*() {
      const ds = yield* delays(Backoff.exponential({ base: "1 second", factor: 1, jitter: 0.1 }), draws)
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(900)
      expect(Math.max(...ds)).toBeLessThan(1100)
      expect(Math.min(...ds)).toBeLessThan(910)
      expect(Math.max(...ds)).toBeGreaterThan(1090)
    }))

  it.effect("none leaves the delay alone; draws are exact under a fixed Random", () =>
    Effect.gen(function*() {
      expect(yield* delays(Backoff.constant("1 second").pipe(Backoff.jitter("none")), 3)).toEqual([1000, 1000, 1000])
      const ds = yield* delays(Backoff.exponential({ base: "100 millis" }).pipe(Backoff.jitter("full")), 3).pipe(
        Effect.withRandom(Random.fixed([0.25, 0.5, 0.75]))
      )
      expect(ds).toEqual([25, 100, 300])
    }))
})

describe("Backoff randomness comes from the Random service", () => {
  it.effect("the same seed gives the same jittered delays", () =>
    Effect.gen(function*() {
      const schedule = Backoff.exponential({ base: "100 millis", jitter: "full" })
      const a = yield* delays(schedule, 10).pipe(Effect.withRandom(Random.make("seed-1")))
      const b = yield* delays(schedule, 10).pipe(Effect.withRandom(Random.make("seed-1")))
      const c = yield* delays(schedule, 10).pipe(Effect.withRandom(Random.make("seed-2")))
      expect(a).toEqual(b)
      expect(a).not.toEqual(c)
    }))
})

describe("Backoff.upTo counts attempts", () => {
  it.effect("upTo(3) runs the effect three times in total (two retries)", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* attemptTimes(Backoff.constant("10 millis").pipe(Backoff.upTo(3)))
      expect(times).toEqual([0, 10, 20])
      expect(exit._tag).toBe("Failure")
    }))

  it.effect("upTo(1) never retries", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes(Backoff.constant("10 millis").pipe(Backoff.upTo(1)))
      expect(times).toEqual([0])
    }))
})

describe("Backoff.maxElapsed", () => {
  it.effect("takes a retry only while elapsed + delay stays within the budget", () =>
    Effect.gen(function*() {
      // retries start at 100, 300, 700; the next would start at 1500 > 1000
      const { times } = yield* attemptTimes(
        Backoff.exponential({ base: "100 millis" }).pipe(Backoff.maxElapsed("1 second"))
      )
      expect(times).toEqual([0, 100, 300, 700])
    }))
})

describe("Backoff.respectRetryAfter", () => {
  it.effect("waits at least the failure's retryAfter", () =>
    Effect.gen(function*() {
      const error = new CircuitOpenError({ breaker: "b", state: "Open", retryAfter: Duration.millis(750) })
      const { times } = yield* attemptTimes(
        Backoff.constant("100 millis").pipe(Backoff.respectRetryAfter, Backoff.upTo(3)),
        error
      )
      expect(times).toEqual([0, 750, 1500])
    }))

  it.effect("keeps the longer backoff when retryAfter is shorter, and ignores errors without one", () =>
    Effect.gen(function*() {
      const short = new RateLimitedError({
        limiter: "l",
        key: "k",
        limit: 1,
        remaining: 0,
        retryAfter: Duration.millis(5)
      })
      expect(yield* delays(Backoff.constant("100 millis").pipe(Backoff.respectRetryAfter), 2, short)).toEqual([
        100,
        100
      ])
      expect(yield* delays(Backoff.constant("100 millis").pipe(Backoff.respectRetryAfter), 2, "plain")).toEqual([
        100,
        100
      ])
      const wrapped = new RetryableError({ cause: "x", retryAfter: Duration.seconds(2) })
      expect(yield* delays(Backoff.constant("100 millis").pipe(Backoff.respectRetryAfter), 1, wrapped)).toEqual([2000])
    }))

  it.effect("applied after jitter, jitter cannot shorten the wait", () =>
    Effect.gen(function*() {
      const error = new RetryableError({ cause: "x", retryAfter: Duration.millis(500) })
      const ds = yield* delays(
        Backoff.constant("1 second").pipe(Backoff.jitter("full"), Backoff.respectRetryAfter),
        200,
        error
      )
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(500)
    }))
})

describe("Backoff options", () => {
  const invalid = (f: () => unknown, option: string) => {
    try {
      f()
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidOptionsError)
      expect((e as InvalidOptionsError).option).toBe(option)
      return
    }
    throw new Error("expected InvalidOptionsError")
  }
  it("bad options throw InvalidOptionsError naming the option", () => {
    invalid(() => Backoff.exponential({ base: "-1 seconds" }), "base")
    invalid(() => Backoff.exponential({ base: "1 second", factor: 0.5 }), "factor")
    invalid(() => Backoff.exponential({ base: 0 }), "base")
    invalid(() => Backoff.constant(Number.NaN), "delay")
    invalid(() => Backoff.decorrelatedJitter({ base: "2 seconds", cap: "1 second" }), "cap")
    invalid(() => Backoff.constant("1 second").pipe(Backoff.jitter(1.5)), "jitter")
    invalid(() => Backoff.constant("1 second").pipe(Backoff.upTo(0)), "attempts")
    invalid(() => Backoff.constant("1 second").pipe(Backoff.upTo(2.5)), "attempts")
    invalid(() => Backoff.constant("1 second").pipe(Backoff.maxElapsed(-5)), "duration")
    invalid(() => Backoff.fibonacci({ base: "1 second", jitter: "half" as never }), "jitter")
  })
})
