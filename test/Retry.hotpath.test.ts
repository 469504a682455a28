/**
 * `Retry.retry` run again and again: its success path is one failure-only frame built once per
 * retried effect, and the first failure is handed to the retry loop as `Effect.catchAll` would.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber } from "effect"
import * as Backoff from "../src/Backoff.js"
import * as Retry from "../src/Retry.js"

const schedule = Backoff.constant("1 millis").pipe(Backoff.upTo(3))
const always = () => true

describe("Retry.retry run many times", () => {
  it.live("failures are retried on every run; defects and mixed causes pass as Effect.catchAll passes them", () =>
    Effect.gen(function*() {
      let runs = 0
      let failFirst = 0
      const flaky = Effect.suspend(() => {
        runs++
        return failFirst-- > 0 ? Effect.fail("transient" as const) : Effect.succeed(runs)
      })
      const call = Retry.retry(flaky, { schedule, while: always })
      for (let i = 0; i < 3; i++) {
        failFirst = 2
        runs = 0
        expect(yield* call).toBe(3)
      }
      runs = 0
      expect(yield* call).toBe(1) // nothing failed: one run
      for (
        const cause of [
          Cause.die("bug"),
          Cause.sequential(Cause.fail("e"), Cause.die("d")),
          Cause.parallel(Cause.die("d"), Cause.fail("e"))
        ]
      ) {
        let attempts = 0
        const broken = Effect.suspend(() => {
          attempts++
          return Effect.failCause(cause)
        })
        const exit = yield* Effect.exit(Retry.retry(broken, { schedule, while: always }))
        const reference = yield* Effect.exit(Effect.catchAll(Effect.failCause(cause), () => Effect.succeed(0)))
        expect(attempts).toBe(1)
        expect(exit).toEqual(reference)
      }
    }))

  it.live("an interrupted run is not retried", () =>
    Effect.gen(function*() {
      let attempts = 0
      const started = yield* Deferred.make<void>()
      const call = Retry.retry(
        Effect.suspend(() => {
          attempts++
          return Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
        }),
        { schedule }
      )
      const fiber = yield* Effect.fork(call)
      yield* Deferred.await(started)
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(attempts).toBe(1)
    }))

  it.live("nested in itself, and drawing on whichever budget the context holds at each run", () =>
    Effect.gen(function*() {
      let failNext = true
      const inner = Retry.retry(
        Effect.suspend(() => {
          if (failNext) {
            failNext = false
            return Effect.fail("once" as const)
          }
          return Effect.succeed("ok" as const)
        }),
        { schedule }
      )
      const outer = Retry.retry(inner, { schedule, while: always })
      expect(yield* outer).toBe("ok")
      const a = yield* Retry.makeBudget({ name: "a" })
      const b = yield* Retry.makeBudget({ name: "b" })
      const counted = Retry.retry(Effect.succeed(1), { schedule, while: always })
      yield* counted.pipe(Effect.provideService(Retry.Budget, a))
      yield* counted.pipe(Effect.provideService(Retry.Budget, b))
      yield* counted.pipe(Effect.provideService(Retry.Budget, b))
      yield* counted
      expect((yield* a.stats).requests).toBe(1)
      expect((yield* b.stats).requests).toBe(2)
    }))
})
