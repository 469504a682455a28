import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { BulkheadFullError } from "../src/Errors.js"
import { failureOf, runtimeStepsOf, settle, waitForPromises } from "./support.js"

/** A promise settled from outside, counting how often it was started. */
const manual = <A = string>() => {
  let resolve!: (a: A) => void
  let reject!: (e: unknown) => void
  let signal: AbortSignal | undefined
  let started = 0
  const promise = new Promise<A>((res, rej) => {
    resolve = res
    reject = rej
  })
  return {
    start: () => {
      started++
      return promise
    },
    startWithSignal: (s: AbortSignal) => {
      started++
      signal = s
      s.addEventListener("abort", () => reject(new Error("aborted")))
      return promise
    },
    resolve: (a: A) => resolve(a),
    reject: (e: unknown) => reject(e),
    get started() {
      return started
    },
    get signal() {
      return signal
    }
  }
}

describe("Bulkhead.tryPromise", () => {
  it.scoped("holds a permit while the promise runs and gives it back when it resolves", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-ok", maxConcurrent: 2 })
      const call = manual()
      const fiber = yield* Effect.fork(bulkhead.tryPromise(call.start))
      yield* settle
      expect(call.started).toBe(1)
      expect((yield* bulkhead.stats).active).toBe(1)
      call.resolve("done")
      expect(yield* Fiber.join(fiber)).toBe("done")
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("a rejected promise fails with UnknownException, or with what `catch` makes of it", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-fail", maxConcurrent: 1 })
      const boom = new Error("boom")
      const plain = yield* Effect.exit(bulkhead.tryPromise(() => Promise.reject(boom)))
      const unknown = failureOf(plain)
      expect(unknown).toBeInstanceOf(Cause.UnknownException)
      expect((unknown as Cause.UnknownException).error).toBe(boom)
      const mapped = yield* Effect.exit(
        bulkhead.tryPromise({ try: () => Promise.reject(boom), catch: (e) => `mapped: ${(e as Error).message}` })
      )
      expect(failureOf(mapped)).toBe("mapped: boom")
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("a function that throws before returning a promise fails the call and frees the permit", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-throw", maxConcurrent: 1 })
      const exit = yield* Effect.exit(bulkhead.tryPromise((): Promise<number> => {
        throw new Error("sync")
      }))
      expect(failureOf(exit)).toBeInstanceOf(Cause.UnknownException)
      expect((yield* bulkhead.stats).active).toBe(0)
      expect(yield* bulkhead.tryPromise(() => Promise.resolve(7))).toBe(7)
    }))

  it.scoped("something other than a promise fails the call, and a thenable calling back twice frees one permit", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-not-thenable", maxConcurrent: 2 })
      const exit = yield* Effect.exit(bulkhead.tryPromise(() => undefined as unknown as Promise<number>))
      expect(failureOf(exit)).toBeInstanceOf(Cause.UnknownException)
      expect((yield* bulkhead.stats).active).toBe(0)
      const twice: PromiseLike<number> = {
        then: ((onFulfilled: (n: number) => void, onRejected: (e: unknown) => void) => {
          onFulfilled(1)
          onRejected(new Error("again"))
          throw new Error("and throws")
        }) as PromiseLike<number>["then"]
      }
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
      yield* settle
      expect(yield* bulkhead.tryPromise(() => twice)).toBe(1)
      // the holder's permit is still taken, the thenable's came back once
      expect((yield* bulkhead.stats).active).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("a `catch` that throws is a defect, and the permit still comes back", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-catch-throws", maxConcurrent: 1 })
      const exit = yield* Effect.exit(bulkhead.tryPromise({
        try: () => Promise.reject(new Error("boom")),
        catch: () => {
          throw new Error("catch failed")
        }
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("with no permit free and no queue, fails BulkheadFullError without starting the promise", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-full", maxConcurrent: 1 })
      const first = manual()
      const holder = yield* Effect.fork(bulkhead.tryPromise(first.start))
      yield* settle
      const second = manual()
      const error = failureOf(yield* Effect.exit(bulkhead.tryPromise(second.start)))
      expect(error).toBeInstanceOf(BulkheadFullError)
      expect((error as BulkheadFullError).reason).toBe("full")
      expect(second.started).toBe(0)
      expect((yield* bulkhead.stats).rejected).toBe(1)
      first.resolve("a")
      yield* Fiber.join(holder)
    }))

  it.scoped("queues in FIFO order behind earlier callers and starts the promise only with a permit", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-queue", maxConcurrent: 1, maxQueue: 2 })
      const first = manual()
      const second = manual()
      const third = manual()
      const a = yield* Effect.fork(bulkhead.tryPromise(first.start))
      yield* settle
      const b = yield* Effect.fork(bulkhead.protect(Effect.tryPromise(second.start)))
      yield* settle
      // a newcomer queues behind the waiter even if a permit were to come free first
      const c = yield* Effect.fork(bulkhead.tryPromise(third.start))
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 2 })
      expect([second.started, third.started]).toEqual([0, 0])
      first.resolve("a")
      expect(yield* Fiber.join(a)).toBe("a")
      yield* settle
      expect([second.started, third.started]).toEqual([1, 0])
      second.resolve("b")
      expect(yield* Fiber.join(b)).toBe("b")
      yield* settle
      expect(third.started).toBe(1)
      third.resolve("c")
      expect(yield* Fiber.join(c)).toBe("c")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("an interrupted caller aborts the signal; the permit comes back when the promise settles", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-abort", maxConcurrent: 1 })
      const call = manual()
      const fiber = yield* Effect.fork(bulkhead.tryPromise(call.startWithSignal))
      yield* settle
      expect(call.signal?.aborted).toBe(false)
      yield* Fiber.interrupt(fiber)
      expect(call.signal?.aborted).toBe(true)
      yield* waitForPromises
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("a promise that outlives its interrupted caller keeps its permit until it settles", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-orphan", maxConcurrent: 1 })
      const call = manual()
      const fiber = yield* Effect.fork(bulkhead.tryPromise(call.start))
      yield* settle
      yield* Fiber.interrupt(fiber)
      // the work still runs: the permit is still taken, so a second call is refused
      expect((yield* bulkhead.stats).active).toBe(1)
      expect(failureOf(yield* Effect.exit(bulkhead.tryPromise(() => Promise.resolve(1))))).toBeInstanceOf(
        BulkheadFullError
      )
      call.resolve("late")
      yield* waitForPromises
      expect((yield* bulkhead.stats).active).toBe(0)
      expect(yield* bulkhead.tryPromise(() => Promise.resolve(2))).toBe(2)
    }))

  it.scoped("a queued caller interrupted while waiting leaves the queue and never starts its promise", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-queued-interrupt", maxConcurrent: 1, maxQueue: 1 })
      const first = manual()
      const waiting = manual()
      const holder = yield* Effect.fork(bulkhead.tryPromise(first.start))
      yield* settle
      const queued = yield* Effect.fork(bulkhead.tryPromise(waiting.start))
      yield* settle
      expect((yield* bulkhead.stats).queued).toBe(1)
      yield* Fiber.interrupt(queued)
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 0 })
      first.resolve("a")
      yield* Fiber.join(holder)
      expect(waiting.started).toBe(0)
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.scoped("a call that had to queue holds its permit as protect's does: it comes back when the caller stops", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-queued-granted", maxConcurrent: 1, maxQueue: 1 })
      const first = manual()
      const second = manual()
      const holder = yield* Effect.fork(bulkhead.tryPromise(first.start))
      yield* settle
      const queued = yield* Effect.fork(bulkhead.tryPromise(second.start))
      yield* settle
      first.resolve("a")
      yield* Fiber.join(holder)
      yield* settle
      expect(second.started).toBe(1)
      expect((yield* bulkhead.stats).active).toBe(1)
      yield* Fiber.interrupt(queued)
      expect((yield* bulkhead.stats).active).toBe(0)
    }))

  it.effect("after the bulkhead's scope closes, calls fail BulkheadFullError", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const bulkhead = yield* Scope.extend(Bulkhead.make({ name: "promise-closed", maxConcurrent: 1 }), scope)
      yield* Scope.close(scope, Exit.void)
      const error = failureOf(yield* Effect.exit(bulkhead.tryPromise(() => Promise.resolve(1))))
      expect(error).toBeInstanceOf(BulkheadFullError)
    }))

  it.scoped("shares permits with weighted calls", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-weighted", maxConcurrent: 3, maxQueue: 1 })
      const gate = yield* Deferred.make<void>()
      const heavy = yield* Effect.fork(bulkhead.protectWeighted(2)(Deferred.await(gate)))
      yield* settle
      const call = manual()
      const light = yield* Effect.fork(bulkhead.tryPromise(call.start))
      yield* settle
      expect((yield* bulkhead.stats).active).toBe(3)
      const waiter = yield* Effect.fork(bulkhead.protectWeighted(1)(Effect.succeed("queued")))
      yield* settle
      expect((yield* bulkhead.stats).queued).toBe(1)
      call.resolve("light")
      expect(yield* Fiber.join(light)).toBe("light")
      expect(yield* Fiber.join(waiter)).toBe("queued")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(heavy)
      expect((yield* bulkhead.stats).active).toBe(0)
    }))
})

describe("Bulkhead.tryPromise: cost", () => {
  it.scoped("takes exactly the runtime steps of Effect.tryPromise when a permit is free", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "promise-steps", maxConcurrent: 1 })
      const resolved = () => Promise.resolve(1)
      const bare = yield* runtimeStepsOf(Effect.tryPromise(resolved))
      expect(bare).toBeGreaterThan(0)
      expect(yield* runtimeStepsOf(bulkhead.tryPromise(resolved))).toBe(bare)
      // wrapping the effect costs its own steps: one to enter, one to give the permit back
      expect(yield* runtimeStepsOf(bulkhead.protect(Effect.tryPromise(resolved)))).toBe(bare + 2)
    }))
})
