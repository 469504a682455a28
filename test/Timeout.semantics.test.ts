import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, FiberRef, Metric, Option, Ref, Supervisor, TestClock } from "effect"
import { TimeoutError } from "../src/Errors.js"
import * as Timeout from "../src/Timeout.js"

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

const timeoutsOf = (operation: string) =>
  Metric.value(Metric.tagged(Timeout.timeoutsTotal, "name", operation)).pipe(Effect.map((state) => state.count))

describe("Timeout.within semantics", () => {
  it.effect("interrupting the caller waits for the work's finalizers to finish", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const caller = yield* Effect.fork(
        Effect.never.pipe(
          Effect.ensuring(Effect.zipRight(Effect.sleep("1 second"), Ref.set(finalized, true))),
          Timeout.within("1 minute")
        )
      )
      yield* TestClock.adjust("10 millis")
      const interrupter = yield* Effect.fork(Fiber.interrupt(caller))
      yield* TestClock.adjust("500 millis")
      expect(Option.isNone(yield* Fiber.poll(interrupter))).toBe(true)
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.join(interrupter)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Ref.get(finalized)).toBe(true)
    }))

  it.effect("a timed-out or interrupted call leaves no fiber alive", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const timedOut = yield* Effect.fork(
        Effect.never.pipe(Timeout.within("1 second"), Effect.supervised(supervisor), Effect.flip)
      )
      const interrupted = yield* Effect.fork(
        Effect.never.pipe(Timeout.within("1 minute"), Effect.supervised(supervisor))
      )
      yield* TestClock.adjust("10 millis")
      expect((yield* supervisor.value).length).toBeGreaterThan(0)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(timedOut)).toBeInstanceOf(TimeoutError)
      yield* Fiber.interrupt(interrupted)
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("timer and work due at the same instant: exactly one outcome, and a finished result is never lost", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 20; i++) {
        const completed = yield* Ref.make(false)
        const fiber = yield* Effect.fork(
          Effect.sleep("1 second").pipe(
            Effect.zipRight(Ref.set(completed, true)),
            Effect.as(i),
            Timeout.within("1 second"),
            Effect.exit
          )
        )
        yield* TestClock.adjust("1 second")
        const exit = yield* Fiber.join(fiber)
        if (Exit.isSuccess(exit)) {
          expect(exit.value).toBe(i)
          expect(yield* Ref.get(completed)).toBe(true)
        } else {
          expect(Cause.failureOption(exit.cause)).toEqual(Option.some(expect.any(TimeoutError)))
          // the work was interrupted before it finished: its result did not exist
          expect(yield* Ref.get(completed)).toBe(false)
        }
      }
    }))

  it.effect("uninterruptible work that outlives the timer is awaited, then reported as a timeout (as Effect.timeout does)", () =>
    Effect.gen(function*() {
      const before = yield* timeoutsOf("uninterruptible")
      const finished = yield* Ref.make(0)
      const work = Effect.sleep("3 seconds").pipe(
        Effect.zipRight(Ref.update(finished, (n) => n + 1)),
        Effect.uninterruptible
      )
      const ours = yield* Effect.fork(
        Effect.flip(Timeout.within(work, { duration: "1 second", operation: "uninterruptible" }))
      )
      const theirs = yield* Effect.fork(Effect.flip(Effect.timeout(work, "1 second")))
      yield* TestClock.adjust("1 second")
      expect(Option.isNone(yield* Fiber.poll(ours))).toBe(true)
      expect(Option.isNone(yield* Fiber.poll(theirs))).toBe(true)
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(ours)
      expect(error).toBeInstanceOf(TimeoutError)
      expect(yield* Fiber.join(theirs)).toBeInstanceOf(Cause.TimeoutException)
      // both ran to the end before the caller heard of the timeout
      expect(yield* Ref.get(finished)).toBe(2)
      expect(yield* timeoutsOf("uninterruptible")).toBe(before + 1)
    }))

  it.effect("a defect after suspending stays a defect, and the timer goes away", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const fiber = yield* Effect.fork(
        Effect.sleep("10 millis").pipe(
          Effect.zipRight(Effect.die("kaput")),
          Timeout.within("1 second"),
          Effect.supervised(supervisor),
          Effect.exit
        )
      )
      yield* TestClock.adjust("10 millis")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause) && !Cause.isFailType(exit.cause)).toBe(true)
      expect(Exit.isFailure(exit) && Option.isNone(Cause.failureOption(exit.cause))).toBe(true)
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("services, log annotations and the current span reach the work, synchronous or not", () =>
    Effect.gen(function*() {
      const observe = Effect.all([
        Greeting,
        Effect.map(Effect.currentSpan, (span) => span.name),
        Effect.map(FiberRef.get(FiberRef.currentLogAnnotations), (annotations) => annotations)
      ])
      const check = (work: typeof observe) =>
        work.pipe(
          Timeout.within("1 second"),
          Effect.annotateLogs("request", "r-1"),
          Effect.withSpan("outer"),
          Effect.provideService(Greeting, "hello")
        )
      const sync = yield* check(observe)
      const fiber = yield* Effect.fork(check(Effect.zipRight(Effect.sleep("10 millis"), observe)))
      yield* TestClock.adjust("10 millis")
      const async = yield* Fiber.join(fiber)
      for (const [greeting, span, annotations] of [sync, async]) {
        expect(greeting).toBe("hello")
        expect(span).toBe("outer")
        expect([...annotations].map(([k, v]) => [k, v])).toContainEqual(["request", "r-1"])
      }
    }))

  it.effect("fiber-ref changes flow back on success, like Effect.timeout, and not on failure", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake(0)
      const bump = (n: number) => Effect.zipRight(FiberRef.set(ref, n), Effect.sleep("10 millis"))
      const run = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Effect.zipRight(Effect.exit(effect), FiberRef.get(ref)))
          yield* TestClock.adjust("10 millis")
          // await, not join: joining would carry the fiber's refs into this test fiber
          return yield* Effect.flatten(Fiber.await(fiber))
        })
      expect(yield* run(Effect.timeout(bump(1), "1 second"))).toBe(1)
      expect(yield* run(Timeout.within(bump(2), "1 second"))).toBe(2)
      expect(yield* run(Timeout.within(Effect.zipRight(bump(3), Effect.fail("no")), "1 second"))).toBe(0)
      expect(yield* run(Effect.timeout(Effect.zipRight(bump(4), Effect.fail("no")), "1 second"))).toBe(0)
    }))

  it.effect("the work runs with the caller's interruptibility: inside uninterruptible it is not cut short", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.sleep("2 seconds").pipe(Effect.as("done"), Timeout.within("1 second"), Effect.uninterruptible)
      )
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(fiber)).toBe("done")
    }))

  it.effect("deeply nested timeouts do not overflow the stack", () =>
    Effect.gen(function*() {
      const nest = (n: number): Effect.Effect<number, TimeoutError> =>
        n === 0
          ? Effect.succeed(0)
          : Effect.map(Timeout.within(Effect.suspend(() => nest(n - 1)), "1 minute"), (depth) => depth + 1)
      expect(yield* nest(2000)).toBe(2000)
      const supervisor = yield* Supervisor.track
      expect(yield* Effect.supervised(nest(2000), supervisor)).toBe(2000)
      expect(yield* supervisor.value).toEqual([])
    }))
})
