/**
 * One protected effect of a breaker, and the outcome handlers of its calls.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { ProtectOptions } from "../../CircuitBreaker.js"
import type { CircuitOpenError } from "../../Errors.js"
import { enter } from "../frame.js"
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
export class ProtectedCall<A, E, R> {
  private token = -1
  private matched: Effect.Effect<A, E, R> | undefined = undefined
  constructor(
    readonly breaker: Breaker,
    readonly effect: Effect.Effect<A, E, R>,
    readonly isFailure: ProtectOptions<E>["isFailure"]
  ) {}

  /** One run on `fiber`, the fiber running it (called from `Effect.withFiberRuntime`). */
  run(fiber: Fiber.RuntimeFiber<any, any>): Effect.Effect<A, E | CircuitOpenError, R> {
    const b = this.breaker
    const core = b.core
    let now: number
    if (b.rampEnd === 0 && !b.isolated && core.untimed()) {
      // nothing this call does depends on the time: the clock is not read (about 35 ns)
      now = b.lastUsed
      b.undatedUse = true
    } else {
      now = b.clock.unsafeCurrentTimeMillis()
      b.lastUsed = now
      if (b.special(now)) return b.runSpecial(now, this.effect, this.isFailure)
    }
    const token = core.acquire(now)
    if (token < 0 || core.pending.length > 0 || b.spec.timesCalls) {
      return b.decided(token, this.effect, now, this.isFailure)
    }
    if (token !== this.token || this.matched === undefined) {
      const h = callHandlers(b, token, Number.NaN, this.isFailure ?? b.spec.isFailure)
      this.matched = Effect.matchCauseEffect(this.effect, h) as Effect.Effect<A, E, R>
      this.token = token
    }
    return enter(fiber, this.matched, this.effect)
  }
}
