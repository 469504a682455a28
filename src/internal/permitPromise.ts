/**
 * A promise run under a permit, in the steps `Effect.tryPromise` takes anyway.
 *
 * `protect(Effect.tryPromise(f))` costs the runtime two steps of its own: one that takes the permit
 * and enters the work, and one, after the work, that gives the permit back and hands the value on.
 * Here the permit is taken in the step that starts the promise (the async registration) and given
 * back in the promise's own settle callback, before the fiber is resumed: no step is added.
 *
 * The permit is the promise's, not the fiber's: it comes back when the promise settles, however the
 * caller ended. An interrupted caller aborts the signal passed to `evaluate`; a promise that ignores
 * it keeps its permit until it settles, because the work it bounds is still running. A caller that
 * finds no permit free goes the gate's other way (queue or rejection) with `Effect.tryPromise(f)`.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

/** What a permit-holding policy offers: a permit now or not, its return, and the way for the rest. */
export interface Gate<E2> {
  /** takes a free permit now; false when the caller must not (none free, callers queued, closed) */
  admit(): boolean
  /** the permit taken by `admit` came back */
  released(): void
  /** the call when `admit` said no: queue for a permit or be rejected */
  otherwise<A, E>(work: Effect.Effect<A, E>): Effect.Effect<A, E | E2>
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

/** One started promise: its permit comes back and its caller resumes once, whatever a thenable does. */
class Call<A, E> {
  private done = false
  constructor(private readonly gate: Gate<unknown>, private readonly resume: Resume<A, E>) {}
  settle(outcome: Effect.Effect<A, E>): void {
    if (this.done) return
    this.done = true
    this.gate.released()
    this.resume(outcome)
  }
}

/** `Effect.tryPromise(evaluate)` holding a permit of `gate` while the promise runs. */
export const tryPromise = <A, E, E2>(gate: Gate<E2>, evaluate: Evaluate<A, E>): Effect.Effect<A, E | E2> => {
  const run = typeof evaluate === "function" ? evaluate : evaluate.try
  const catcher = typeof evaluate === "function" ? undefined : evaluate.catch
  const fail = (error: unknown): Effect.Effect<never, E> =>
    catcher === undefined ? Effect.fail(unknown(error) as E) : Effect.failSync(() => catcher(error))
  const start = (resume: Resume<A, E | E2>, signal: AbortSignal | undefined): void => {
    if (!gate.admit()) return resume(gate.otherwise(effectOf(evaluate) as Effect.Effect<A, E>))
    const call = new Call(gate, resume)
    try {
      run(signal!).then((a) => call.settle(Effect.succeed(a)), (error) => call.settle(fail(error)))
    } catch (error) {
      // `evaluate` threw, or gave something without a working `then`
      call.settle(fail(error))
    }
  }
  // as `Effect.tryPromise`: an abort signal (and its interruption hook) only for a function that takes one
  return run.length >= 1
    ? Effect.async<A, E | E2>((resume, signal) => start(resume, signal))
    : Effect.async<A, E | E2>((resume) => start(resume, undefined))
}
