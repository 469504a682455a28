/**
 * `breaker.tryPromise`: decided as `protect` decides, the outcome recorded when the promise
 * settles, at no runtime step beyond `Effect.tryPromise`'s own.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Stream, TestClock } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitOpenError } from "../src/Errors.js"
import * as ResilienceMode from "../src/ResilienceMode.js"
import { failureOf, runtimeStepsOf, settle, waitForPromises } from "./support.js"

const boom = () => Promise.reject(new Error("boom"))
const ok = () => Promise.resolve("ok")

/** A promise that never settles by itself: rejects when its signal aborts, or when told to. */
const pending = () => {
  let reject!: (e: unknown) => void
  let started = 0
  const promise = new Promise<string>((_, rej) => {
    reject = rej
  })
  return {
    withSignal: (signal: AbortSignal) => {
      started++
      signal.addEventListener("abort", () => reject(new Error("aborted")))
      return promise
    },
    withoutSignal: () => {
      started++
      return promise
    },
    reject: (e: unknown) => reject(e),
    get started() {
      return started
    }
  }
}

const consecutive = (name: string, threshold: number) =>
  CircuitBreaker.make(CircuitBreaker.consecutive({ name, threshold, openFor: "10 seconds" }))

describe("CircuitBreaker.tryPromise", () => {
  it.scoped("records successes and failures, opens at the threshold and then rejects without starting the promise", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-open", 2)
      expect(yield* breaker.tryPromise(ok)).toBe("ok")
      const failure = failureOf(yield* Effect.exit(breaker.tryPromise(boom)))
      expect(failure).toBeInstanceOf(Cause.UnknownException)
      expect(yield* breaker.stats).toMatchObject({ state: "Closed", successes: 1, failures: 1 })
      yield* Effect.exit(breaker.tryPromise(boom))
      expect(yield* breaker.state).toBe("Open")
      let started = 0
      const rejected = yield* Effect.exit(breaker.tryPromise(() => {
        started++
        return Promise.resolve(1)
      }))
      expect(failureOf(rejected)).toBeInstanceOf(CircuitOpenError)
      expect(started).toBe(0)
      // the counts start again with the new state; the errors that tripped it are kept
      const stats = yield* breaker.stats
      expect(stats).toMatchObject({ state: "Open", rejections: 1 })
      expect(stats.lastErrors).toHaveLength(2)
    }))

  it.scoped("`catch` maps the rejection and `isFailure` judges the mapped error", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-isfailure", 1)
      const notFound = { _tag: "NotFound" as const }
      const exit = yield* Effect.exit(
        breaker.tryPromise({ try: boom, catch: () => notFound }, { isFailure: (e) => e._tag !== "NotFound" })
      )
      expect(failureOf(exit)).toBe(notFound)
      // judged a success: the downstream answered
      expect(yield* breaker.state).toBe("Closed")
      expect(yield* breaker.stats).toMatchObject({ successes: 1, failures: 0 })
      yield* Effect.exit(breaker.tryPromise({ try: boom, catch: () => "down" as const }))
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("a `catch` that throws is a defect, which counts as a failure", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-catch-defect", 1)
      const exit = yield* Effect.exit(breaker.tryPromise({
        try: boom,
        catch: () => {
          throw new Error("mapping failed")
        }
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("an interrupted caller aborts the signal, and the aborted promise counts as neither", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-abort", 1)
      const call = pending()
      const fiber = yield* Effect.fork(breaker.tryPromise(call.withSignal))
      yield* settle
      yield* Fiber.interrupt(fiber)
      yield* waitForPromises
      expect(yield* breaker.state).toBe("Closed")
      expect(yield* breaker.stats).toMatchObject({ successes: 0, failures: 0 })
    }))

  it.scoped("a caller interrupted before its promise settled counts as neither, with or without a signal", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-orphan", 1)
      const call = pending()
      const fiber = yield* Effect.fork(breaker.tryPromise(call.withoutSignal))
      yield* settle
      yield* Fiber.interrupt(fiber)
      call.reject(new Error("down"))
      yield* waitForPromises
      expect(yield* breaker.stats).toMatchObject({ state: "Closed", successes: 0, failures: 0 })
      // a late success after an abort is not counted either
      let resolveLate!: (s: string) => void
      const late = yield* Effect.fork(breaker.tryPromise((signal: AbortSignal) => {
        expect(signal.aborted).toBe(false)
        return new Promise<string>((resolve) => {
          resolveLate = resolve
        })
      }))
      yield* settle
      yield* Fiber.interrupt(late)
      resolveLate("late")
      yield* waitForPromises
      expect(yield* breaker.stats).toMatchObject({ successes: 0, failures: 0 })
    }))

  it.scoped("a trip is published on `changes` by the tripping call itself (no later call or read needed)", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-publish", 1)
      const seen = yield* Effect.fork(Stream.runHead(breaker.changes))
      yield* settle
      yield* Effect.exit(breaker.tryPromise(boom))
      yield* settle
      const change = yield* Fiber.poll(seen)
      expect(Option.isSome(change)).toBe(true)
      expect(yield* Fiber.join(seen)).toEqual(Option.some(expect.objectContaining({ from: "Closed", to: "Open" })))
    }))

  it.scoped("an `isFailure` that throws is a defect of the call, not a hang", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-isfailure-throws", 5)
      const exit = yield* Effect.exit(breaker.tryPromise(boom, {
        isFailure: () => {
          throw new Error("predicate failed")
        }
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }))

  it.scoped("a function of no arguments is called with none, as Effect.tryPromise calls it", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-arity", 5)
      let received = -1
      yield* breaker.tryPromise((...args: Array<unknown>) => {
        received = args.length
        return Promise.resolve(1)
      })
      expect(received).toBe(0)
    }))

  it.scoped("slow-call tracking and isolation go the way protect goes", () =>
    Effect.gen(function*() {
      const timed = yield* CircuitBreaker.make(CircuitBreaker.countWindow({
        name: "promise-timed",
        size: 2,
        minimumCalls: 2,
        failureRateThreshold: 0.5,
        slowCallDuration: "1 second",
        slowCallRateThreshold: 0.5
      }))
      expect(yield* timed.tryPromise(ok)).toBe("ok")
      expect(yield* timed.stats).toMatchObject({ successes: 1 })
      const isolated = yield* consecutive("promise-isolated", 5)
      yield* isolated.isolate
      expect(failureOf(yield* Effect.exit(isolated.tryPromise(ok)))).toBeInstanceOf(CircuitOpenError)
    }))

  it.scoped("after the open period a promise is the half-open probe, and its success closes the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-probe", 1)
      yield* Effect.exit(breaker.tryPromise(boom))
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.tryPromise(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("the adaptive breaker drops calls once the downstream fails, and lets them through again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "promise-sre", protection: 5 }))
      const exits = yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.exit(breaker.tryPromise(boom)))
      const dropped = exits.filter((exit) => failureOf(exit) instanceof CircuitOpenError).length
      expect(dropped).toBeGreaterThan(100)
      yield* TestClock.adjust("11 seconds")
      expect(yield* breaker.tryPromise(ok)).toBe("ok")
    }))

  it.scoped("a shadowed open breaker runs the promise anyway", () =>
    Effect.gen(function*() {
      const breaker = yield* consecutive("promise-shadow", 1)
      yield* ResilienceMode.setShadow(false)
      yield* Effect.exit(breaker.tryPromise(boom))
      expect(yield* breaker.state).toBe("Open")
      yield* ResilienceMode.setShadow(true)
      expect(yield* breaker.tryPromise(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Open")
    }).pipe(Effect.provide(ResilienceMode.layerShadow(true))))
})

describe("CircuitBreaker.tryPromise: cost", () => {
  it.scoped("takes one runtime step more than Effect.tryPromise while Closed, protect two", () =>
    Effect.gen(function*() {
      const consecutiveBreaker = yield* consecutive("promise-steps", 5)
      const sreBreaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "promise-steps-sre" }))
      const bare = yield* runtimeStepsOf(Effect.tryPromise(ok))
      expect(bare).toBeGreaterThan(0)
      // one step records the outcome on the caller's fiber; protect takes one more to enter the work
      expect(yield* runtimeStepsOf(consecutiveBreaker.tryPromise(ok))).toBe(bare + 1)
      expect(yield* runtimeStepsOf(sreBreaker.tryPromise(ok))).toBe(bare + 1)
      expect(yield* runtimeStepsOf(consecutiveBreaker.protect(Effect.tryPromise(ok)))).toBe(bare + 2)
    }))
})
