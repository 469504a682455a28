/**
 * Recovery without user traffic (an active probe) and the admission ramp after a close, under
 * TestClock, with fixed random draws (`Random.fixed`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitOpenError, InvalidOptionsError } from "../src/Errors.js"

const boom = Effect.fail("boom" as const)
const ok = Effect.succeed("ok" as const)

/** A downstream the test heals: the probe fails until `healthy` is set, and counts its runs. */
const downstream = Effect.gen(function*() {
  const healthy = yield* Ref.make(false)
  const probes = yield* Ref.make(0)
  const probe = Effect.zipRight(
    Ref.update(probes, (n) => n + 1),
    Effect.flatMap(Ref.get(healthy), (h) => h ? Effect.void : Effect.fail("down"))
  )
  return { healthy, probes, probe }
})

const trip = (breaker: CircuitBreaker.CircuitBreaker, failures: number) =>
  Effect.repeatN(Effect.either(breaker.protect(boom)), failures - 1)

describe("active recovery probe", () => {
  it.scoped("closes within one probe interval of the downstream healing, with zero user calls", () =>
    Effect.gen(function*() {
      const d = yield* downstream
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({
          name: "probe-closes",
          threshold: 3,
          openFor: "10 minutes",
          probe: { effect: d.probe, every: "1 second" }
        })
      )
      // Closed: the probe does not run
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(d.probes)).toBe(0)
      yield* trip(breaker, 3)
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(d.probes)).toBe(5)
      expect(yield* breaker.state).toBe("Open")
      // heals half-way through an interval: the next probe closes the breaker
      yield* TestClock.adjust("300 millis")
      yield* Ref.set(d.healthy, true)
      yield* TestClock.adjust("700 millis")
      expect(yield* breaker.state).toBe("Closed")
      expect(yield* Ref.get(d.probes)).toBe(6)
      // Closed again: the probe waits
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(d.probes)).toBe(6)
      expect((yield* breaker.stats).lastErrors.length).toBe(5)
    }))

  it.scoped("halfOpenMaxCalls probes close it; a failed probe reopens a HalfOpen breaker", () =>
    Effect.gen(function*() {
      const d = yield* downstream
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({
          name: "probe-three",
          threshold: 1,
          openFor: "1 minute",
          halfOpenMaxCalls: 3,
          probe: { effect: d.probe, every: "1 second" }
        })
      )
      yield* trip(breaker, 1)
      yield* Ref.set(d.healthy, true)
      yield* TestClock.adjust("2 seconds")
      expect(yield* breaker.state).toBe("HalfOpen")
      yield* Ref.set(d.healthy, false)
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("Open")
      yield* Ref.set(d.healthy, true)
      yield* TestClock.adjust("3 seconds")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("a failing probe leaves an Open breaker's open period running", () =>
    Effect.gen(function*() {
      const d = yield* downstream
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({
          name: "probe-open-period",
          threshold: 1,
          openFor: "10 seconds",
          probe: { effect: d.probe, every: "3 seconds" }
        })
      )
      yield* trip(breaker, 1)
      yield* TestClock.adjust("9 seconds")
      expect(yield* Ref.get(d.probes)).toBe(3)
      // the open period still ends at 10 s: a user call is let through as a half-open probe
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("the adaptive breaker leaves Open at the first successful probe and closes on probes alone", () =>
    Effect.gen(function*() {
      const d = yield* downstream
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.sre({ name: "probe-sre", probe: { effect: d.probe, every: "500 millis" } })
      )
      yield* trip(breaker, 40)
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("3 seconds")
      expect(yield* breaker.state).toBe("Open")
      yield* Ref.set(d.healthy, true)
      // the first success ends the all-failure state: calls are dropped at random, no longer all
      yield* TestClock.adjust("500 millis")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect((yield* breaker.stats).dropRatio).toBeLessThan(1)
      // the failures leave the 10 s window; the probes' successes close the breaker
      yield* TestClock.adjust("8 seconds")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.effect("the probe fiber ends with the breaker's scope", () =>
    Effect.gen(function*() {
      const d = yield* downstream
      const scope = yield* Scope.make()
      const breaker = yield* Scope.extend(
        CircuitBreaker.make(
          CircuitBreaker.consecutive({
            name: "probe-scope",
            threshold: 1,
            probe: { effect: d.probe, every: "1 second" }
          })
        ),
        scope
      )
      yield* trip(breaker, 1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(d.probes)).toBe(2)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("10 seconds")
      expect(yield* Ref.get(d.probes)).toBe(2)
    }))

  it.scoped("a probe that dies counts as a failed probe; an isolated breaker is not probed", () =>
    Effect.gen(function*() {
      const probes = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({
          name: "probe-defect",
          threshold: 1,
          probe: { effect: Effect.zipRight(Ref.update(probes, (n) => n + 1), Effect.die("bug")), every: "1 second" }
        })
      )
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("Open")
      yield* breaker.isolate
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(probes)).toBe(1)
      expect(yield* breaker.state).toBe("Isolated")
    }))

  it.effect("bad probe options and a registry with a probe are refused", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(
        Effect.scoped(
          CircuitBreaker.make(CircuitBreaker.consecutive({ name: "bad", probe: { effect: ok, every: "0 millis" } }))
        )
      )
      expect(bad).toBeInstanceOf(InvalidOptionsError)
      expect(bad.option).toBe("probe.every")
      const notEffect = yield* Effect.flip(
        Effect.scoped(
          CircuitBreaker.make(CircuitBreaker.sre({ name: "bad", probe: { effect: 1 as any, every: "1 second" } }))
        )
      )
      expect(notEffect.option).toBe("probe.effect")
      const registry = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const r = yield* CircuitBreaker.makeRegistry({
          policy: (name) => CircuitBreaker.consecutive({ name, probe: { effect: ok, every: "1 second" } })
        })
        return yield* r.get("a")
      })))
      expect(Exit.isFailure(registry) && String(registry.cause)).toMatch(/registry's breakers run no probe/)
    }))
})

/** Opens then closes the breaker by a half-open probe call; returns when it is Closed. */
const tripAndClose = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    yield* trip(breaker, 1)
    yield* TestClock.adjust("10 seconds")
    expect(yield* breaker.protect(ok)).toBe("ok")
    expect(yield* breaker.state).toBe("Closed")
  })

/** Runs `self` with the random draw `u`. */
const drawing = (u: number) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.withRandom(self, Random.fixed([u]))

const rampPolicy = (name: string) =>
  CircuitBreaker.consecutive({ name, threshold: 1, openFor: "10 seconds", ramp: { from: 0.1, over: "10 seconds" } })

describe("admission ramp after close", () => {
  it.scoped("admits `from` at the close, growing linearly to every call; rejections say why", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(rampPolicy("ramp"))
      // Closed from the start: no ramp
      expect(yield* breaker.protect(ok).pipe(drawing(0.99))).toBe("ok")
      yield* tripAndClose(breaker)
      expect(yield* breaker.protect(ok).pipe(drawing(0.05))).toBe("ok")
      const refused = yield* Effect.flip(breaker.protect(ok).pipe(drawing(0.5)))
      expect(refused).toBeInstanceOf(CircuitOpenError)
      expect(refused.reason).toBe("ramp")
      expect(refused.state).toBe("HalfOpen")
      expect(refused.admitting).toBeCloseTo(0.1)
      expect(refused.message).toBe(`circuit breaker "ramp" is ramping up after closing, admitting 10 % of calls`)
      // half-way: 55 %
      yield* TestClock.adjust("5 seconds")
      expect(yield* breaker.protect(ok).pipe(drawing(0.54))).toBe("ok")
      expect((yield* Effect.flip(breaker.protect(ok).pipe(drawing(0.56)))).admitting).toBeCloseTo(0.55)
      // over: every call, whatever the draw
      yield* TestClock.adjust("5 seconds")
      expect(yield* breaker.protect(ok).pipe(drawing(0.99))).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* breaker.stats).rejections).toBe(2)
    }))

  it.scoped("about `from` of a burst passes at the close", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(rampPolicy("ramp-burst"))
      yield* tripAndClose(breaker)
      const results = yield* Effect.forEach(Array.from({ length: 2000 }), () => Effect.either(breaker.protect(ok)))
      const admitted = results.filter(Either.isRight).length
      expect(admitted).toBeGreaterThan(140)
      expect(admitted).toBeLessThan(260)
    }))

  it.scoped("a trip during the ramp ends it; the next close starts a new one; reset skips it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(rampPolicy("ramp-trip"))
      yield* tripAndClose(breaker)
      yield* Effect.either(breaker.protect(boom).pipe(drawing(0.01)))
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect((yield* Effect.flip(breaker.protect(ok).pipe(drawing(0.9)))).reason).toBe("ramp")
      yield* breaker.reset
      expect(yield* breaker.protect(ok).pipe(drawing(0.9))).toBe("ok")
    }))

  it.scoped("the two-step allow follows the ramp too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(rampPolicy("ramp-allow"))
      yield* tripAndClose(breaker)
      expect((yield* Effect.flip(breaker.allow.pipe(drawing(0.5)))).reason).toBe("ramp")
      const permit = yield* breaker.allow.pipe(drawing(0.01))
      yield* permit.success
    }))

  it.effect("a ramp from 0 or above 1 is refused", () =>
    Effect.gen(function*() {
      for (const from of [0, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(
          Effect.scoped(CircuitBreaker.make(CircuitBreaker.sre({ name: "bad", ramp: { from, over: "1 second" } })))
        )
        expect(error.option).toBe("ramp.from")
      }
    }))
})
