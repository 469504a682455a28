/**
 * The adaptive algorithm on its own (go-zero's scenarios), then through the service under
 * TestClock and a seeded Random.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitOpenError } from "../src/Errors.js"
import * as Sre from "../src/internal/breaker/sre.js"

const params = (overrides: Partial<Sre.Params> = {}): Sre.Params => ({
  k: 1.5,
  minK: 1.1,
  protection: 5,
  forcePassAfterMillis: 1000,
  windowMillis: 10_000,
  buckets: 40,
  ...overrides
})

/** mulberry32: a tiny seeded generator for the pure tests */
const generator = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const decide = (state: Sre.State, now: number, random: () => number): boolean => {
  const d = Sre.decide(state, now)
  return (d === Sre.NEED_RANDOM ? Sre.decideWithRandom(state, now, random()) : d) === Sre.ADMIT
}

describe("sre algorithm (go-zero scenarios)", () => {
  it("10 buckets × 10 ms, k = 5: after 100,000 failures calls are rejected", () => {
    const state = Sre.make(params({ k: 5, minK: 1.1, windowMillis: 100, buckets: 10 }), 0)
    for (let i = 0; i < 100_000; i++) Sre.markFailure(state, 50)
    expect(Sre.dropRatio(state, 50)).toBe(1)
    expect(Sre.decide(state, 50)).toBe(Sre.REJECT)
  })

  it("with total < protection every call passes", () => {
    const state = Sre.make(params(), 0)
    for (let i = 0; i < 4; i++) Sre.markFailure(state, 10)
    const random = generator(1)
    for (let i = 0; i < 1000; i++) expect(decide(state, 20, random)).toBe(true)
  })

  it("drops a share close to the formula at least 75 times out of 100", () => {
    // 100 failures and 40 successes in the window: (140 − 5 − 1.5 · 40) / 141 ≈ 0.53
    const expected = (140 - 5 - 1.5 * 40) / 141
    const random = generator(7)
    let hits = 0
    for (let trial = 0; trial < 100; trial++) {
      const state = Sre.make(params(), 0)
      for (let i = 0; i < 100; i++) Sre.markFailure(state, 100)
      for (let i = 0; i < 40; i++) Sre.markSuccess(state, 100)
      // the last bucket is mixed, so neither run scales the ratio
      let dropped = 0
      for (let i = 0; i < 100; i++) {
        state.lastPass = 100 // keep the forced probe out of the measurement
        if (!decide(state, 100, random)) dropped++
      }
      if (Math.abs(dropped / 100 - expected) <= 0.1) hits++
    }
    expect(hits).toBeGreaterThanOrEqual(75)
  })

  it("a healthy window (more accepts than failures) never drops", () => {
    const state = Sre.make(params(), 0)
    const random = generator(3)
    for (let i = 0; i < 100; i++) Sre.markSuccess(state, 10)
    for (let i = 0; i < 30; i++) Sre.markFailure(state, 10)
    let admitted = 0
    for (let i = 0; i < 100; i++) if (decide(state, 20, random)) admitted++
    expect(admitted).toBe(100)
  })

  it("forces one probe through after forcePassAfter without a pass", () => {
    const state = Sre.make(params(), 0)
    for (let i = 0; i < 50; i++) Sre.markFailure(state, 0)
    expect(Sre.decide(state, 10)).toBe(Sre.REJECT)
    expect(Sre.decide(state, 999)).toBe(Sre.REJECT)
    expect(Sre.decide(state, 1000)).toBe(Sre.ADMIT)
    expect(Sre.decide(state, 1001)).toBe(Sre.REJECT)
    expect(Sre.retryAfterMillis(state, 1001)).toBe(999)
  })

  it("kEff falls towards minK while only failing buckets trail", () => {
    // 20 successes long ago, then failures in every later bucket: with k = 1.5 the ratio would be
    // (50 − 5 − 30) / 51; the failing run lowers kEff and raises the ratio.
    const state = Sre.make(params(), 0)
    for (let i = 0; i < 20; i++) Sre.markSuccess(state, 0)
    for (let t = 250; t < 10_000; t += 250) Sre.markFailure(state, t)
    const failures = 39
    const noRun = (20 + failures - 5 - 1.5 * 20) / (20 + failures + 1)
    expect(Sre.dropRatio(state, 9_900)).toBeGreaterThan(noRun)
  })

  it("does not count its own drops: successes after an outage close it at once", () => {
    const state = Sre.make(params(), 0)
    for (let i = 0; i < 50; i++) Sre.markFailure(state, 0)
    const random = generator(11)
    for (let i = 0; i < 10_000; i++) decide(state, 500, random) // all dropped
    expect(Sre.counts(state, 500).drops).toBe(10_000)
    Sre.markSuccess(state, 600) // one successful probe
    for (let i = 0; i < 40; i++) Sre.markSuccess(state, 700)
    // 50 failures vs 41 successes: (91 − 5 − 61.5) / 92 > 0 but small; with drops counted it'd be ≈ 1
    expect(Sre.dropRatio(state, 700)).toBeLessThan(0.3)
    const goZero = Sre.make(params({ countDrops: true }), 0)
    for (let i = 0; i < 50; i++) Sre.markFailure(goZero, 0)
    for (let i = 0; i < 10_000; i++) decide(goZero, 500, random)
    for (let i = 0; i < 41; i++) Sre.markSuccess(goZero, 700)
    expect(Sre.dropRatio(goZero, 700)).toBeGreaterThan(0.9)
  })
})

const failing = Effect.fail("boom" as const)

describe("CircuitBreaker.sre", () => {
  it.scoped("opens after sustained failures, rejecting with Open and retryAfter ≤ forcePassAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "sre-open" }))
      let reached = 0
      const call = breaker.protect(Effect.suspend(() => {
        reached++
        return failing
      }))
      for (let i = 0; i < 5; i++) expect(yield* Effect.either(call)).toEqual(Either.left("boom"))
      const results = []
      for (let i = 0; i < 100; i++) results.push(yield* Effect.either(call))
      const rejected = results.filter((r) => Either.isLeft(r) && r.left instanceof CircuitOpenError)
      expect(rejected.length).toBeGreaterThanOrEqual(90)
      expect(reached).toBeLessThan(20)
      const error = (rejected.at(-1) as Either.Left<CircuitOpenError, never>).left
      expect(error.breaker).toBe("sre-open")
      expect(error.state).toBe("Open")
      expect(error.retryAfter).toBeDefined()
      expect(Duration.toMillis(error.retryAfter!)).toBeLessThanOrEqual(1000)
      expect(yield* breaker.state).toBe("Open")
      const stats = yield* breaker.stats
      expect(stats.rejections).toBe(rejected.length)
      expect(stats.failures).toBe(reached)
      expect(stats.dropRatio).toBe(1)
    }).pipe(Effect.withRandom(Random.make(1))))

  it.scoped("lets a forced probe through after 1 s, and recovers as soon as probes succeed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "sre-probe" }))
      let healthy = false
      let reached = 0
      const call = Effect.either(breaker.protect(Effect.suspend(() => {
        reached++
        return healthy ? Effect.succeed("ok") : failing
      })))
      for (let i = 0; i < 50; i++) yield* call
      expect(yield* breaker.state).toBe("Open")
      const before = reached
      yield* TestClock.adjust("999 millis")
      yield* call
      expect(reached).toBe(before)
      yield* TestClock.adjust("1 milli")
      healthy = true
      expect(yield* call).toEqual(Either.right("ok"))
      expect(reached).toBe(before + 1)
      // the probe's success ends the all-failure state; successes quickly outweigh the failures
      let admitted = 0
      for (let step = 0; step < 20; step++) {
        yield* TestClock.adjust("10 millis")
        for (let i = 0; i < 10; i++) if (Either.isRight(yield* call)) admitted++
      }
      expect(admitted).toBeGreaterThanOrEqual(150)
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 100; i++) expect(Either.isRight(yield* call)).toBe(true)
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Effect.withRandom(Random.make(2))))

  it.scoped("the same seed gives the same decisions (Random, not Math.random)", () =>
    Effect.gen(function*() {
      const run = Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "sre-seeded" }))
        const outcomes: Array<boolean> = []
        let i = 0
        for (let n = 0; n < 300; n++) {
          const fail = i++ % 3 !== 0
          const r = yield* Effect.either(breaker.protect(fail ? failing : Effect.succeed(1)))
          outcomes.push(Either.isLeft(r) && r.left instanceof CircuitOpenError)
        }
        return outcomes
      })
      const a = yield* run.pipe(Effect.withRandom(Random.make(42)))
      const b = yield* run.pipe(Effect.withRandom(Random.make(42)))
      expect(a).toEqual(b)
      expect(a.filter(Boolean).length).toBeGreaterThan(0)
    }))
})

describe("CircuitBreaker.sre two-step", () => {
  it.scoped("allow / permit drive the same algorithm", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "sre-permit" }))
      for (let i = 0; i < 20; i++) yield* Effect.flatMap(breaker.allow, (p) => p.success)
      // with successes in the window the breaker throttles at random (HalfOpen) before opening
      const states: Array<string> = []
      let reached = 0
      for (let i = 0; i < 300; i++) {
        const r = yield* Effect.either(breaker.allow)
        if (Either.isRight(r)) {
          reached++
          yield* r.right.failure(new Error(`e${i}`))
        } else {
          states.push(r.left.state)
        }
      }
      expect(states).toContain("HalfOpen")
      expect(reached).toBeGreaterThan(15)
      expect(reached).toBeLessThan(150)
      const stats = yield* breaker.stats
      expect(stats.failures).toBe(reached)
      expect(stats.rejections).toBe(states.length)
      expect(stats.lastErrors).toHaveLength(5)
    }).pipe(Effect.withRandom(Random.make(9))))
})

describe("CircuitBreaker.sre state reporting", () => {
  it.scoped("a ratio hovering around zero does not flood `changes`", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "sre-hover" }))
      // 101 failures in 300 calls, spread evenly: right at the k = 1.5 boundary, where the ratio hovers near zero
      let i = 0
      const call = Effect.either(
        breaker.protect(Effect.suspend(() => ((i++ * 101) % 300 < 101 ? failing : Effect.succeed(1))))
      )
      for (let step = 0; step < 1000; step++) {
        for (let n = 0; n < 10; n++) yield* call
        yield* TestClock.adjust("10 millis")
      }
      const states = ["Closed", "HalfOpen", "Open"] as const
      let changes = 0
      for (const from of states) {
        for (const to of states) {
          const counter = Metric.counter("resilience_breaker_state_changes_total").pipe(
            Metric.tagged("name", "sre-hover"),
            Metric.tagged("from", from),
            Metric.tagged("to", to)
          )
          changes += (yield* Metric.value(counter)).count
        }
      }
      expect((yield* breaker.stats).rejections).toBeGreaterThan(0) // it did throttle at times
      expect(changes).toBeLessThanOrEqual(2 * 10 + 1) // at most two per second over 10 s
    }).pipe(Effect.withRandom(Random.make(5))))
})
