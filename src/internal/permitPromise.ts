/**
 * A promise run under a policy's permit, in the runtime steps `Effect.tryPromise` takes anyway.
 *
 * `policy.protect(Effect.tryPromise(f))` costs the runtime two steps of its own: one that decides
 * and enters the work, and one, after the work, that reports the outcome and hands the value on.
 * Here the policy decides in the step that starts the promise (the async registration), which
 * costs no step, and hears the outcome in the promise's own settle callback, before the fiber is
 * resumed: a bulkhead adds no step at all, a breaker one (it records on the caller's fiber).
 *
 * The gate hears of the settlement at once (a bulkhead gives its permit back then: the permit is
 * the promise's) and hands back the effect the caller resumes with, which runs only while the
 * caller still waits (a breaker records the outcome there, so an interrupted caller counts as
 * neither, as with `protect`). An interrupted caller aborts the signal passed to `evaluate`. A
 * call the policy does not admit at once (a queue, a rejection, a state that needs more than a
 * plain admission) runs the way `protect` would run `Effect.tryPromise(f)`.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

/** What a policy offers a promise: a decision now, and the effect its caller resumes with. */
export interface Gate<E2> {
  /**
   * Decides a call now: a ticket (a number, ≥ 0) when it is admitted at once, else the effect that
   * runs `call.general()` (`Effect.tryPromise` of the same promise) the way `protect` would.
   */
  decide<A, E>(call: General<A, E>): number | Effect.Effect<A, E | E2>
  /** the admitted promise resolved with `a` (called as it settles) */
  succeeded<A>(ticket: number, a: A): Effect.Effect<A>
  /**
   * The admitted promise rejected (called as it settles); `failure` fails as `Effect.tryPromise`
   * would, mapping the rejection when the caller's fiber runs it.
   */
  failed<E>(ticket: number, failure: Effect.Effect<never, E>): Effect.Effect<never, E>
}

/** A call that can also run the general way: what `protect` runs. */
export interface General<A, E, R = never> {
  general(): Effect.Effect<A, E, R>
}

/** `Effect.tryPromise`'s argument: the function, or the function with a mapping of its rejection. */
export type Evaluate<A, E> =
  | ((signal: AbortSignal) => PromiseLike<A>)
  | { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E }

/** `Effect.tryPromise(evaluate)`, for either form of its argument. */
export const effectOf = <A, E>(evaluate: Evaluate<A, E>): Effect.Effect<A, E | Cause.UnknownException> =>
  typeof evaluate === "function" ? Effect.tryPromise(evaluate) : Effect.tryPromise(evaluate)

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void

/** One promise call: the function, the mapping of its rejection and the way `protect` would run it. */
class Spec<A, E> implements General<A, E> {
  private generalRun: Effect.Effect<A, E> | undefined = undefined
  readonly run: (signal: AbortSignal) => PromiseLike<A>
  readonly catcher: ((error: unknown) => E) | undefined
  constructor(readonly evaluate: Evaluate<A, E>) {
    this.run = typeof evaluate === "function" ? evaluate : evaluate.try
    this.catcher = typeof evaluate === "function" ? undefined : evaluate.catch
  }
  /** built the first time a call is not admitted at once */
  general(): Effect.Effect<A, E> {
    return this.generalRun ??= effectOf(this.evaluate) as Effect.Effect<A, E>
  }
  /** as `Effect.tryPromise` fails: `UnknownException`, or what `catch` makes of it, evaluated lazily */
  failure(error: unknown): Effect.Effect<never, E> {
    const catcher = this.catcher
    return catcher === undefined
      ? Effect.fail(new Cause.UnknownException(error, "An unknown error occurred in Effect.tryPromise") as E)
      : Effect.failSync(() => catcher(error))
  }
}

/**
 * One started promise: it settles once, whatever a thenable does (a flag in a closure over the
 * same state measured twice as slow per call as this object).
 */
class Call<A, E> {
  private done = false
  constructor(
    private readonly gate: Gate<unknown>,
    private readonly spec: Spec<A, any>,
    private readonly ticket: number,
    private readonly resume: Resume<A, E>
  ) {}
  resolved(a: A): void {
    if (this.done) return
    this.done = true
    this.resume(this.gate.succeeded(this.ticket, a))
  }
  rejected(error: unknown): void {
    if (this.done) return
    this.done = true
    this.resume(this.gate.failed(this.ticket, this.spec.failure(error)))
  }
  /** starts the promise (`signal` only for a function that takes one, as `Effect.tryPromise`) */
  start(signal: AbortSignal | undefined): void {
    try {
      const run = this.spec.run
      const promise = signal === undefined ? (run as () => PromiseLike<A>)() : run(signal)
      promise.then((a) => this.resolved(a), (error) => this.rejected(error))
    } catch (error) {
      // `evaluate` threw, or gave something without a working `then`
      this.rejected(error)
    }
  }
}

/** `Effect.tryPromise(evaluate)` under `gate`, decided when the promise starts. */
export const tryPromise = <A, E, E2>(gate: Gate<E2>, evaluate: Evaluate<A, E>): Effect.Effect<A, E | E2> => {
  const spec = new Spec(evaluate)
  const start = (resume: Resume<A, E | E2>, signal: AbortSignal | undefined): void => {
    const ticket = gate.decide(spec)
    if (typeof ticket !== "number") return resume(ticket)
    new Call<A, E | E2>(gate, spec, ticket, resume).start(signal)
  }
  // as `Effect.tryPromise`: an abort signal (and its interruption hook) only for a function that takes one
  return spec.run.length >= 1
    ? Effect.async<A, E | E2>((resume, signal) => start(resume, signal))
    : Effect.async<A, E | E2>((resume) => start(resume, undefined))
}
