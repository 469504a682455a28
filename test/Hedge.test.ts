import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Ref, Supervisor, TestClock } from "effect"
import { InvalidOptionsError } from "../src/Errors.js"
import * as Hedge from "../src/Hedge.js"
import * as Retry from "../src/Retry.js"

/** Attempt i (0-based) sleeps `latencies[i]` then answers `answers[i]`; records starts and interruptions. */
const downstream = (latencies: ReadonlyArray<number>, answers: ReadonlyArray<"ok" | "fail"> = []) =>
  Effect.gen(function*() {
    const started = yield* Ref.make<Array<number>>([])
    const interrupted = yield* Ref.make<Array<number>>([])
    const counter = yield* Ref.make(0)
    const effect = Effect.gen(function*() {
      const i = yield* Ref.getAndUpdate(counter, (n) => n + 1)
      const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
      yield* Ref.update(started, (xs) => [...xs, now])
      yield* Effect.sleep(Duration.millis(latencies[i])).pipe(
        Effect.onInterrupt(() => Ref.update(interrupted, (xs) => [...xs, i]))
      )
      if ((answers[i] ?? "ok") === "fail") return yield* Effect.fail(`attempt ${i} failed`)
      return `attempt ${i}`
    })
    return { effect, started, interrupted }
  })

describe("Hedge", () => {
  it.effect("slow primary + fast hedge: the hedge wins and the primary is interrupted", () =>
    Effect.gen(function*() {
      const { effect, interrupted, started } = yield* downstream([1000, 50])
      const supervisor = yield* Supervisor.track
      const fiber = yield* Effect.fork(
        effect.pipe(Hedge.hedge({ delay: "100 millis" }), Effect.supervised(supervisor))
      )
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(started)).toEqual([0, 100])
      yield* TestClock.adjust("50 millis")
      expect(yield* Fiber.join(fiber)).toBe("attempt 1")
      expect(yield* Ref.get(interrupted)).toEqual([0])
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("counts the extra attempts in resilience_hedges_total{name}", () =>
    Effect.gen(function*() {
      const counter = Hedge.hedgesTotal.pipe(Metric.tagged("name", "counted-hedge"))
      const before = (yield* Metric.value(counter)).count
      const { effect } = yield* downstream([1000, 1000, 50])
      const fiber = yield* Effect.fork(
        effect.pipe(Hedge.hedge({ delay: "100 millis", maxAttempts: 3, name: "counted-hedge" }))
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("attempt 2")
      expect((yield* Metric.value(counter)).count - before).toBe(2)
    }))

  it.effect("a fast primary never starts a hedge", () =>
    Effect.gen(function*() {
      const { effect, started } = yield* downstream([30, 10])
      const fiber = yield* Effect.fork(effect.pipe(Hedge.hedge({ delay: "100 millis" })))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("attempt 0")
      expect(yield* Ref.get(started)).toEqual([0])
    }))

  it.effect("at most maxAttempts attempts, one more every delay", () =>
    Effect.gen(function*() {
      const { effect, started } = yield* downstream([1000, 1000, 1000, 1000])
      const fiber = yield* Effect.fork(effect.pipe(Hedge.hedge({ delay: "100 millis", maxAttempts: 3 })))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(fiber)).toBe("attempt 0")
      expect(yield* Ref.get(started)).toEqual([0, 100, 200])
    }))

  it.effect("a failed attempt starts the next at once; all failing returns the last failure", () =>
    Effect.gen(function*() {
      const { effect, started } = yield* downstream([10, 10, 10], ["fail", "fail", "fail"])
      const fiber = yield* Effect.fork(effect.pipe(Hedge.hedge({ delay: "1 second", maxAttempts: 3 })))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      expect(yield* Ref.get(started)).toEqual([0, 10, 20])
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(Option.some("attempt 2 failed"))
    }))

  it.effect("waits for a running attempt when an earlier one fails and no attempt is left", () =>
    Effect.gen(function*() {
      const { effect } = yield* downstream([500, 200], ["fail", "ok"])
      const fiber = yield* Effect.fork(effect.pipe(Hedge.hedge({ delay: "100 millis", maxAttempts: 2 })))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("attempt 1")
    }))

  it.effect("a spent budget stops hedging", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.makeBudget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" }) // one retry
      const hedge = yield* Hedge.make({ delay: "100 millis", maxAttempts: 3, budget })
      const first = yield* downstream([1000, 1000, 1000])
      const f1 = yield* Effect.fork(hedge.protect(first.effect))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(f1)
      expect(yield* Ref.get(first.started)).toEqual([0, 100]) // the third attempt found the budget spent
      const second = yield* downstream([1000, 1000])
      const f2 = yield* Effect.fork(hedge.protect(second.effect))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(f2)
      expect((yield* Ref.get(second.started)).length).toBe(1)
    }))

  it.effect("bad options: InvalidOptionsError from make, a defect from hedge", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Hedge.make({ delay: "-1 seconds" }))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe("delay")
      const attempts = yield* Effect.flip(Hedge.make({ delay: 10, maxAttempts: 0 }))
      expect(attempts.option).toBe("maxAttempts")
      const exit = yield* Effect.exit(Effect.succeed(1).pipe(Hedge.hedge({ delay: 10, maxAttempts: 1.5 })))
      expect(Exit.isFailure(exit) && Option.getOrUndefined(Cause.dieOption(exit.cause))).toBeInstanceOf(
        InvalidOptionsError
      )
    }))

  it.effect("interrupting the caller interrupts every attempt", () =>
    Effect.gen(function*() {
      const { effect, interrupted } = yield* downstream([1000, 1000])
      const ready = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(ready, undefined), effect.pipe(Hedge.hedge({ delay: "100 millis" })))
      )
      yield* Deferred.await(ready)
      yield* TestClock.adjust("150 millis")
      yield* Fiber.interrupt(fiber)
      expect((yield* Ref.get(interrupted)).sort()).toEqual([0, 1])
    }))

  it.effect("the winner's answer waits until the losers' finalizers have run", () =>
    Effect.gen(function*() {
      const cleaned = yield* Ref.make(false)
      const attempts = yield* Ref.make(0)
      const effect = Effect.flatMap(Ref.getAndUpdate(attempts, (n) => n + 1), (i) =>
        i === 0
          ? Effect.never.pipe(
            Effect.onInterrupt(() => Effect.zipRight(Effect.sleep("1 second"), Ref.set(cleaned, true)))
          )
          : Effect.as(Effect.sleep("10 millis"), "hedge"))
      const fiber = yield* Effect.fork(effect.pipe(Hedge.hedge({ delay: "100 millis" })))
      yield* TestClock.adjust("110 millis")
      // the hedge has answered, but the primary is still cleaning up
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("hedge")
      expect(yield* Ref.get(cleaned)).toBe(true)
    }))
})
