/**
 * The state-machine breaker (gobreaker semantics) with pluggable trip rules. Pure functions over a
 * plain, closure-held state; the effectful shell reads the clock once per call and runs one of
 * these functions in one synchronous step.
 *
 * Closed → Open when the rule says so after an outcome; Open → HalfOpen lazily, at the first call
 * after `openUntil`; HalfOpen admits `halfOpenMaxCalls` probes, closes when that many succeed and
 * reopens on any failure. Every change of state (and every `interval` roll-over while Closed)
 * starts a new generation: an outcome that belongs to an older generation is ignored, so a slow
 * call admitted before a trip cannot close or reopen the breaker afterwards.
 */
import * as Buckets from "./buckets.js"

export type MachineState = "Closed" | "Open" | "HalfOpen"

/**
 * The counts of the current generation (gobreaker's `Counts`). `requests` counts, while Closed, the
 * calls whose outcome (success or failure) arrived, and while HalfOpen the probes admitted (a probe
 * slot is taken at admission and given back by an outcome that counts as neither). A Closed call
 * enters `requests` only when it settles: one whose caller is interrupted never reports back (the
 * runtime skips outcome handlers on an interrupted fiber unless they run uninterruptibly, which
 * would double the cost of the happy path), so counting it at admission would leave it in
 * `requests` for good.
 */
export interface Counts {
  requests: number
  totalSuccesses: number
  totalFailures: number
  consecutiveSuccesses: number
  consecutiveFailures: number
}

/** A trip rule: its own window over outcomes, and the decision. */
export interface Rule {
  /** whether outcomes are recorded in time (a window of time buckets) rather than in order */
  readonly timed: boolean
  /** records an outcome; `slow` when the call took longer than the slow-call threshold */
  readonly record: (now: number, failure: boolean, slow: boolean) => void
  readonly shouldTrip: (counts: Counts, now: number) => boolean
  readonly clear: (now: number) => void
  /** failure rate over the rule's window, in [0, 1] (NaN when it has no data) */
  readonly failureRate: (counts: Counts, now: number) => number
}

export const REJECT = -1

export interface Transition {
  readonly from: MachineState
  readonly to: MachineState
  readonly at: number
}

export interface Params {
  /** 0: counts are never cleared while Closed */
  readonly intervalMillis: number
  readonly halfOpenMaxCalls: number
  readonly rule: Rule
}

export interface State {
  readonly params: Params
  state: MachineState
  generation: number
  counts: Counts
  /** Closed: when the counts roll over (∞ when never) */
  expiry: number
  /** Open: when the breaker turns HalfOpen */
  openUntil: number
  /** how long the next trip holds the breaker open; the shell may change it between trips */
  openMillis: number
  /** trips since the breaker was last Closed (0 on the first trip) */
  trips: number
  /** state changes not yet published by the shell (`NO_TRANSITIONS` while there are none) */
  pending: Array<Transition>
}

/**
 * The `pending` of a state without unpublished changes: one shared, frozen empty array, so a
 * breaker carries no array of its own until its state changes.
 */
export const NO_TRANSITIONS: Array<Transition> = Object.freeze([]) as unknown as Array<Transition>

const emptyCounts = (): Counts => ({
  requests: 0,
  totalSuccesses: 0,
  totalFailures: 0,
  consecutiveSuccesses: 0,
  consecutiveFailures: 0
})

const clearCounts = (c: Counts): void => {
  c.requests = 0
  c.totalSuccesses = 0
  c.totalFailures = 0
  c.consecutiveSuccesses = 0
  c.consecutiveFailures = 0
}

export const make = (params: Params, openMillis: number, now: number): State => ({
  params,
  state: "Closed",
  generation: 0,
  counts: emptyCounts(),
  expiry: params.intervalMillis > 0 ? now + params.intervalMillis : Number.POSITIVE_INFINITY,
  openUntil: 0,
  openMillis,
  trips: 0,
  pending: NO_TRANSITIONS
})

const newGeneration = (s: State, now: number): void => {
  s.generation++
  clearCounts(s.counts)
  s.params.rule.clear(now)
  if (s.state === "Closed") {
    s.expiry = s.params.intervalMillis > 0 ? now + s.params.intervalMillis : Number.POSITIVE_INFINITY
  } else if (s.state === "Open") {
    s.expiry = Number.POSITIVE_INFINITY
    s.openUntil = now + s.openMillis
  } else {
    s.expiry = Number.POSITIVE_INFINITY
  }
}

const setState = (s: State, to: MachineState, now: number): void => {
  if (s.state === to) return
  const from = s.state
  if (to === "Open") s.trips++
  if (to === "Closed") s.trips = 0
  s.state = to
  newGeneration(s, now)
  if (s.pending === NO_TRANSITIONS) s.pending = []
  s.pending.push({ from, to, at: now })
}

/** Applies the time-driven changes: interval roll-over while Closed, Open → HalfOpen. */
export const tick = (s: State, now: number): void => {
  if (s.state === "Closed") {
    if (now >= s.expiry) newGeneration(s, now)
  } else if (s.state === "Open" && now >= s.openUntil) {
    setState(s, "HalfOpen", now)
  }
}

/** Admission: the generation the call belongs to, or `REJECT`. */
export const acquire = (s: State, now: number): number => {
  if (s.state !== "Closed" || now >= s.expiry) {
    tick(s, now)
    if (s.state === "Open") return REJECT
    if (s.state === "HalfOpen") {
      if (s.counts.requests >= s.params.halfOpenMaxCalls) return REJECT
      s.counts.requests++
    }
  }
  return s.generation
}

export const success = (s: State, generation: number, now: number, slow: boolean): void => {
  tick(s, now)
  if (generation !== s.generation) return
  const c = s.counts
  c.totalSuccesses++
  c.consecutiveSuccesses++
  c.consecutiveFailures = 0
  if (s.state === "Closed") {
    c.requests++
    s.params.rule.record(now, false, slow)
    if (slow && s.params.rule.shouldTrip(c, now)) setState(s, "Open", now)
  } else if (s.state === "HalfOpen" && c.consecutiveSuccesses >= s.params.halfOpenMaxCalls) {
    setState(s, "Closed", now)
  }
}

export const failure = (s: State, generation: number, now: number, slow: boolean): void => {
  tick(s, now)
  if (generation !== s.generation) return
  const c = s.counts
  c.totalFailures++
  c.consecutiveFailures++
  c.consecutiveSuccesses = 0
  if (s.state === "Closed") {
    c.requests++
    s.params.rule.record(now, true, slow)
    if (s.params.rule.shouldTrip(c, now)) setState(s, "Open", now)
  } else if (s.state === "HalfOpen") {
    setState(s, "Open", now)
  }
}

/**
 * An outcome that counts as neither: a half-open probe gives its slot back; a Closed call was never
 * in `requests` (it enters them when it settles), so nothing changes.
 */
export const ignore = (s: State, generation: number, now: number): void => {
  tick(s, now)
  if (generation !== s.generation) return
  if (s.state === "HalfOpen" && s.counts.requests > 0) s.counts.requests--
}

/**
 * An active recovery probe succeeded: it counts as a half-open success that took no probe slot
 * (an Open breaker turns HalfOpen first), so `halfOpenMaxCalls` such successes close the breaker.
 */
export const probeSuccess = (s: State, now: number): void => {
  tick(s, now)
  if (s.state === "Closed") return
  if (s.state === "Open") setState(s, "HalfOpen", now)
  const c = s.counts
  c.totalSuccesses++
  c.consecutiveSuccesses++
  c.consecutiveFailures = 0
  if (c.consecutiveSuccesses >= s.params.halfOpenMaxCalls) setState(s, "Closed", now)
}

/**
 * An active recovery probe failed: a HalfOpen breaker reopens (as on a failed probe call); an
 * Open one stays open without starting its open period again.
 */
export const probeFailure = (s: State, now: number): void => {
  tick(s, now)
  if (s.state !== "HalfOpen") return
  s.counts.totalFailures++
  s.counts.consecutiveFailures++
  s.counts.consecutiveSuccesses = 0
  setState(s, "Open", now)
}

/** Opens the breaker from outside (another instance saw the downstream fail); Open stays as is. */
export const forceOpen = (s: State, now: number): void => {
  if (s.state !== "Open") setState(s, "Open", now)
}

/** Closes the breaker from outside (the shared state closed elsewhere). */
export const forceClosed = (s: State, now: number): void => {
  if (s.state !== "Closed") setState(s, "Closed", now)
}

/** Time until the breaker turns HalfOpen, in millis (NaN when not Open). */
export const retryAfterMillis = (s: State, now: number): number =>
  s.state === "Open" ? Math.max(0, s.openUntil - now) : Number.NaN

/** Back to Closed with empty counts (no transition is recorded; the shell reports its own). */
export const reset = (s: State, now: number): void => {
  s.state = "Closed"
  s.trips = 0
  newGeneration(s, now)
}

// ---------------------------------------------------------------------------------------------
// Trip rules
// ---------------------------------------------------------------------------------------------

const failureRateOfCounts = (c: Counts): number => {
  const n = c.totalSuccesses + c.totalFailures
  return n === 0 ? Number.NaN : c.totalFailures / n
}

// Rules are classes so a breaker's rule costs its fields only: a breaker per tenant or per host
// must not carry a set of closures each.

class ConsecutiveRule implements Rule {
  get timed(): boolean {
    return false
  }
  constructor(readonly threshold: number) {}
  record(): void {}
  shouldTrip(c: Counts): boolean {
    return c.consecutiveFailures >= this.threshold
  }
  clear(): void {}
  failureRate(c: Counts): number {
    return failureRateOfCounts(c)
  }
}

/** Trips after `threshold` consecutive failures. */
export const consecutiveRule = (threshold: number): Rule => new ConsecutiveRule(threshold)

class CustomRule implements Rule {
  get timed(): boolean {
    return false
  }
  constructor(readonly readyToTrip: (counts: Counts) => boolean) {}
  record(): void {}
  shouldTrip(c: Counts): boolean {
    return this.readyToTrip({ ...c })
  }
  clear(): void {}
  failureRate(c: Counts): number {
    return failureRateOfCounts(c)
  }
}

/** Trips on a caller-supplied predicate over the counts. */
export const customRule = (readyToTrip: (counts: Counts) => boolean): Rule => new CustomRule(readyToTrip)

export interface RateParams {
  readonly minimumCalls: number
  readonly failureRateThreshold: number
  readonly slowCallRateThreshold: number
}

const FAILED = 1
const SLOW = 2

class CountWindowRule implements Rule {
  get timed(): boolean {
    return false
  }
  /** outcome flags of the last `size` calls; allocated with the first outcome */
  ring: Uint8Array | undefined = undefined
  next = 0
  filled = 0
  failures = 0
  slows = 0
  constructor(readonly size: number, readonly p: RateParams) {}
  record(_now: number, failure: boolean, slow: boolean): void {
    const ring = this.ring ??= new Uint8Array(this.size)
    if (this.filled === this.size) {
      const old = ring[this.next]
      if (old & FAILED) this.failures--
      if (old & SLOW) this.slows--
    } else {
      this.filled++
    }
    ring[this.next] = (failure ? FAILED : 0) | (slow ? SLOW : 0)
    if (failure) this.failures++
    if (slow) this.slows++
    this.next = this.next + 1 === this.size ? 0 : this.next + 1
  }
  shouldTrip(): boolean {
    const { filled, p } = this
    return filled >= p.minimumCalls &&
      (this.failures / filled >= p.failureRateThreshold || this.slows / filled >= p.slowCallRateThreshold)
  }
  clear(): void {
    this.ring = undefined
    this.next = 0
    this.filled = 0
    this.failures = 0
    this.slows = 0
  }
  failureRate(): number {
    return this.filled === 0 ? Number.NaN : this.failures / this.filled
  }
}

/** Failure / slow-call rate over the last `size` calls (a ring of outcome flags with running sums). */
export const countWindowRule = (size: number, p: RateParams): Rule => new CountWindowRule(size, p)

const CALLS = 0
const FAILURES = 1
const SLOWS = 2

class TimeWindowRule implements Rule {
  get timed(): boolean {
    return true
  }
  readonly window: Buckets.Buckets
  constructor(windowMillis: number, buckets: number, readonly p: RateParams) {
    this.window = Buckets.make(buckets, windowMillis / buckets, 3)
  }
  record(t: number, failure: boolean, slow: boolean): void {
    Buckets.add(this.window, t, CALLS, 1)
    if (failure) Buckets.add(this.window, t, FAILURES, 1)
    if (slow) Buckets.add(this.window, t, SLOWS, 1)
  }
  shouldTrip(_c: Counts, t: number): boolean {
    const calls = Buckets.sum(this.window, t, CALLS)
    if (calls < this.p.minimumCalls) return false
    return Buckets.sum(this.window, t, FAILURES) / calls >= this.p.failureRateThreshold ||
      Buckets.sum(this.window, t, SLOWS) / calls >= this.p.slowCallRateThreshold
  }
  clear(): void {
    Buckets.clear(this.window)
  }
  failureRate(_c: Counts, t: number): number {
    const calls = Buckets.sum(this.window, t, CALLS)
    return calls === 0 ? Number.NaN : Buckets.sum(this.window, t, FAILURES) / calls
  }
}

/** Failure / slow-call rate over a time window of `buckets` buckets. */
export const timeWindowRule = (windowMillis: number, buckets: number, p: RateParams, _now: number): Rule =>
  new TimeWindowRule(windowMillis, buckets, p)
