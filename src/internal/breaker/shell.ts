/**
 * The state side of a breaker: its core, counters and last errors, the publication of state
 * changes (metrics, the `changes` stream, the live view, logs, listeners), the open-period
 * schedule, and its lifecycle (isolate, reset, dispose). `Breaker` (`engine.ts`) adds the calls.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Stream from "effect/Stream"
import type { CircuitBreaker, RecordedError, State, StateChange, Stats } from "../../CircuitBreaker.js"
import type * as InstanceMetrics from "../instanceMetrics.js"
import { EventView } from "../stateView.js"
import * as Classify from "./classify.js"
import type * as Core from "./core.js"
import * as M from "./metrics.js"
import type { Spec } from "./policy.js"

const LAST_ERRORS = 5

const formatReason = (reason: unknown): string => {
  if (reason instanceof Error) return reason.message === "" ? reason.name : `${reason.name}: ${reason.message}`
  if (typeof reason === "object" && reason !== null && "_tag" in reason) return String(reason._tag)
  return String(reason)
}

/** The fields of a breaker and everything but its calls; `Breaker` is the one subclass. */
export abstract class Shell {
  readonly core: Core.Core
  /** epoch millis of the latest call (admitted or rejected) that read the clock */
  lastUsed: number
  /** a call since `lastUsed` was admitted without reading the clock (see `Core.untimed`) */
  undatedUse = false
  isolated = false
  disposed = false
  /** permits handed out by `allow` and not yet settled */
  permits = 0
  lastErrors: Array<RecordedError> | undefined = undefined
  hub: PubSub.PubSub<StateChange> | undefined = undefined
  values: Array<number>
  private readonly series: InstanceMetrics.Series
  private openForState: unknown = undefined
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

  currentState(): State {
    return this.isolated ? "Isolated" : this.core.state()
  }

  /**
   * The latest use as a registry's idle sweep at `now` sees it: a call admitted without reading
   * the clock since the last sweep counts as a use at `now`, so a breaker in constant use by calls
   * that never read the clock is kept (at most one sweep interval longer than its last call).
   */
  lastUseAt(now: number): number {
    if (this.undatedUse) {
      this.undatedUse = false
      this.lastUsed = now
    }
    return this.lastUsed
  }

  /** In use: a permit of `allow` is outstanding. */
  inUse(): boolean {
    return this.permits > 0
  }

  /**
   * Records an outcome at `end`, read from the clock; `reason` is what a failure is remembered by
   * in `stats.lastErrors`.
   */
  record(outcome: Classify.Outcome, token: number, start: number, end: number, reason: unknown): void {
    // `end` was read from the clock after every use so far, undated ones included
    if (end >= this.lastUsed) {
      this.lastUsed = end
      this.undatedUse = false
    }
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

  /** The share of calls the ramp admits at `now`. */
  rampShare(now: number): number {
    const ramp = this.spec.ramp!
    const elapsed = now - (this.rampEnd - ramp.overMillis)
    return Math.min(1, ramp.from + (1 - ramp.from) * elapsed / ramp.overMillis)
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
