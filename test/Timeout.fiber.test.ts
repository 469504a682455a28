/**
 * `Timeout.within` runs the work on the caller's own fiber: a timeout must stop the work it wraps
 * (its finalizers included) and nothing else — the caller carries on with a `TimeoutError`, an
 * enclosing timeout or an interruption from outside still takes effect, and fibers the caller
 * started before are untouched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, FiberId, FiberRef, Option, Ref, TestClock } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { TimeoutError } from "../src/Errors.js"
import * as Timed from "../src/internal/timedRun.js"
import * as Timeout from "../src/Timeout.js"

setFlagsFromString("--expose-gc")
const collect = runInNewContext("gc") as () => void

const isTimeout = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause)) instanceof TimeoutError

/** After the call: the fiber goes on, sleeps and finishes normally (no interruption left behind). */
const carriesOn = Effect.zipRight(Effect.sleep("10 millis"), Effect.succeed("carried on"))

describe("Timeout.within on the caller's fiber", () => {
  it.effect("the ref of pending interruptions is the one Effect's fibers use; take-back removes by identity", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const seen = yield* Deferred.make<Cause.Cause<never>>()
      const fiber = yield* Effect.fork(Effect.uninterruptible(Effect.gen(function*() {
        yield* Deferred.succeed(started, undefined)
        // suspended, uninterruptible: interruptions sent now are only recorded
        yield* Effect.sleep("1 second")
        yield* Deferred.succeed(seen, yield* FiberRef.get(Timed.interruptedCause))
      })))
      yield* Deferred.await(started)
      const ours = FiberId.runtime(-8, 0)
      const theirs = FiberId.runtime(-9, 0)
      fiber.unsafeInterruptAsFork(ours)
      fiber.unsafeInterruptAsFork(theirs)
      yield* TestClock.adjust("1 second")
      const pending = yield* Deferred.await(seen)
      expect([...Cause.interruptors(pending)]).toEqual([ours, theirs])
      expect([...Cause.interruptors(Timed.withoutInterruptionsBy(pending, ours))]).toEqual([theirs])
      expect(Cause.isEmpty(Timed.withoutInterruptionsBy(Timed.withoutInterruptionsBy(pending, ours), theirs)))
        .toBe(true)
      // and the fiber ended by them once its uninterruptible region was over
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* Effect.withFiberRuntime((self) => Effect.succeed(Timed.usable(self)))).toBe(true)
    }))

  it.effect("nested timeouts due at the same instant, with a slow uninterruptible clean-up: the caller carries on", () =>
    Effect.gen(function*() {
      const cleaned = yield* Ref.make(0)
      // like a driver's query: interrupting it sends a cancel request that takes a while
      const query = Effect.never.pipe(
        Effect.onInterrupt(() => Effect.zipRight(Effect.sleep("50 millis"), Ref.update(cleaned, (n) => n + 1)))
      )
      const fiber = yield* Effect.fork(Effect.gen(function*() {
        const exit = yield* Effect.exit(query.pipe(Timeout.within("10 seconds"), Timeout.deadline("500 millis")))
        return [exit, yield* carriesOn] as const
      }))
      yield* TestClock.adjust("500 millis")
      yield* TestClock.adjust("50 millis")
      yield* TestClock.adjust("10 millis")
      const [exit, after] = yield* Fiber.join(fiber)
      expect(isTimeout(exit)).toBe(true)
      expect(after).toBe("carried on")
      expect(yield* Ref.get(cleaned)).toBe(1)
    }))

  it.effect("three levels due at once: the outermost's TimeoutError, one clean-up, and the caller carries on", () =>
    Effect.gen(function*() {
      const cleaned = yield* Ref.make(0)
      const work = Effect.never.pipe(
        Effect.onInterrupt(() => Effect.zipRight(Effect.sleep("5 millis"), Ref.update(cleaned, (n) => n + 1)))
      )
      const fiber = yield* Effect.fork(Effect.gen(function*() {
        const exit = yield* Effect.exit(
          work.pipe(Timeout.within("1 second"), Timeout.within("1 second"), Timeout.within("1 second"))
        )
        return [exit, yield* carriesOn] as const
      }))
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("20 millis")
      const [exit, after] = yield* Fiber.join(fiber)
      expect(isTimeout(exit)).toBe(true)
      expect(after).toBe("carried on")
      expect(yield* Ref.get(cleaned)).toBe(1)
    }))

  it.effect("an inner timeout caught inside an outer one due at the same instant: one outcome, never an interruption", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 10; i++) {
        const fiber = yield* Effect.fork(Effect.gen(function*() {
          const exit = yield* Effect.exit(
            Effect.never.pipe(
              Timeout.within({ duration: "10 seconds", operation: "inner" }),
              Effect.catchTag("TimeoutError", (e) => Effect.succeed(`caught ${e.operation}`)),
              Timeout.within({ duration: "1 second", operation: "outer" })
            )
          )
          return [exit, yield* carriesOn] as const
        }))
        yield* TestClock.adjust("1 second")
        yield* TestClock.adjust("10 millis")
        const [exit, after] = yield* Fiber.join(fiber)
        expect(after).toBe("carried on")
        if (Exit.isSuccess(exit)) expect(exit.value).toBe("caught inner")
        else expect((Option.getOrThrow(Cause.failureOption(exit.cause)) as TimeoutError).operation).toBe("outer")
      }
    }))

  it.effect("acquireRelease inside: the release runs, uninterruptibly, before the caller hears of the timeout", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const resource = Effect.acquireRelease(
        Effect.sync(() => log.push("acquired")),
        () => Effect.zipRight(Effect.sleep("100 millis"), Effect.sync(() => log.push("released")))
      )
      const fiber = yield* Effect.fork(Effect.gen(function*() {
        const exit = yield* Effect.exit(
          Effect.scoped(Effect.zipRight(resource, Effect.never)).pipe(
            Effect.ensuring(Effect.sync(() => log.push("ensured"))),
            Timeout.within("1 second")
          )
        )
        log.push(isTimeout(exit) ? "timeout" : "other")
        return yield* carriesOn
      }))
      yield* TestClock.adjust("1 second")
      expect(log).toEqual(["acquired"])
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toBe("carried on")
      expect(log).toEqual(["acquired", "released", "ensured", "timeout"])
    }))

  it.effect("work that catches every cause cannot catch the timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.never.pipe(
          Effect.catchAllCause(() => Effect.succeed("caught")),
          Timeout.within("1 second"),
          Effect.exit
        )
      )
      yield* TestClock.adjust("1 second")
      expect(isTimeout(yield* Fiber.join(fiber))).toBe(true)
    }))

  it.effect("the caller interrupted while waiting: the work's finalizers run and the interruption stands", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.ensuring(Ref.set(finalized, true)),
          Timeout.within("1 minute"),
          Effect.catchAllCause(() => Effect.succeed("swallowed"))
        )
      )
      yield* Deferred.await(started)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Ref.get(finalized)).toBe(true)
    }))

  it.effect("the caller interrupted while a timed-out work cleans up: the interruption stands, not the timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.never.pipe(
          Effect.onInterrupt(() => Effect.sleep("100 millis")),
          Timeout.within("1 second"),
          Effect.catchAll(() => Effect.succeed("timeout caught"))
        )
      )
      yield* TestClock.adjust("1 second")
      const interrupter = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("100 millis")
      const exit = yield* Fiber.join(interrupter)
      expect(Exit.isInterrupted(exit)).toBe(true)
    }))

  it.effect("a fiber the caller started before is not reached by the timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.gen(function*() {
        const sibling = yield* Effect.fork(Effect.as(Effect.sleep("5 seconds"), "sibling done"))
        const exit = yield* Effect.exit(Timeout.within(Effect.never, "1 second"))
        return [exit, yield* Fiber.join(sibling)] as const
      }))
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("4 seconds")
      const [exit, sibling] = yield* Fiber.join(fiber)
      expect(isTimeout(exit)).toBe(true)
      expect(sibling).toBe("sibling done")
    }))

  it.effect("fibers the work starts are interrupted with it", () =>
    Effect.gen(function*() {
      const childEnded = yield* Deferred.make<boolean>()
      const work = Effect.gen(function*() {
        yield* Effect.fork(
          Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(childEnded, true)))
        )
        return yield* Effect.never
      })
      const fiber = yield* Effect.fork(Effect.exit(Timeout.within(work, "1 second")))
      yield* TestClock.adjust("1 second")
      expect(isTimeout(yield* Fiber.join(fiber))).toBe(true)
      expect(yield* Deferred.await(childEnded)).toBe(true)
    }))

  it.effect("on a timeout the work's fiber-ref changes are undone and the deadline goes", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake("before")
      const fiber = yield* Effect.fork(Effect.gen(function*() {
        yield* Effect.exit(Timeout.within(Effect.zipRight(FiberRef.set(ref, "during"), Effect.never), "1 second"))
        return [yield* FiberRef.get(ref), yield* Timeout.remaining] as const
      }))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toEqual(["before", Option.none()])
    }))

  it.live("with the live clock: a timeout, then the fiber sleeps and finishes undisturbed", () =>
    Effect.gen(function*() {
      const cleaned = yield* Ref.make(0)
      const work = Effect.async<never>(() =>
        Effect.zipRight(Effect.sleep("20 millis"), Ref.update(cleaned, (n) => n + 1))
      )
      for (let i = 0; i < 5; i++) {
        const exit = yield* Effect.exit(work.pipe(Timeout.within("30 millis"), Timeout.deadline("30 millis")))
        expect(isTimeout(exit)).toBe(true)
        expect(yield* Effect.as(Effect.sleep("5 millis"), "slept")).toBe("slept")
      }
      expect(yield* Ref.get(cleaned)).toBe(5)
      // fast work under a live timer: the result, and no stray timer interrupts the fiber later
      const fast = Effect.async<number>((resume) => void setTimeout(() => resume(Effect.succeed(7)), 1))
      for (let i = 0; i < 20; i++) expect(yield* Timeout.within(fast, "15 millis")).toBe(7)
      expect(yield* Effect.as(Effect.sleep("40 millis"), "slept")).toBe("slept")
    }))

  it.live("a timed effect kept for later does not keep the fiber it last ran on", () =>
    Effect.gen(function*() {
      // built once and kept, as a module-level `call.pipe(Timeout.within(…))` is
      const timed = Timeout.within(Effect.succeed(1), "1 second")
      // a fiber of its own runs it twice (the second run takes the refs the first left), then ends
      let fiber: WeakRef<object> | undefined
      const twice = Effect.withFiberRuntime<number, TimeoutError>((own) => {
        fiber = new WeakRef(own)
        return Effect.zipRight(timed, timed)
      })
      expect(yield* Effect.promise(() => Effect.runPromiseExit(twice))).toEqual(Exit.succeed(1))
      // a macrotask later the weak reference no longer pins its target; then a full collection
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      collect()
      expect(fiber?.deref()).toBeUndefined()
      expect(yield* timed).toBe(1)
    }))
})
