/**
 * The effectful shell around a breaker core: admission, outcome recording, publication of state
 * changes, permits, and the `changes` stream.
 *
 * A breaker is one object with plain fields; its methods live on the prototype. On the hot path a
 * call reads the clock once, decides in one synchronous step on the core, and wraps the effect in
 * one `matchCauseEffect`. A success is recorded at the time of the
 * latest admission unless the core needs its own time (a state machine that is not Closed, an
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
import * as PubSub from "effect/PubSub"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Stream from "effect/Stream"
import type {
  CircuitBreaker,
  Permit,
  ProtectOptions,
  RecordedError,
  State,
  StateChange,
  Stats
} from "../../CircuitBreaker.js"
import { CircuitOpenError } from "../../Errors.js"
import type * as InstanceMetrics from "../instanceMetrics.js"
import { EventView } from "../stateView.js"
import * as Classify from "./classify.js"
import * as Core from "./core.js"
import * as M from "./metrics.js"
import type { Spec } from "./policy.js"

const LAST_ERRORS = 5

// Builds match handlers from two arguments. Passing the closures as arguments keeps them
// anonymous, which measures cheaper than object-literal methods under loaders that preserve
// function names (tsx, esbuild's keepNames).
const handlers = <A, E, B, E2>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<B, E2>,
  onSuccess: (a: A) => Effect.Effect<B, E2>
) => ({ onFailure, onSuccess })

/**
 * The outcome handlers of one call. They are built per call — two closures and an object, about
 * 15 ns measured — rather than cached per breaker, where they would cost about 250 bytes per idle
 * breaker. `start` is NaN unless the call is timed (slow-call tracking).
 */
const callHandlers = (breaker: Breaker, token: number, start: number, isFailure: (e: any) => boolean) =>
  handlers(
    (cause: Cause.Cause<unknown>) => breaker.failed(cause, token, start, isFailure),
    (a: unknown) => breaker.succeeded(a, token, start)
  )

const formatReason = (reason: unknown): string => {
  if (reason instanceof Error) return reason.message === "" ? reason.name : `${reason.name}: ${reason.message}`
  if (typeof reason === "object" && reason !== null && "_tag" in reason) return String(reason._tag)
  return String(reason)
}

const settleWith = (permit: PermitImpl, outcome: Classify.Outcome, reason: unknown): Effect.Effect<void> =>
  Effect.suspend(() => permit.settle(outcome, reason))
const failureOf = (permit: PermitImpl) => (reason: unknown): Effect.Effect<void> =>
  settleWith(permit, Classify.classifyReported(reason), reason)

interface Rejection {
  readonly error: CircuitOpenError
  readonly state: State
  readonly retryAfterMillis: number
}

/** The second step of `allow`: the first report counts, later ones are no-ops. */
class PermitImpl implements Permit {
  done = false
  readonly failure: (reason: unknown) => Effect.Effect<void>
  constructor(readonly breaker: Breaker, readonly token: number, readonly start: number) {
    this.failure = failureOf(this)
  }
  get success(): Effect.Effect<void> {
    return settleWith(this, Classify.SUCCESS, undefined)
  }
  get ignore(): Effect.Effect<void> {
    return settleWith(this, Classify.IGNORE, undefined)
  }
  settle(outcome: Classify.Outcome, reason: unknown): Effect.Effect<void> {
    if (this.done) return Effect.void
    this.done = true
    const b = this.breaker
    b.permits--
    b.record(outcome, this.token, this.start, b.clock.unsafeCurrentTimeMillis(), reason)
    return b.core.pending.length === 0 ? Effect.void : b.flush()
  }
}

export class Breaker implements CircuitBreaker {
  readonly core: Core.Core
  /** epoch millis of the latest call (admitted or rejected) */
  lastUsed: number
  isolated = false
  disposed = false
  /** permits handed out by `allow` and not yet settled */
  permits = 0
  lastErrors: Array<RecordedError> | undefined = undefined
  hub: PubSub.PubSub<StateChange> | undefined = undefined
  values: Array<number>
  private readonly series: InstanceMetrics.Series
  private openForState: unknown = undefined
  /** the last rejection, reused while its state and retry-after stay the same */
  private rejection: Rejection | undefined = undefined
  private boundProtect: CircuitBreaker["protect"] | undefined = undefined
  /** while `clock` is before it, the admission ramp after a close applies (0: no ramp) */
  rampEnd = 0
  /** told of every published state change, synchronously (the probe's latch, cluster sync) */
  listeners: Array<(change: StateChange) => void> | undefined = undefined

  constructor(
    readonly name: string,
    readonly spec: Spec,
    readonly clock: Clock.Clock,
    readonly metrics: InstanceMetrics.Registry,
    now: number
  ) {
    this.core = spec.makeCore(now)
    this.lastUsed = now
    this.series = metrics.acquire(M.kind, name)
    this.values = this.series.values
    M.member(this.values, "Closed", 1)
  }

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

  currentState(): State {
    return this.isolated ? "Isolated" : this.core.state()
  }

  /** In use: a permit of `allow` is outstanding. */
  inUse(): boolean {
    return this.permits > 0
  }

  // -------------------------------------------------------------------------------------------
  // protect
  // -------------------------------------------------------------------------------------------

  get protect(): CircuitBreaker["protect"] {
    return this.boundProtect ??= (effect, options) => Effect.suspend(() => this.run(effect, options?.isFailure))
  }

  /** One call at the current time (the body of `protect`). */
  run<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    isFailure?: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    return this.runAt(this.clock.unsafeCurrentTimeMillis(), effect, isFailure)
  }

  /** One call at `now`, read from this breaker's clock by the caller (a registry reads it once). */
  runAt<A, E, R>(
    now: number,
    effect: Effect.Effect<A, E, R>,
    isFailure?: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    this.lastUsed = now
    if (this.isolated) return this.rejectIsolated(now)
    if (now < this.rampEnd) return this.ramped(now, () => this.decide(effect, now, isFailure))
    const core = this.core
    if (core.mayProbe(now)) {
      return Effect.uninterruptibleMask((restore) => this.decide(restore(effect), now, isFailure))
    }
    return this.decide(effect, now, isFailure)
  }

  private decide<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    now: number,
    isFailure: ProtectOptions<E>["isFailure"]
  ): Effect.Effect<A, E | CircuitOpenError, R> {
    const token = this.core.acquire(now)
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

  private admitted<A, E, R>(
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

  /** Records an outcome; `reason` is what a failure is remembered by in `stats.lastErrors`. */
  record(outcome: Classify.Outcome, token: number, start: number, end: number, reason: unknown): void {
    const elapsed = Number.isNaN(start) ? 0 : end - start
    if (outcome === Classify.SUCCESS) {
      this.values[M.SUCCESS]++
      this.core.success(token, end, elapsed)
    } else if (outcome === Classify.FAILURE) {
      this.values[M.FAILURE]++
      this.rememberError(end, reason)
      this.core.failure(token, end, elapsed)
    } else {
      this.values[M.IGNORED]++
      this.core.ignore(token, end)
    }
  }

  // -------------------------------------------------------------------------------------------
  // ramp after close
  // -------------------------------------------------------------------------------------------

  /** The share of calls the ramp admits at `now`. */
  rampShare(now: number): number {
    const ramp = this.spec.ramp!
    const elapsed = now - (this.rampEnd - ramp.overMillis)
    return Math.min(1, ramp.from + (1 - ramp.from) * elapsed / ramp.overMillis)
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
  // active recovery probe, changes from outside
  // -------------------------------------------------------------------------------------------

  /** Records a recovery probe's outcome and publishes the change it caused. */
  probed(success: boolean, reason: unknown): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.isolated || this.disposed) return Effect.void
      const now = this.clock.unsafeCurrentTimeMillis()
      if (!success) this.rememberError(now, reason)
      this.core.probed(success, now)
      return this.core.pending.length === 0 ? Effect.void : this.flush()
    })
  }

  /** Applies a state decided elsewhere (a cluster) and publishes the change. */
  applyExternal(apply: (core: Core.Core, now: number) => void): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.isolated || this.disposed) return Effect.void
      apply(this.core, this.clock.unsafeCurrentTimeMillis())
      return this.core.pending.length === 0 ? Effect.void : this.flush()
    })
  }

  private rememberError(at: number, reason: unknown): void {
    const errors = this.lastErrors ??= []
    if (errors.length === LAST_ERRORS) errors.shift()
    errors.push({ at, reason })
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

  private acquirePermit(now: number): Effect.Effect<Permit, CircuitOpenError> {
    const token = this.core.acquire(now)
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

  // -------------------------------------------------------------------------------------------
  // state changes
  // -------------------------------------------------------------------------------------------

  /** Steps the open-period schedule after a trip: the next trip uses its next delay. */
  private stepOpenFor(now: number): Effect.Effect<void> {
    const delays = this.spec.openForDelays
    const machine = (this.core as Core.MachineCore).machine
    if (delays === undefined) return Effect.void
    return Effect.map(delays.step(now, undefined, this.openForState), ([next, delay, decision]) => {
      if (ScheduleDecision.isDone(decision)) return
      this.openForState = next
      machine.openMillis = Duration.toMillis(delay)
    })
  }

  resetOpenFor(now: number): Effect.Effect<void> {
    const delays = this.spec.openForDelays
    if (delays === undefined) return Effect.void
    return Effect.suspend(() => {
      this.openForState = delays.initial
      return this.stepOpenFor(now)
    })
  }

  private publish(change: StateChange): Effect.Effect<void> {
    if (!this.disposed) M.changed(this.values, change.from, change.to)
    this.hub?.unsafeOffer(change)
    this.eventView?.offer(change)
    const errors = (this.lastErrors ?? []).map((e) => `${new Date(e.at).toISOString()} ${formatReason(e.reason)}`)
    const message = `circuit breaker "${this.name}" ${change.from} → ${change.to}`
    const log = change.to === "Closed" ? Effect.logInfo(message) : Effect.logWarning(message)
    return log.pipe(Effect.annotateLogs({ breaker: this.name, from: change.from, to: change.to, lastErrors: errors }))
  }

  /**
   * Publishes the state changes the core recorded in its last synchronous step. Uninterruptible:
   * the changes have left `pending`, so a caller interrupted half-way would lose them (and the
   * step of the open-period schedule). It runs only when the state changed.
   */
  flush(): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
      const changes = this.core.takePending()
      return Effect.forEach(changes, (t) => {
        this.changed(t.from, t.to, t.at)
        const step = t.to === "Open"
          ? this.stepOpenFor(t.at)
          : t.to === "Closed"
          ? this.resetOpenFor(t.at)
          : Effect.void
        return Effect.zipRight(
          step,
          this.isolated ? Effect.void : this.publish({ name: this.name, from: t.from, to: t.to, at: t.at })
        )
      }, { discard: true })
    }))
  }

  /** Bookkeeping of a state change: the ramp starts at a close and ends at any other change. */
  private changed(from: State, to: State, at: number): void {
    const ramp = this.spec.ramp
    this.rampEnd = to === "Closed" && from !== "Closed" && ramp !== undefined ? at + ramp.overMillis : 0
    const listeners = this.listeners
    if (listeners !== undefined) {
      const change = { name: this.name, from, to, at }
      for (const listener of listeners) listener(change)
    }
  }

  get changes(): Stream.Stream<StateChange> {
    return Stream.unwrap(Effect.suspend(() => {
      if (this.disposed) return Effect.succeed(Stream.empty)
      if (this.hub !== undefined) return Effect.succeed(Stream.fromPubSub(this.hub))
      // the hub exists once someone listens: a breaker nobody watches keeps none
      return Effect.map(PubSub.unbounded<StateChange>(), (hub) => Stream.fromPubSub(this.hub ??= hub))
    }))
  }

  get isolate(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.isolated) return Effect.void
      const now = this.clock.unsafeCurrentTimeMillis()
      const from = this.core.state()
      this.isolated = true
      return this.publish({ name: this.name, from, to: "Isolated", at: now })
    })
  }

  get reset(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      const from = this.currentState()
      this.isolated = false
      this.core.takePending()
      this.core.reset(now)
      this.lastErrors = undefined
      if (from !== "Closed") this.changed(from, "Closed", now)
      this.rampEnd = 0
      const announce = from === "Closed" ? Effect.void : this.publish({ name: this.name, from, to: "Closed", at: now })
      return Effect.zipRight(this.resetOpenFor(now), announce)
    })
  }

  // `state` and `stats` see the changes time alone causes (Open → HalfOpen once the open period
  // is over), as a call would, and publish them: an idle breaker does not report Open forever.
  get state(): Effect.Effect<State> {
    return Effect.suspend(() => {
      this.core.tick(this.clock.unsafeCurrentTimeMillis())
      return this.core.pending.length === 0
        ? Effect.succeed(this.currentState())
        : Effect.zipRight(this.flush(), Effect.sync(() => this.currentState()))
    })
  }

  private eventView: EventView<StateChange, Stats> | undefined = undefined

  /** The live view: made for its first reader, it hears every published state change from then on. */
  get view(): CircuitBreaker["view"] {
    if (this.eventView === undefined) {
      const events = new EventView<StateChange, Stats>(
        this.stats,
        (change) => Effect.map(this.stats, (s) => s.state === change.to ? s : { ...s, state: change.to })
      )
      this.eventView = events
    }
    return this.eventView.view
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.suspend(() => {
      const s = this.core.stats(this.clock.unsafeCurrentTimeMillis())
      const snapshot: Stats = {
        name: this.name,
        state: this.currentState(),
        ...s,
        lastErrors: this.lastErrors?.slice() ?? []
      }
      return this.core.pending.length === 0 ? Effect.succeed(snapshot) : Effect.as(this.flush(), snapshot)
    })
  }

  /**
   * Leaves the instance registry (its series goes when no other breaker shares the name) and ends
   * the `changes` stream. The breaker still answers calls made through a reference kept elsewhere;
   * their counts go to a series nobody exports any more, or to the name's shared series.
   */
  dispose(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.disposed) return Effect.void
      this.disposed = true
      M.member(this.values, this.currentState(), -1)
      this.metrics.release(M.kind, this.series)
      const hub = this.hub
      return hub === undefined ? Effect.void : PubSub.shutdown(hub)
    })
  }
}
