/**
 * The calls of a breaker: admission, outcome recording, rejections and the permits of `allow`.
 * The state side — publication of changes, the `changes` stream, lifecycle — is `Shell`
 * (`shell.ts`), which `Breaker` extends.
 *
 * A breaker is one object with plain fields; its methods live on the prototype. On the hot path a
 * call decides in one synchronous step on the core and wraps the effect in one `matchCauseEffect`
 * (`call.ts`: reused while the core's token stays the same, and entered in the deciding step). It
 * reads the clock once, or not at all when nothing it does depends on the time (`Core.untimed`: a
 * Closed state machine without an interval or a time window). A success is recorded at the time of
 * the latest admission unless the core needs its own time (a state machine that is not Closed, an
 * interval roll-over) or the call is timed (slow-call tracking); a failure reads the clock.
 *
 * An interrupted call counts as neither, so a Closed call records its outcome with that one plain
 * match — no uninterruptible region on the hot path. The runtime skips the match when the caller
 * is interrupted, so such a call reports nothing (a Closed state machine counts `requests` when an
 * outcome arrives, not at admission). A half-open probe holds a slot that must come back however
 * its caller ends: when a call may take one, taking the slot, publishing the change and installing
 * the outcome handler happen in one uninterruptible region, and only the work is interruptible.
 */
import type * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { CircuitBreaker, Permit, ProtectOptions, State } from "../../CircuitBreaker.js"
import { CircuitOpenError } from "../../Errors.js"
import type * as InstanceMetrics from "../instanceMetrics.js"
import * as PermitPromise from "../permitPromise.js"
import { callHandlers, PromiseGate, ProtectedCall } from "./call.js"
import * as Classify from "./classify.js"
import * as Core from "./core.js"
import * as M from "./metrics.js"
import type { Spec } from "./policy.js"
import { Shell } from "./shell.js"

const settleWith = (permit: PermitImpl, outcome: Classify.Outcome, reason: unknown): Effect.Effect<void> =>
  Effect.suspend(() => permit.settle(outcome, reason))

interface Rejection {
  readonly error: CircuitOpenError
  readonly state: State
  readonly retryAfterMillis: number
}

/** The second step of `allow`: the first report counts, later ones are no-ops. */
export class PermitImpl implements Permit {
  done = false
  constructor(readonly breaker: Breaker, readonly token: number, readonly start: number) {}
  get success(): Effect.Effect<void> {
    return settleWith(this, Classify.SUCCESS, undefined)
  }
  get ignore(): Effect.Effect<void> {
    return settleWith(this, Classify.IGNORE, undefined)
  }
  get failure(): (reason: unknown) => Effect.Effect<void> {
    return (reason) => settleWith(this, Classify.classifyReported(reason), reason)
  }
  settle(outcome: Classify.Outcome, reason: unknown): Effect.Effect<void> {
    return this.settleNow(outcome, reason) ?? Effect.void
  }
  /**
   * Records the outcome at once; the effect that publishes the state change it caused, if any.
   * A failure's `outcome` is `Classify.classifyReported(reason)`.
   */
  settleNow(outcome: Classify.Outcome, reason: unknown): Effect.Effect<void> | undefined {
    if (this.done) return undefined
    this.done = true
    const b = this.breaker
    b.permits--
    b.record(outcome, this.token, this.start, b.clock.unsafeCurrentTimeMillis(), reason)
    return b.core.pending.length === 0 ? undefined : b.flush()
  }
}
export class Breaker extends Shell implements CircuitBreaker {
  /** the last rejection, reused while its state and retry-after stay the same */
  private rejection: Rejection | undefined = undefined
  private boundProtect: CircuitBreaker["protect"] | undefined = undefined
  private boundTryPromise: CircuitBreaker["tryPromise"] | undefined = undefined

  /** Builds a breaker; a Schedule for the open period takes its first step. */
  static make(
    name: string,
    spec: Spec,
    clock: Clock.Clock,
    metrics: InstanceMetrics.Registry
  ): Effect.Effect<Breaker> {
    const now = clock.unsafeCurrentTimeMillis()
    const breaker = new Breaker(name, spec, clock, metrics, now)
    return spec.openForDelays === undefined ? Effect.succeed(breaker) : Effect.as(breaker.resetOpenFor(now), breaker)
  }

  // -------------------------------------------------------------------------------------------
  // protect
  // -------------------------------------------------------------------------------------------

  get protect(): CircuitBreaker["protect"] {
    return this.boundProtect ??= (effect, options) => {
      const call = new ProtectedCall(this, effect, options?.isFailure)
      return Effect.withFiberRuntime((fiber) => call.run(fiber))
    }
  }

  get tryPromise(): CircuitBreaker["tryPromise"] {
    return this.boundTryPromise ??= (evaluate: PermitPromise.Evaluate<any, any>, options?: ProtectOptions<any>) =>
      PermitPromise.tryPromise(new PromiseGate(this, options?.isFailure), evaluate)
  }

  /**
   * Decides a call now, as `protect` does: the core's token for a plain admission (Closed, no state
   * change to publish, the call not timed), else the effect that runs `call.general()` the general way.
   */
  decideNow<A, E, R>(
    call: PermitPromise.General<A, E, R>,
    isFailure: ProtectOptions<E>["isFailure"]
  ): number | Effect.Effect<A, E | CircuitOpenError, R> {
    const core = this.core
    let now: number
    if (this.rampEnd === 0 && !this.isolated && core.untimed()) {
      // nothing this call does depends on the time: the clock is not read (about 35 ns)
      now = this.lastUsed
      this.undatedUse = true
    } else {
      now = this.clock.unsafeCurrentTimeMillis()
      this.lastUsed = now
      if (this.special(now)) return this.runSpecial(now, call.general(), isFailure)
    }
    const token = core.acquire(now)
    if (token < 0 || core.pending.length > 0 || this.spec.timesCalls) {
      return this.decided(token, call.general(), now, isFailure)
    }
    return token
  }

  /** One call at `now`, read from this breaker's clock by the caller (a registry reads it once). */
  runAt<A, E, R>(
    now: number,
    effect: Effect.Effect<A, E, R>,
    isFailure?: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    this.lastUsed = now
    if (this.special(now)) return this.runSpecial(now, effect, isFailure)
    return this.decide(effect, now, isFailure)
  }

  /**
   * Whether a call at `now` (already recorded in `lastUsed`) must take the general path of `runAt`
   * instead of a plain admission by the core: isolated, ramping, or a probe slot to take.
   */
  special(now: number): boolean {
    // a ramp that is over is forgotten, so the clock-free admission applies again
    if (this.rampEnd !== 0 && now >= this.rampEnd) this.rampEnd = 0
    return this.isolated || now < this.rampEnd || this.core.mayProbe(now)
  }

  /** The rest of `runAt` past `lastUsed` (a `ProtectedCall` that cannot take its fast path). */
  runSpecial<A, E, R>(
    now: number,
    effect: Effect.Effect<A, E, R>,
    isFailure?: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    if (this.isolated) return this.rejectIsolated(now)
    if (now < this.rampEnd) return this.ramped(now, () => this.decide(effect, now, isFailure))
    return Effect.uninterruptibleMask((restore) => this.decide(restore(effect), now, isFailure))
  }

  private decide<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    now: number,
    isFailure: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    return this.decided(this.core.acquire(now), effect, now, isFailure)
  }

  /** A call the core answered with `token` (a token, `NEED_RANDOM` or `REJECT`). */
  decided<A, E, R>(
    token: number,
    effect: Effect.Effect<A, E, R>,
    now: number,
    isFailure: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    if (token >= 0) return this.admitted(effect, token, now, isFailure)
    if (token === Core.NEED_RANDOM) {
      return Effect.randomWith((random) =>
        Effect.flatMap(random.next, (u): Effect.Effect<A, E | CircuitOpenError, R> => {
          const second = this.core.acquireRandom(now, u)
          return second >= 0 ? this.admitted(effect, second, now, isFailure) : this.reject(now)
        })
      )
    }
    return this.reject(now)
  }

  admitted<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    token: number,
    now: number,
    isFailure: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E, R> {
    const h = callHandlers(this, token, this.spec.timesCalls ? now : Number.NaN, isFailure ?? this.spec.isFailure)
    const run = Effect.matchCauseEffect(effect, h) as Effect.Effect<A, E, R>
    return this.core.pending.length === 0 ? run : Effect.zipRight(this.flush(), run)
  }

  /** A call ended with a value; `start` is NaN unless the call is timed. */
  succeeded<A>(a: A, token: number, start: number): Effect.Effect<A> {
    this.values[M.SUCCESS]++
    const core = this.core
    if (Number.isNaN(start)) {
      core.success(token, core.successNeedsTime() ? this.clock.unsafeCurrentTimeMillis() : this.lastUsed, 0)
    } else {
      const end = this.clock.unsafeCurrentTimeMillis()
      core.success(token, end, end - start)
    }
    return core.pending.length === 0 ? Effect.succeed(a) : Effect.as(this.flush(), a)
  }

  /** A call failed: counted as `classifyCause` says, and the cause passed on unchanged. */
  failed<E>(
    cause: Cause.Cause<E>,
    token: number,
    start: number,
    isFailure: (e: E) => boolean
  ): Effect.Effect<never, E> {
    const outcome = Classify.classifyCause(cause, isFailure, this.spec.isExcluded)
    const reason = outcome === Classify.FAILURE ? Classify.reasonOf(cause) : undefined
    this.record(outcome, token, start, this.clock.unsafeCurrentTimeMillis(), reason)
    return this.core.pending.length === 0
      ? Effect.failCause(cause)
      : Effect.zipRight(this.flush(), Effect.failCause(cause))
  }

  /** A call during the ramp: admitted with the ramp's share (then decided as usual), else refused. */
  private ramped<A, E, R>(now: number, admit: () => Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> {
    const share = this.rampShare(now)
    return Effect.randomWith((random) =>
      Effect.flatMap(random.next, (u): Effect.Effect<A, E | CircuitOpenError, R> => {
        if (u < share) return admit()
        this.values[M.REJECTED]++
        this.core.rejected(now)
        return Effect.fail(
          new CircuitOpenError({ breaker: this.name, state: "HalfOpen", reason: "ramp", admitting: share }, true)
        )
      })
    )
  }

  // -------------------------------------------------------------------------------------------
  // rejections
  // -------------------------------------------------------------------------------------------

  // Rejections are built once per (state, retry-after millisecond): an error value costs
  // microseconds to construct, and a breaker under load rejects many calls per millisecond.
  private rejectionAt(now: number): CircuitOpenError {
    const current = this.currentState()
    const state = current === "Closed" ? "Open" : current
    const retryAfterMillis = this.isolated ? Number.NaN : this.core.retryAfterMillis(now)
    const last = this.rejection
    if (
      last !== undefined && last.state === state &&
      (last.retryAfterMillis === retryAfterMillis ||
        (Number.isNaN(retryAfterMillis) && Number.isNaN(last.retryAfterMillis)))
    ) return last.error
    const error = new CircuitOpenError(
      Number.isNaN(retryAfterMillis)
        ? { breaker: this.name, state }
        : { breaker: this.name, state, retryAfter: Duration.millis(retryAfterMillis) },
      true
    )
    this.rejection = { error, state, retryAfterMillis }
    return error
  }

  reject(now: number): Effect.Effect<never, CircuitOpenError> {
    this.values[M.REJECTED]++
    const error = this.rejectionAt(now)
    return this.core.pending.length === 0 ? Effect.fail(error) : Effect.zipRight(this.flush(), Effect.fail(error))
  }

  // A call rejected because the breaker is isolated: the core did not decide it, so it is told
  // (the rejection counts in `stats.rejections` like any other).
  rejectIsolated(now: number): Effect.Effect<never, CircuitOpenError> {
    this.core.rejected(now)
    return this.reject(now)
  }

  // -------------------------------------------------------------------------------------------
  // allow
  // -------------------------------------------------------------------------------------------

  get allow(): Effect.Effect<Permit, CircuitOpenError> {
    return Effect.suspend(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      this.lastUsed = now
      if (this.isolated) return this.rejectIsolated(now)
      if (now < this.rampEnd) return this.ramped(now, () => this.acquirePermit(now))
      // a probe slot reaches the caller as a permit, or is given back if the caller is interrupted
      if (this.core.mayProbe(now)) {
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            this.acquirePermit(now),
            (permit) => Effect.onInterrupt(restore(Effect.succeed(permit)), () => permit.ignore)
          )
        )
      }
      return this.acquirePermit(now)
    })
  }

  /**
   * `allow` in one synchronous step, for a caller that keeps the permit itself and gives it back
   * however its call ends (the HTTP server's per-request record): the permit, or the effect
   * `allow` runs when the call needs more (randomness, the ramp, a half-open probe, a rejection,
   * a state change to publish).
   */
  allowNow(): PermitImpl | Effect.Effect<Permit, CircuitOpenError> {
    const now = this.clock.unsafeCurrentTimeMillis()
    const core = this.core
    if (this.isolated || now < this.rampEnd || core.mayProbe(now)) return this.allow
    this.lastUsed = now
    const token = core.acquire(now)
    if (token < 0 || core.pending.length > 0) return this.afterAcquire(token, now)
    this.permits++
    return new PermitImpl(this, token, now)
  }

  private acquirePermit(now: number): Effect.Effect<Permit, CircuitOpenError> {
    return this.afterAcquire(this.core.acquire(now), now)
  }

  private afterAcquire(token: number, now: number): Effect.Effect<Permit, CircuitOpenError> {
    if (token >= 0) return this.permitted(token, now)
    if (token === Core.NEED_RANDOM) {
      return Effect.randomWith((random) =>
        Effect.flatMap(random.next, (u) => {
          const second = this.core.acquireRandom(now, u)
          return second >= 0 ? this.permitted(second, now) : this.reject(now)
        })
      )
    }
    return this.reject(now)
  }

  private permitted(token: number, now: number): Effect.Effect<Permit> {
    this.permits++
    const permit = new PermitImpl(this, token, now)
    return this.core.pending.length === 0 ? Effect.succeed(permit) : Effect.as(this.flush(), permit)
  }
}
