/**
 * One protected effect run again and again: its matched run is reused while it takes the same
 * permit slot, and every run still holds a permit of its own and gives it back exactly once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { BulkheadFullError } from "../src/Errors.js"
import { settle } from "./support.js"

describe("Bulkhead: one protected effect run many times", () => {
  it.scoped("by many fibers at once: a permit per run, each given back once", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "shared-call", maxConcurrent: 3, maxQueue: 10 })
      const gate = yield* Deferred.make<void>()
      let inside = 0
      let most = 0
      const call = bulkhead.protect(Effect.gen(function*() {
        inside++
        most = Math.max(most, inside)
        yield* Deferred.await(gate)
        inside--
        return 1
      }))
      const fibers = yield* Effect.forEach(Array.from({ length: 8 }), () => Effect.fork(call))
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 3, queued: 5 })
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Effect.forEach(fibers, Fiber.join)
      expect(results).toEqual(Array.from({ length: 8 }, () => 1))
      expect(most).toBe(3)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
      // and again, now that the slots are taken in another order
      yield* Effect.forEach(Array.from({ length: 6 }), () => call, { concurrency: "unbounded" })
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("after a failure, a defect and an interruption its permit is back each time", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "outcomes", maxConcurrent: 1 })
      const started = yield* Deferred.make<void>()
      let mode: "fail" | "die" | "hang" | "ok" = "fail"
      const call = bulkhead.tryProtect(Effect.suspend(() => {
        switch (mode) {
          case "fail":
            return Effect.fail("boom" as const)
          case "die":
            return Effect.die("bug")
          case "hang":
            return Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
          case "ok":
            return Effect.succeed("ok" as const)
        }
      }))
      const failed = yield* Effect.exit(call)
      expect(Exit.isFailure(failed) && Cause.squash(failed.cause)).toBe("boom")
      expect((yield* bulkhead.stats).active).toBe(0)
      mode = "die"
      const died = yield* Effect.exit(call)
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      expect((yield* bulkhead.stats).active).toBe(0)
      mode = "hang"
      const fiber = yield* Effect.fork(call)
      yield* Deferred.await(started)
      expect((yield* bulkhead.stats).active).toBe(1)
      yield* Fiber.interrupt(fiber)
      expect((yield* bulkhead.stats).active).toBe(0)
      mode = "ok"
      expect(yield* call).toBe("ok")
      expect(yield* call).toBe("ok")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, rejected: 0 })
    }))

  it.scoped("nested in itself: the inner run takes a second permit, or is turned away when none is left", () =>
    Effect.gen(function*() {
      const two = yield* Bulkhead.make({ name: "nested-two", maxConcurrent: 2 })
      let seen = -1
      const inner = two.protect(Effect.flatMap(two.stats, (s) => Effect.sync(() => (seen = s.active))))
      const outer = two.protect(inner)
      yield* outer
      expect(seen).toBe(2)
      yield* outer
      expect(yield* two.stats).toMatchObject({ active: 0 })
      const one = yield* Bulkhead.make({ name: "nested-one", maxConcurrent: 1 })
      const innerOne = one.tryProtect(Effect.succeed(1))
      const outerOne = one.tryProtect(innerOne)
      for (let i = 0; i < 2; i++) {
        const exit = yield* Effect.exit(outerOne)
        expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBeInstanceOf(BulkheadFullError)
        expect((yield* one.stats).active).toBe(0)
      }
      expect(yield* innerOne).toBe(1)
    }))
})
