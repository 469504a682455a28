/**
 * `enter`: a matched effect entered in the step that decided to run it behaves as the match run as
 * an effect — its handlers run on success, failure and defect, not when the fiber is interrupted
 * mid-work — and falls back to the match on a fiber it cannot push onto.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber } from "effect"
import { enter } from "../src/internal/frame.js"

/** The work wrapped in a recording match, run either as an effect or entered. */
const recorded = <A, E>(work: Effect.Effect<A, E>, entered: boolean) => {
  const seen: Array<string> = []
  const matched = Effect.matchCauseEffect(work, {
    onFailure: (cause) => {
      seen.push(Cause.isDie(cause) ? "die" : "fail")
      return Effect.failCause(cause)
    },
    onSuccess: (a) => {
      seen.push("success")
      return Effect.succeed(a)
    }
  })
  const run = entered ? Effect.withFiberRuntime<A, E>((fiber) => enter(fiber, matched, work)) : matched
  return { run, seen }
}

describe("enter", () => {
  for (const entered of [false, true]) {
    const how = entered ? "entered" : "run as an effect"
    it.effect(`${how}: handlers on success, failure and defect; the outcome goes on to the caller`, () =>
      Effect.gen(function*() {
        const ok = recorded(Effect.succeed(1), entered)
        expect(yield* Effect.map(ok.run, (n) => n + 1)).toBe(2)
        const failed = recorded(Effect.fail("boom"), entered)
        expect(yield* Effect.flip(failed.run)).toBe("boom")
        const died = recorded(Effect.die("bug"), entered)
        const exit = yield* Effect.exit(died.run)
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect([ok.seen, failed.seen, died.seen]).toEqual([["success"], ["fail"], ["die"]])
      }))

    it.effect(`${how}: interrupted mid-work, no handler runs and the caller's finalizer does`, () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const call = recorded(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), entered)
        let finalized = 0
        const fiber = yield* Effect.fork(Effect.ensuring(call.run, Effect.sync(() => finalized++)))
        yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
        expect(call.seen).toEqual([])
        expect(finalized).toBe(1)
      }))

    it.effect(`${how}: nested in itself and run from many fibers, every run its own outcome`, () =>
      Effect.gen(function*() {
        const inner = recorded(Effect.succeed(1), entered)
        const outer = recorded(Effect.map(inner.run, (n) => n + 1), entered)
        const results = yield* Effect.forEach(
          Array.from({ length: 5 }),
          () => Effect.zipRight(Effect.yieldNow(), outer.run),
          { concurrency: "unbounded" }
        )
        expect(results).toEqual([2, 2, 2, 2, 2])
        expect([inner.seen.length, outer.seen.length]).toEqual([5, 5])
      }))
  }

  it("on a fiber it cannot push onto, the match itself is what runs", () => {
    const matched = Effect.matchCauseEffect(Effect.succeed(1), {
      onFailure: Effect.failCause,
      onSuccess: Effect.succeed
    })
    const fiber = Effect.runFork(Effect.void)
    const withoutPush = Object.create(fiber, { pushStack: { value: undefined } })
    expect(enter(withoutPush, matched, Effect.succeed(1))).toBe(matched)
  })
})
