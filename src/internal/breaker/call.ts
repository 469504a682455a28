/**
 * One protected effect of a breaker, and the outcome handlers of its calls.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { ProtectOptions } from "../../CircuitBreaker.js"
import type { CircuitOpenError } from "../../Errors.js"
import { enter } from "../frame.js"
import type * as PermitPromise from "../permitPromise.js"
import type { Breaker } from "./engine.js"

// Builds match handlers from two arguments. Passing the closures as arguments keeps them
// anonymous, which measures cheaper than object-literal methods under loaders that preserve
// function names (tsx, esbuild's keepNames).
const handlers = <A, E, B, E2>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<B, E2>,
  onSuccess: (a: A) => Effect.Effect<B, E2>
) => ({ onFailure, onSuccess })

/**
 * The outcome handlers of a call. A `ProtectedCall` keeps those of its last token; they are not
 * cached per breaker, where they would cost about 250 bytes per idle breaker. `start` is NaN
 * unless the call is timed (slow-call tracking).
 */
export const callHandlers = (breaker: Breaker, token: number, start: number, isFailure: (e: any) => boolean) =>
  handlers(
    (cause: Cause.Cause<unknown>) => breaker.failed(cause, token, start, isFailure),
    (a: unknown) => breaker.succeeded(a, token, start)
  )

/**
 * One protected effect (what `protect(effect)` returns runs this). A plain admission — Closed, no
 * state change to publish, the call not timed — reuses the matched effect of the previous run
 * while the core hands out the same token (a state machine's generation, the adaptive breaker's
 * constant), so such a run allocates nothing, and enters that match in the step that admitted it
 * (`frame.ts`); anything else takes the general path.
 */
export class ProtectedCall<A, E, R> implements PermitPromise.General<A, E, R> {
  private token = -1
  private matched: Effect.Effect<A, E, R> | undefined = undefined
  constructor(
    readonly breaker: Breaker,
    readonly effect: Effect.Effect<A, E, R>,
    readonly isFailure: ProtectOptions<E>["isFailure"]
  ) {}

  general(): Effect.Effect<A, E, R> {
    return this.effect
  }

  /** One run on `fiber`, the fiber running it (called from `Effect.withFiberRuntime`). */
  run(fiber: Fiber.RuntimeFiber<any, any>): Effect.Effect<A, E | CircuitOpenError, R> {
    const b = this.breaker
    const token = b.decideNow(this, this.isFailure)
    if (typeof token !== "number") return token
    if (token !== this.token || this.matched === undefined) {
      const h = callHandlers(b, token, Number.NaN, this.isFailure ?? b.spec.isFailure)
      this.matched = Effect.matchCauseEffect(this.effect, h) as Effect.Effect<A, E, R>
      this.token = token
    }
    return enter(fiber, this.matched, this.effect)
  }
}

/**
 * A breaker's side of `tryPromise` (`permitPromise.ts`): decided as `protect` decides; the outcome
 * is recorded by the effect the caller resumes with, so a caller interrupted before the promise
 * settled counts as neither, as an interrupted `protect` does, and a state change is published
 * before the caller goes on.
 */
export class PromiseGate implements PermitPromise.Gate<CircuitOpenError> {
  // the error type is the promise's (mapped by `catch`), known to the caller of `tryPromise`
  constructor(readonly breaker: Breaker, readonly isFailure: ((error: any) => boolean) | undefined) {}
  decide<A, E>(call: PermitPromise.General<A, E>): number | Effect.Effect<A, E | CircuitOpenError> {
    return this.breaker.decideNow(call, this.isFailure)
  }
  succeeded<A>(token: number, a: A): Effect.Effect<A> {
    return Effect.suspend(() => this.breaker.succeeded(a, token, Number.NaN))
  }
  failed<E>(token: number, failure: Effect.Effect<never, E>): Effect.Effect<never, E> {
    const b = this.breaker
    return Effect.catchAllCause(
      failure,
      (cause) => b.failed(cause, token, Number.NaN, this.isFailure ?? b.spec.isFailure)
    )
  }
}
