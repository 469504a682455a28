/**
 * `Timeout.within` on the host's clock, run again and again: the timer is a push on the shared
 * heap taken off when the work ends, and a run on the same fiber within the same millisecond
 * reuses the fiber refs of the previous run with its deadline. Each run must still see its own
 * deadline, leave none behind, keep the changes its work made, and leave no timer queued.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, FiberRef, Option } from "effect"
import { TimeoutError } from "../src/Errors.js"
import * as TimerHeap from "../src/internal/timerHeap.js"
import * as Timeout from "../src/Timeout.js"

const remainingMillis = Effect.map(Timeout.remaining, Option.map(Duration.toMillis))

describe("Timeout.within run many times on the host's clock", () => {
  it.live("each run sees its deadline and leaves none behind; no timer stays queued", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const call = Timeout.within(
        Effect.map(remainingMillis, (left) => seen.push(Option.getOrThrow(left))),
        "1 second"
      )
      for (let i = 0; i < 2_000; i++) yield* call
      expect(seen).toHaveLength(2_000)
      expect(seen.every((left) => left > 900 && left <= 1_000)).toBe(true)
      expect(yield* Timeout.remaining).toEqual(Option.none())
      expect(TimerHeap.size()).toBe(0)
      // async work: the timer is queued while it runs, and taken off when it ends
      const queued: Array<number> = []
      const slow = Timeout.within(
        Effect.zipRight(Effect.promise(() => Promise.resolve(queued.push(TimerHeap.size()))), Effect.void),
        "1 second"
      )
      for (let i = 0; i < 100; i++) yield* slow
      expect(queued.every((n) => n === 1)).toBe(true)
      expect(TimerHeap.size()).toBe(0)
    }))

  it.live("inside a deadline, nested in itself, and on two fibers at once", () =>
    Effect.gen(function*() {
      const inner = Timeout.within(remainingMillis, "1 second")
      const outer = Timeout.within(Effect.zip(remainingMillis, inner), "2 seconds")
      for (let i = 0; i < 50; i++) {
        const [outerLeft, innerLeft] = yield* outer.pipe(Timeout.deadline("1500 millis"))
        expect(Option.getOrThrow(outerLeft)).toBeLessThanOrEqual(1_500)
        expect(Option.getOrThrow(innerLeft)).toBeLessThanOrEqual(1_000)
        expect(yield* inner).toEqual(Option.some(expect.any(Number)))
      }
      expect(yield* Timeout.remaining).toEqual(Option.none())
      // one guarded effect on two fibers: the slow run times out, the fast one does not
      const gate = yield* Deferred.make<void>()
      const shared = Timeout.within(Deferred.await(gate), "50 millis")
      const slowFiber = yield* Effect.fork(shared)
      expect(yield* Effect.flip(Fiber.join(slowFiber))).toBeInstanceOf(TimeoutError)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(yield* Effect.fork(shared))).toBeUndefined()
      expect(TimerHeap.size()).toBe(0)
    }))

  it.live("fiber-ref changes of a successful run stay; the next run still gets its deadline and restores it", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake(0)
      const call = Timeout.within(
        Effect.zipRight(FiberRef.update(ref, (n) => n + 1), remainingMillis),
        "1 second"
      )
      for (let i = 1; i <= 5; i++) {
        expect(Option.isSome(yield* call)).toBe(true)
        expect(yield* FiberRef.get(ref)).toBe(i)
        expect(yield* Timeout.remaining).toEqual(Option.none())
      }
      // a failed run's changes are undone
      const failing = Timeout.within(Effect.zipRight(FiberRef.set(ref, 100), Effect.fail("boom" as const)), "1 second")
      expect(yield* Effect.flip(failing)).toBe("boom")
      expect(yield* FiberRef.get(ref)).toBe(5)
      // and a timed-out one's too, with the caller carrying on
      const stuck = Timeout.within(Effect.zipRight(FiberRef.set(ref, 200), Effect.never), "20 millis")
      expect(yield* Effect.flip(stuck)).toBeInstanceOf(TimeoutError)
      expect(yield* FiberRef.get(ref)).toBe(5)
      expect(yield* Effect.as(Effect.sleep("5 millis"), "carried on")).toBe("carried on")
      expect(TimerHeap.size()).toBe(0)
    }))
})
