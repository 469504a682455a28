/**
 * What a simulation records while it runs: counts per second and per phase, latency histograms,
 * breaker states, the overload signal the shedder read, and breaker transitions, in flat typed
 * arrays so that millions of requests cost no allocation here.
 */
import * as Histogram from "./histogram.js"

/** Outcomes, as the caller sees them. */
export const outcomes = ["ok", "failed", "timeout", "shed", "rateLimited", "breakerOpen"] as const
export type Outcome = typeof outcomes[number]
export const OK = 0, FAILED = 1, TIMEOUT = 2, SHED = 3, RATE_LIMITED = 4, BREAKER_OPEN = 5
export const OUTCOMES = outcomes.length

/** The stages that reject, in the order of `Stack.stages`. */
export const stagesCount = 4

const MAX_TRANSITIONS = 2000

export interface Transition {
  readonly t: number
  readonly from: string
  readonly to: string
}

export interface Recording {
  readonly seconds: number
  /** [second × OUTCOMES + outcome] */
  readonly perSecond: Float64Array
  /** [second × BINS + bin], answered requests only */
  readonly latencyPerSecond: Uint32Array
  /** [second]: the most severe breaker state seen (0 Closed, 1 HalfOpen, 2 Open), −1 without a breaker */
  readonly breakerPerSecond: Int8Array
  /** [second]: the highest overload signal the shedder read, NaN when it read none */
  readonly signalPerSecond: Float64Array
  /** [second × stages + stage]: would-reject counts in shadow mode */
  readonly wouldRejectPerSecond: Float64Array
  readonly perPhase: Float64Array
  readonly latencyPerPhase: Uint32Array
  readonly byPerPhase: Float64Array
  readonly wouldRejectPerPhase: Float64Array
  readonly transitions: Array<Transition>
  transitionsDropped: number
  requests: number
}

export const make = (seconds: number, phases: number, hasBreaker: boolean): Recording => ({
  seconds,
  perSecond: new Float64Array(seconds * OUTCOMES),
  latencyPerSecond: new Uint32Array(seconds * Histogram.BINS),
  breakerPerSecond: new Int8Array(seconds).fill(hasBreaker ? 0 : -1),
  signalPerSecond: new Float64Array(seconds).fill(NaN),
  wouldRejectPerSecond: new Float64Array(seconds * stagesCount),
  perPhase: new Float64Array(phases * OUTCOMES),
  latencyPerPhase: new Uint32Array(phases * Histogram.BINS),
  byPerPhase: new Float64Array(phases * stagesCount),
  wouldRejectPerPhase: new Float64Array(phases * stagesCount),
  transitions: [],
  transitionsDropped: 0,
  requests: 0
})

/** Counts one outcome of a request offered in `second` of `phase`; `latency` < 0 records none. */
export const count = (rec: Recording, second: number, phase: number, outcome: number, latency: number): void => {
  rec.perSecond[second * OUTCOMES + outcome]++
  rec.perPhase[phase * OUTCOMES + outcome]++
  if (latency >= 0) {
    const bin = Histogram.binOf(latency)
    rec.latencyPerSecond[second * Histogram.BINS + bin]++
    rec.latencyPerPhase[phase * Histogram.BINS + bin]++
  }
}

export const transition = (rec: Recording, t: Transition): void => {
  if (rec.transitions.length < MAX_TRANSITIONS) rec.transitions.push(t)
  else rec.transitionsDropped++
}
