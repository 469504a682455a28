/**
 * One synchronous interface over both breaker families, so the effectful shell is written once.
 * The cores are classes: a breaker holds its counting state in plain fields and shares its methods
 * with every other breaker (a breaker per tenant or per host carries no closures of its own).
 */
import type { Stats } from "../../CircuitBreaker.js"
import * as Machine from "./machine.js"
import * as Sre from "./sre.js"

export type CoreState = "Closed" | "Open" | "HalfOpen"

/** `acquire` results besides a token: the adaptive breaker's, which the state machine shares (REJECT) */
export { NEED_RANDOM, REJECT } from "./sre.js"

export interface Transition {
  readonly from: CoreState
  readonly to: CoreState
  readonly at: number
}

/** The counting part of the public `Stats`; the shell adds the name, the state and the last errors. */
export type CoreStats = Omit<Stats, "name" | "state" | "lastErrors">

export interface Core {
  state(): CoreState
  /** applies the changes that time alone causes (a state machine's Open → HalfOpen, interval roll-over) */
  tick(now: number): void
  /** whether a call at `now` may take a half-open probe slot (it must then give it back however it ends) */
  mayProbe(now: number): boolean
  /**
   * whether a call may be admitted, and its success recorded, at any time at all: nothing the core
   * does for them depends on the clock (a Closed state machine with neither an interval nor a
   * time-based rule)
   */
  untimed(): boolean
  /** whether a success must be recorded at its own time (else the time of the latest admission will do) */
  successNeedsTime(): boolean
  /** a token (≥ 0) to hand back with the outcome, `REJECT`, or `NEED_RANDOM` */
  acquire(now: number): number
  /** completes a `NEED_RANDOM` admission with `u` uniform in [0, 1) */
  acquireRandom(now: number, u: number): number
  success(token: number, now: number, elapsedMillis: number): void
  failure(token: number, now: number, elapsedMillis: number): void
  ignore(token: number, now: number): void
  /** counts a call rejected without asking `acquire` (the breaker is isolated) in `rejections` */
  rejected(now: number): void
  /** millis until a rejected caller may get through; NaN when unknown */
  retryAfterMillis(now: number): number
  reset(now: number): void
  /** records the outcome of an active recovery probe (it took no admission) */
  probed(success: boolean, now: number): void
  stats(now: number): CoreStats
  /** state changes not yet published (read-only: `takePending` empties it) */
  readonly pending: ReadonlyArray<Transition>
  /** the state changes not yet published, which the caller now publishes */
  takePending(): ReadonlyArray<Transition>
}

const sreStateOf = (ratio: number): CoreState => ratio <= 0 ? "Closed" : ratio >= 1 ? "Open" : "HalfOpen"

/**
 * The adaptive breaker. Its state is derived from the last decision: Closed (admits everything),
 * HalfOpen (drops a share at random), Open (admits only the periodic forced probe). The state is
 * only a report — admission depends on the ratio alone — and it returns to Closed only after the
 * ratio stayed ≤ 0 for `forcePassAfter`, so a ratio hovering around zero cannot flood the logs
 * and the `changes` stream with flips.
 */
export class SreCore extends Sre.State implements Core {
  pending: Array<Transition> = Machine.NO_TRANSITIONS as Array<Transition>
  current: CoreState = "Closed"
  /** since when the ratio is back at zero while the state is not Closed yet (−1: it is not) */
  calmSince = -1

  private observe(at: number): void {
    const next = sreStateOf(this.ratio)
    if (next === "Closed") {
      if (this.current === "Closed") return
      if (this.calmSince < 0) this.calmSince = at
      if (at - this.calmSince < this.params.forcePassAfterMillis) return
    }
    this.calmSince = -1
    if (next !== this.current) {
      if (this.pending === Machine.NO_TRANSITIONS) this.pending = []
      this.pending.push({ from: this.current, to: next, at })
      this.current = next
    }
  }

  takePending(): ReadonlyArray<Transition> {
    const changes = this.pending
    this.pending = Machine.NO_TRANSITIONS as Array<Transition>
    return changes
  }

  state(): CoreState {
    return this.current
  }
  // the adaptive breaker's state is that of its last decision: time alone changes nothing
  tick(): void {}
  mayProbe(): boolean {
    return false
  }
  // the adaptive breaker's window is in time
  untimed(): boolean {
    return false
  }
  successNeedsTime(): boolean {
    return false
  }
  acquire(t: number): number {
    // ADMIT is token 0; REJECT and NEED_RANDOM are the same numbers here and in `Sre`
    const d = Sre.decide(this, t)
    if (this.current !== "Closed" || this.ratio > 0) this.observe(t)
    return d
  }
  acquireRandom(t: number, u: number): number {
    return Sre.decideWithRandom(this, t, u)
  }
  success(_token: number, t: number): void {
    Sre.markSuccess(this, t)
  }
  failure(_token: number, t: number): void {
    Sre.markFailure(this, t)
  }
  ignore(): void {}
  rejected(t: number): void {
    Sre.markDrop(this, t)
  }
  retryAfterMillis(t: number): number {
    return this.current === "Open" ? Sre.retryAfterMillis(this, t) : Number.NaN
  }
  reset(t: number): void {
    Sre.reset(this, t)
    this.current = "Closed"
    this.calmSince = -1
  }
  // a probe's outcome enters the window like a forced pass's; the state is observed at once, so a
  // breaker nobody calls still moves towards Closed with each successful probe
  probed(success: boolean, t: number): void {
    if (success) Sre.markSuccess(this, t)
    else Sre.markFailure(this, t)
    this.ratio = Sre.dropRatio(this, t)
    this.ratioBucket = Number.NaN
    this.observe(t)
  }
  stats(t: number): CoreStats {
    const c = Sre.counts(this, t)
    const requests = c.successes + c.failures
    return {
      requests,
      successes: c.successes,
      failures: c.failures,
      rejections: c.drops,
      consecutiveSuccesses: this.consecutiveSuccesses,
      consecutiveFailures: this.consecutiveFailures,
      failureRate: requests === 0 ? Number.NaN : c.failures / requests,
      dropRatio: Math.max(0, this.ratio)
    }
  }
}

/**
 * A state-machine breaker. `slowMillis` (∞ when slow calls are not tracked) marks calls slower
 * than it as slow for the rule.
 */
export class MachineCore implements Core {
  readonly machine: Machine.State
  rejections = 0
  /** neither an interval roll-over nor a time-based rule: Closed, nothing depends on the clock */
  private readonly clockFree: boolean

  constructor(params: Machine.Params, openMillis: number, readonly slowMillis: number, now: number) {
    this.machine = Machine.make(params, openMillis, now)
    this.clockFree = params.intervalMillis === 0 && !params.rule.timed
  }

  get pending(): ReadonlyArray<Transition> {
    return this.machine.pending
  }
  takePending(): ReadonlyArray<Transition> {
    const changes = this.machine.pending
    this.machine.pending = Machine.NO_TRANSITIONS
    return changes
  }
  state(): CoreState {
    return this.machine.state
  }
  tick(t: number): void {
    Machine.tick(this.machine, t)
  }
  mayProbe(now: number): boolean {
    const m = this.machine
    return m.state === "HalfOpen" || (m.state === "Open" && now >= m.openUntil)
  }
  untimed(): boolean {
    return this.clockFree && this.machine.state === "Closed"
  }
  successNeedsTime(): boolean {
    // a trip or a close happens at the outcome's time, and so does an interval roll-over
    return this.machine.state !== "Closed" || this.machine.params.intervalMillis > 0
  }
  acquire(t: number): number {
    const token = Machine.acquire(this.machine, t)
    if (token === Machine.REJECT) this.rejections++
    return token
  }
  // never reached: a state machine does not answer NEED_RANDOM (admitting here would count twice)
  acquireRandom(): number {
    return Machine.REJECT
  }
  success(token: number, t: number, elapsed: number): void {
    Machine.success(this.machine, token, t, elapsed >= this.slowMillis)
  }
  failure(token: number, t: number, elapsed: number): void {
    Machine.failure(this.machine, token, t, elapsed >= this.slowMillis)
  }
  ignore(token: number, t: number): void {
    Machine.ignore(this.machine, token, t)
  }
  rejected(): void {
    this.rejections++
  }
  retryAfterMillis(t: number): number {
    return Machine.retryAfterMillis(this.machine, t)
  }
  reset(t: number): void {
    Machine.reset(this.machine, t)
    this.rejections = 0
  }
  probed(success: boolean, t: number): void {
    if (success) Machine.probeSuccess(this.machine, t)
    else Machine.probeFailure(this.machine, t)
  }
  /** opens the breaker on another instance's word (a shared state, a quorum) */
  forceOpen(t: number): void {
    Machine.forceOpen(this.machine, t)
  }
  /** closes the breaker on another instance's word (a shared state that closed) */
  forceClosed(t: number): void {
    Machine.forceClosed(this.machine, t)
  }
  stats(t: number): CoreStats {
    const m = this.machine
    Machine.tick(m, t)
    const c = m.counts
    return {
      requests: c.requests,
      successes: c.totalSuccesses,
      failures: c.totalFailures,
      rejections: this.rejections,
      consecutiveSuccesses: c.consecutiveSuccesses,
      consecutiveFailures: c.consecutiveFailures,
      failureRate: m.params.rule.failureRate(c, t)
    }
  }
}
