/**
 * A ticket's outcomes share one guard: whichever of them runs first does its work, every later
 * one (the same or another outcome) does nothing, so a ticket settles exactly once.
 */
import * as Effect from "effect/Effect"

/** Returns a wrapper; effects wrapped by the same wrapper run at most once between them. */
export const onceGuard = (): (effect: Effect.Effect<void>) => Effect.Effect<void> => {
  let done = false
  return (effect) =>
    Effect.suspend(() => {
      if (done) return Effect.void
      done = true
      return effect
    })
}
