/**
 * Self-inflicted timeouts: a `TimeoutError` says why it happened (`reason`), and a circuit breaker
 * counts only the downstream's slowness as a failure — not the caller's own short deadline
 * (go-zero#4070) and not a timer the process's own event loop fired late.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, TestClock } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { TimeoutError } from "../src/Errors.js"
import * as Classify from "../src/internal/breaker/classify.js"
import { expiryReason, lagAllowance } from "../src/internal/deadline.js"
import * as Timeout from "../src/Timeout.js"

/**
 * The TestClock, except that every sleep wakes `lateBy` millis after it was due: a timer on an
 * event loop that was blocked or starved of CPU when it came due.
 */
const lateClock = (lateBy: number) =>
  Effect.map(Effect.clock, (clock): Clock.Clock => ({
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis(),
    unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos(),
    currentTimeMillis: clock.currentTimeMillis,
    currentTimeNanos: clock.currentTimeNanos,
    sleep: (duration) => clock.sleep(Duration.sum(duration, Duration.millis(lateBy)))
  }))

/** Runs `self` under a deadline `millis` from now, inherited (as from a request) with no timer of its own. */
const underDeadline = <A, E, R>(self: Effect.Effect<A, E, R>, millis: number) =>
  Effect.flatMap(
    Clock.currentTimeMillis,
    (now) => Effect.locally(self, Timeout.currentDeadline, now + millis)
  )

/** Runs `Effect.never` under `within(timeout)` on `clock`, advancing time past it; the error. */
const expire = (timeout: number, advance: number, clock?: Clock.Clock) =>
  Effect.gen(function*() {
    const work = Effect.never.pipe(Timeout.within(Duration.millis(timeout)), Effect.flip)
    const fiber = yield* Effect.fork(clock === undefined ? work : Effect.withClock(work, clock))
    yield* TestClock.adjust(Duration.millis(advance))
    return yield* Fiber.join(fiber)
  })

describe("TimeoutError reason", () => {
  it.effect("a timer that fires on time: reason timeout", () =>
    Effect.gen(function*() {
      const error = yield* expire(100, 100)
      expect(error.reason).toBe("timeout")
      expect(error.selfInflicted).toBe(false)
      expect(error.message).toBe("operation timed out after 100ms")
    }))

  it.effect("the caller's deadline shorter than the operation's timeout: reason deadline", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        underDeadline(
          Effect.never.pipe(Timeout.within({ duration: "1 second", operation: "charge" }), Effect.flip),
          300
        )
      )
      yield* TestClock.adjust("300 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(TimeoutError)
      expect(error.reason).toBe("deadline")
      expect(error.selfInflicted).toBe(true)
      expect(Duration.toMillis(error.duration)).toBe(300)
      expect(error.message).toBe("charge timed out after 300ms (the caller's deadline ran out)")
    }))

  it.effect("Timeout.deadline's own expiry is the operation's timeout; a longer deadline changes nothing", () =>
    Effect.gen(function*() {
      const own = yield* Effect.fork(Effect.never.pipe(Timeout.deadline("300 millis"), Effect.flip))
      const roomy = yield* Effect.fork(
        underDeadline(Effect.never.pipe(Timeout.within("100 millis"), Effect.flip), 5_000)
      )
      yield* TestClock.adjust("300 millis")
      expect((yield* Fiber.join(own)).reason).toBe("timeout")
      expect((yield* Fiber.join(roomy)).reason).toBe("timeout")
    }))

  it.effect("a deadline already spent fails at once with reason deadline", () =>
    Effect.gen(function*() {
      const exit = yield* underDeadline(Effect.exit(Timeout.within(Effect.succeed(1), "1 second")), 0)
      expect(exit).toStrictEqual(Exit.fail(new TimeoutError({ duration: Duration.zero, reason: "deadline" })))
    }))

  it.effect("a timer fired late by more than its share of the budget: reason lag, with how late", () =>
    Effect.gen(function*() {
      const error = yield* expire(100, 400, yield* lateClock(300))
      expect(error.reason).toBe("lag")
      expect(error.selfInflicted).toBe(true)
      expect(Duration.toMillis(error.lateBy!)).toBe(300)
      expect(error.message).toBe("operation timed out after 100ms (the event loop fired the timer late by 300ms)")
    }))

  it.effect("a timer late by no more than the allowance is ordinary jitter: reason timeout", () =>
    Effect.gen(function*() {
      // 400 ms budget: the allowance is 100 ms
      expect((yield* expire(400, 500, yield* lateClock(100))).reason).toBe("timeout")
      expect((yield* expire(400, 600, yield* lateClock(101))).reason).toBe("lag")
    }))

  it("the lag allowance: a quarter of the budget, at least 25 ms", () => {
    expect(lagAllowance(40)).toBe(25)
    expect(lagAllowance(100)).toBe(25)
    expect(lagAllowance(1_000)).toBe(250)
    expect(expiryReason(1_000, 1_000, 0, 1_250)).toBe("timeout")
    expect(expiryReason(1_000, 1_000, 0, 1_251)).toBe("lag")
    expect(expiryReason(1_000, 600, 0, 610)).toBe("deadline")
    // a late timer under a short deadline is lag: the process was slow either way
    expect(expiryReason(1_000, 600, 0, 1_000)).toBe("lag")
  })
})

describe("a circuit breaker and self-inflicted timeouts", () => {
  const policy = CircuitBreaker.consecutive({ name: "payments", threshold: 3, openFor: "10 seconds" })

  it("classifyError: a downstream timeout fails, a self-inflicted one counts as neither", () => {
    const always = () => true
    const duration = Duration.millis(100)
    expect(Classify.classifyError(new TimeoutError({ duration }), always, undefined)).toBe(Classify.FAILURE)
    expect(Classify.classifyError(new TimeoutError({ duration, reason: "timeout" }), always, undefined))
      .toBe(Classify.FAILURE)
    expect(Classify.classifyError(new TimeoutError({ duration, reason: "deadline" }), always, undefined))
      .toBe(Classify.IGNORE)
    expect(Classify.classifyError(new TimeoutError({ duration, reason: "lag" }), always, undefined))
      .toBe(Classify.IGNORE)
    // isFailure cannot turn a downstream timeout into a success
    expect(Classify.classifyError(new TimeoutError({ duration }), () => false, undefined)).toBe(Classify.FAILURE)
    expect(Classify.classifyReported(new TimeoutError({ duration, reason: "lag" }))).toBe(Classify.IGNORE)
  })

  it.scoped("timeouts of a slow downstream trip the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(policy)
      for (let i = 0; i < 3; i++) {
        const call = yield* Effect.fork(Effect.never.pipe(Timeout.within("100 millis"), breaker.protect, Effect.flip))
        yield* TestClock.adjust("100 millis")
        expect((yield* Fiber.join(call))._tag).toBe("TimeoutError")
      }
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("timeouts of the caller's own short deadline leave it Closed with nothing counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(policy)
      for (let i = 0; i < 10; i++) {
        // an inherited deadline (no timer of its own): the breaker sees reason "deadline"
        const inherited = yield* Effect.fork(
          underDeadline(Effect.never.pipe(Timeout.within("1 second"), breaker.protect, Effect.flip), 50)
        )
        // Timeout.deadline's own timer may fire first: the breaker sees an interruption
        const own = yield* Effect.fork(
          Effect.never.pipe(Timeout.within("1 second"), breaker.protect, Timeout.deadline("50 millis"), Effect.flip)
        )
        yield* TestClock.adjust("50 millis")
        expect((yield* Fiber.join(inherited)).reason).toBe("deadline")
        expect(yield* Fiber.join(own)).toBeInstanceOf(TimeoutError)
      }
      const stats = yield* breaker.stats
      expect(stats.state).toBe("Closed")
      expect(stats.failures).toBe(0)
    }))

  it.scoped("timeouts from a late event loop leave it Closed; on-time ones still trip it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(policy)
      const late = yield* lateClock(500)
      for (let i = 0; i < 10; i++) {
        const call = yield* Effect.fork(
          Effect.withClock(Effect.never.pipe(Timeout.within("100 millis"), breaker.protect, Effect.flip), late)
        )
        yield* TestClock.adjust("600 millis")
        expect((yield* Fiber.join(call)).reason).toBe("lag")
      }
      expect((yield* breaker.stats).failures).toBe(0)
      for (let i = 0; i < 3; i++) {
        const call = yield* Effect.fork(Effect.never.pipe(Timeout.within("100 millis"), breaker.protect, Effect.flip))
        yield* TestClock.adjust("100 millis")
        expect((yield* Fiber.join(call)).reason).toBe("timeout")
      }
      expect(yield* breaker.state).toBe("Open")
    }))
})
