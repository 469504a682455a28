/**
 * The runtime steps a policy's happy path takes, with nothing in them: read beside a policy's row,
 * they show how much of its cost is its own work and how much is the Effect runtime's steps.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { enter } from "../src/internal/frame.js"

// closures passed as arguments stay anonymous, as in the policies (see the breaker engine)
const handlers = <A, E>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<A, E>,
  onSuccess: (a: A) => Effect.Effect<A, E>
) => ({ onFailure, onSuccess })

const passThrough = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.matchCauseEffect(work, handlers<A, E>((cause) => Effect.failCause(cause), (a) => Effect.succeed(a)))

/**
 * A breaker's or a bulkhead's steps: one `Effect.withFiberRuntime` that enters a `matchCauseEffect`
 * built once (its frame pushed, the work run next; `src/internal/frame.ts`).
 */
export const enteredSteps = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const matched = passThrough(work)
  return Effect.withFiberRuntime((fiber) => enter(fiber, matched, work))
}
