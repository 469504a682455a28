/**
 * Helpers shared by the test files.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import type * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"

/** Lets every forked fiber run until it blocks. */
export const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** Waits until the promise callbacks queued so far (and those they queue) have run. */
export const waitForPromises = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Counts the runtime steps of `effect`: every effect its fiber evaluates, with op supervision on. */
export const runtimeStepsOf = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<number> =>
  Effect.suspend(() => {
    let steps = 0
    class Counter extends Supervisor.AbstractSupervisor<void> {
      value = Effect.void
      override onEffect(): void {
        steps++
      }
    }
    return Effect.map(
      Effect.exit(effect.pipe(
        Effect.supervised(new Counter()),
        Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
      )),
      () => steps
    )
  })

/** The typed failure of `exit`; throws when it succeeded or failed otherwise. */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

/** The first defect of `exit`; throws when it has none. */
export const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) throw new Error("expected a defect")
  const defects = Chunk.toReadonlyArray(Cause.defects(exit.cause))
  if (defects.length === 0) throw new Error(`expected a defect, got ${Cause.pretty(exit.cause)}`)
  return defects[0]
}

/**
 * A seeded generator of numbers uniform in [0, 1) (mulberry32), for the pure algorithm tests: a
 * failing run replays with the same seed.
 */
export const seededRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Runs a scoped effect to a promise, closing its scope at the end (for tests written with `async`). */
export const runScoped = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(effect))
