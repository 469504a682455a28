/**
 * One synchronous interface over both breaker families, so the effectful shell is written once.
 * Everything here is plain, closure-held state mutated in one synchronous step.
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
  readonly state: () => CoreState
  /** applies the changes that time alone causes (a state machine's Open → HalfOpen, interval roll-over) */
  readonly tick: (now: number) => void
  /** a token (≥ 0) to hand back with the outcome, `REJECT`, or `NEED_RANDOM` */
  readonly acquire: (now: number) => number
  /** completes a `NEED_RANDOM` admission with `u` uniform in [0, 1) */
  readonly acquireRandom: (now: number, u: number) => number
  readonly success: (token: number, now: number, elapsedMillis: number) => void
  readonly failure: (token: number, now: number, elapsedMillis: number) => void
  readonly ignore: (token: number, now: number) => void
  /** counts a call rejected without asking `acquire` (the breaker is isolated) in `rejections` */
  readonly rejected: (now: number) => void
  /** millis until a rejected caller may get through; NaN when unknown */
  readonly retryAfterMillis: (now: number) => number
  readonly reset: (now: number) => void
  readonly stats: (now: number) => CoreStats
  /** state changes not yet published */
  readonly pending: Array<Transition>
}

const sreStateOf = (ratio: number): CoreState => ratio <= 0 ? "Closed" : ratio >= 1 ? "Open" : "HalfOpen"

/**
 * The adaptive breaker. Its state is derived from the last decision: Closed (admits everything),
 * HalfOpen (drops a share at random), Open (admits only the periodic forced probe). The state is
 * only a report — admission depends on the ratio alone — and it returns to Closed only after the
 * ratio stayed ≤ 0 for `forcePassAfter`, so a ratio hovering around zero cannot flood the logs
 * and the `changes` stream with flips.
 */
export const sre = (params: Sre.Params, now: number): Core & { readonly sre: Sre.State } => {
  const s = Sre.make(params, now)
  const pending: Array<Transition> = []
  let current: CoreState = "Closed"
  let calmSince = Number.NaN
  const observe = (at: number) => {
    const next = sreStateOf(s.ratio)
    if (next === "Closed") {
      if (current === "Closed") return
      if (Number.isNaN(calmSince)) calmSince = at
      if (at - calmSince < params.forcePassAfterMillis) return
    }
    calmSince = Number.NaN
    if (next !== current) {
      pending.push({ from: current, to: next, at })
      current = next
    }
  }
  return {
    sre: s,
    pending,
    state: () => current,
    // the adaptive breaker's state is that of its last decision: time alone changes nothing
    tick: () => {},
    acquire: (t) => {
      // ADMIT is token 0; REJECT and NEED_RANDOM are the same numbers here and in `Sre`
      const d = Sre.decide(s, t)
      if (current !== "Closed" || s.ratio > 0) observe(t)
      return d
    },
    acquireRandom: (t, u) => Sre.decideWithRandom(s, t, u),
    success: (_token, t) => Sre.markSuccess(s, t),
    failure: (_token, t) => Sre.markFailure(s, t),
    ignore: () => {},
    rejected: (t) => Sre.markDrop(s, t),
    retryAfterMillis: (t) => current === "Open" ? Sre.retryAfterMillis(s, t) : Number.NaN,
    reset: (t) => {
      Sre.reset(s, t)
      current = "Closed"
      calmSince = Number.NaN
    },
    stats: (t) => {
      const c = Sre.counts(s, t)
      const requests = c.successes + c.failures
      return {
        requests,
        successes: c.successes,
        failures: c.failures,
        rejections: c.drops,
        consecutiveSuccesses: s.consecutiveSuccesses,
        consecutiveFailures: s.consecutiveFailures,
        failureRate: requests === 0 ? Number.NaN : c.failures / requests,
        dropRatio: Math.max(0, s.ratio)
      }
    }
  }
}

/**
 * A state-machine breaker. `slowMillis` (∞ when slow calls are not tracked) marks calls slower
 * than it as slow for the rule.
 */
export const machine = (
  params: Machine.Params,
  openMillis: number,
  slowMillis: number,
  now: number
): Core & { readonly machine: Machine.State } => {
  const m = Machine.make(params, openMillis, now)
  let rejections = 0
  return {
    machine: m,
    pending: m.pending as Array<Transition>,
    state: () => m.state,
    tick: (t) => Machine.tick(m, t),
    acquire: (t) => {
      const token = Machine.acquire(m, t)
      if (token === Machine.REJECT) rejections++
      return token
    },
    // never reached: a state machine does not answer NEED_RANDOM (admitting here would count twice)
    acquireRandom: () => Machine.REJECT,
    success: (token, t, elapsed) => Machine.success(m, token, t, elapsed >= slowMillis),
    failure: (token, t, elapsed) => Machine.failure(m, token, t, elapsed >= slowMillis),
    ignore: (token, t) => Machine.ignore(m, token, t),
    rejected: () => {
      rejections++
    },
    retryAfterMillis: (t) => Machine.retryAfterMillis(m, t),
    reset: (t) => {
      Machine.reset(m, t)
      rejections = 0
    },
    stats: (t) => {
      Machine.tick(m, t)
      const c = m.counts
      return {
        requests: c.requests,
        successes: c.totalSuccesses,
        failures: c.totalFailures,
        rejections,
        consecutiveSuccesses: c.consecutiveSuccesses,
        consecutiveFailures: c.consecutiveFailures,
        failureRate: params.rule.failureRate(c, t)
      }
    }
  }
}
