/**
 * The runtime steps a policy's happy path takes, with nothing in them: read beside a policy's row,
 * they show how much of its cost is its own work and how much is the Effect runtime's steps.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

// closures passed as arguments stay anonymous, as in the policies (see the breaker engine)
const handlers = <A, E>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<A, E>,
  onSuccess: (a: A) => Effect.Effect<A, E>
) => ({ onFailure, onSuccess })

const passThrough = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.matchCauseEffect(work, handlers<A, E>((cause) => Effect.failCause(cause), (a) => Effect.succeed(a)))

/** A breaker's steps: one `Effect.suspend`, then one `matchCauseEffect` built once. */
export const suspendedSteps = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const matched = passThrough(work)
  return Effect.suspend(() => matched)
}

/** A bulkhead's steps: one `Effect.withFiberRuntime`, then one `matchCauseEffect` built once. */
export const runtimeSteps = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const matched = passThrough(work)
  return Effect.withFiberRuntime(() => matched)
}
