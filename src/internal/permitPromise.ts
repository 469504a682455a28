/**
 * A promise run under a policy's permit, in the runtime steps `Effect.tryPromise` takes anyway.
 *
 * `policy.protect(Effect.tryPromise(f))` costs the runtime two steps of its own: one that decides
 * and enters the work, and one, after the work, that reports the outcome and hands the value on.
 * Here the policy decides in the step that starts the promise (the async registration) and hears
 * the outcome in the promise's own settle callback, before the fiber is resumed: no step is added.
 *
 * The permit is the promise's, not the fiber's: its outcome is reported when the promise settles,
 * however the caller ended. An interrupted caller aborts the signal passed to `evaluate`; a
 * rejection after that is reported as aborted. A call the policy does not admit at once (a queue,
 * a rejection, a state that needs more than a plain admission) runs the way `protect` would run
 * `Effect.tryPromise(f)`.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

/** What a policy offers a promise: a decision now, and the outcome when the promise settles. */
export interface Gate<E2> {
  /**
   * Decides a call now: a ticket (a number, ≥ 0) when it is admitted at once, else the effect that
   * runs `general` (`Effect.tryPromise` of the same promise) the way `protect` would.
   */
  decide<A, E>(general: Effect.Effect<A, E>): number | Effect.Effect<A, E | E2>
  /** the admitted promise resolved: the effect the caller resumes with */
  succeeded<A>(ticket: number, a: A): Effect.Effect<A>
  /**
   * The admitted promise failed (`cause`: its mapped rejection, or a defect of the mapping);
   * `aborted` when the caller had been interrupted first. The effect the caller resumes with.
   */
  failed<E>(ticket: number, cause: Cause.Cause<E>, aborted: boolean): Effect.Effect<never, E>
}

/** `Effect.tryPromise`'s argument: the function, or the function with a mapping of its rejection. */
export type Evaluate<A, E> =
  | ((signal: AbortSignal) => PromiseLike<A>)
  | { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E }

/** `Effect.tryPromise(evaluate)`, for either form of its argument. */
export const effectOf = <A, E>(evaluate: Evaluate<A, E>): Effect.Effect<A, E | Cause.UnknownException> =>
  typeof evaluate === "function" ? Effect.tryPromise(evaluate) : Effect.tryPromise(evaluate)

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void

const unknown = (error: unknown) => new Cause.UnknownException(error, "An unknown error occurred in a promise")

/**
 * One started promise: it settles once, whatever a thenable does (a flag in a closure over the
 * same state measured twice as slow per call as this object).
 */
class Call<A, E> {
  private done = false
  constructor(
    private readonly gate: Gate<unknown>,
    private readonly ticket: number,
    private readonly resume: Resume<A, E>,
    private readonly signal: AbortSignal | undefined,
    private readonly catcher: ((error: unknown) => E) | undefined
  ) {}
  resolved(a: A): void {
    if (this.done) return
    this.done = true
    this.resume(this.gate.succeeded(this.ticket, a))
  }
  rejected(error: unknown): void {
    if (this.done) return
    this.done = true
    this.resume(this.gate.failed(this.ticket, this.causeOf(error), this.signal?.aborted === true))
  }
  /** as `Effect.tryPromise`: `UnknownException`, or what `catch` makes of it (a defect if it throws) */
  private causeOf(error: unknown): Cause.Cause<E> {
    if (this.catcher === undefined) return Cause.fail(unknown(error) as E)
    try {
      return Cause.fail(this.catcher(error))
    } catch (defect) {
      return Cause.die(defect)
    }
  }
}

/** `Effect.tryPromise(evaluate)` under `gate`, decided when the promise starts. */
export const tryPromise = <A, E, E2>(gate: Gate<E2>, evaluate: Evaluate<A, E>): Effect.Effect<A, E | E2> => {
  const run = typeof evaluate === "function" ? evaluate : evaluate.try
  const catcher = typeof evaluate === "function" ? undefined : evaluate.catch
  const general = effectOf(evaluate) as Effect.Effect<A, E>
  const start = (resume: Resume<A, E | E2>, signal: AbortSignal | undefined): void => {
    const ticket = gate.decide(general)
    if (typeof ticket !== "number") return resume(ticket)
    const call = new Call<A, E | E2>(gate, ticket, resume, signal, catcher)
    try {
      run(signal!).then((a) => call.resolved(a), (error) => call.rejected(error))
    } catch (error) {
      // `evaluate` threw, or gave something without a working `then`
      call.rejected(error)
    }
  }
  // as `Effect.tryPromise`: an abort signal (and its interruption hook) only for a function that takes one
  return run.length >= 1
    ? Effect.async<A, E | E2>((resume, signal) => start(resume, signal))
    : Effect.async<A, E | E2>((resume) => start(resume, undefined))
}
