/**
 * The simulator's report: what a run recorded, summarised per phase and per second, as plain JSON
 * (no timestamps or timings, so one seed gives one report byte for byte).
 */
import * as Engine from "./engine.js"
import * as Histogram from "./histogram.js"
import type * as Scenario from "./scenario.js"
import type { Stage } from "./stack.js"
import { stages } from "./stack.js"

type Counts<K extends string> = Record<K, number>

export interface PhaseSummary {
  readonly name: string
  readonly startSeconds: number
  readonly endSeconds: number
  readonly offered: number
  readonly outcomes: Counts<Engine.Outcome>
  /** share of offered requests answered ok */
  readonly okShare: number
  /** requests not admitted, by the protection that answered */
  readonly by: Counts<Stage>
  /** shadow mode: requests a protection would have rejected */
  readonly wouldReject: Counts<Stage>
  /** answered requests (ok, failed, timed out), ms */
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly breakerStates: ReadonlyArray<string>
}

export interface Report {
  readonly scenario: string
  readonly seed: number
  readonly shadow: boolean
  readonly stack: ReadonlyArray<string>
  /** the load shedder's signal and threshold, null without a shedder */
  readonly signal: { readonly kind: string; readonly threshold: number } | null
  readonly durationSeconds: number
  readonly requests: number
  readonly phases: ReadonlyArray<PhaseSummary>
  readonly totals: Counts<Engine.Outcome>
  /** one value per second of the run */
  readonly perSecond: {
    readonly outcomes: Readonly<Record<Engine.Outcome, ReadonlyArray<number>>>
    readonly p50Ms: ReadonlyArray<number | null>
    readonly p99Ms: ReadonlyArray<number | null>
    /** the highest overload signal the shedder read, null when it read none */
    readonly signal: ReadonlyArray<number | null>
    /** 0 Closed, 1 HalfOpen, 2 Open, null without a breaker */
    readonly breaker: ReadonlyArray<number | null>
    readonly wouldReject: ReadonlyArray<number>
  }
  readonly transitions: ReadonlyArray<Engine.Transition>
  readonly transitionsDropped: number
}

const STATES = ["Closed", "HalfOpen", "Open"]
const finite = (n: number): number | null => Number.isNaN(n) ? null : n
const round4 = (n: number): number => Math.round(n * 10_000) / 10_000

const countsAt = <K extends string>(keys: ReadonlyArray<K>, values: ArrayLike<number>, offset: number): Counts<K> => {
  const counts = {} as Counts<K>
  keys.forEach((k, i) => counts[k] = values[offset + i])
  return counts
}

/** The report of one run. */
export const make = (
  scenario: Scenario.Scenario,
  stack: ReadonlyArray<string>,
  signal: { readonly kind: string; readonly threshold: number } | undefined,
  rec: Engine.Recording
): Report => {
  const K = Engine.outcomes.length
  const S = Engine.stagesCount
  let start = 0
  const phases = scenario.phases.map((p, i): PhaseSummary => {
    const outcomes = countsAt(Engine.outcomes, rec.perPhase, i * K)
    const offered = Engine.outcomes.reduce((sum, o) => sum + outcomes[o], 0)
    const startSeconds = start
    start += p.durationSeconds
    const states = new Set<number>()
    for (let s = Math.floor(startSeconds); s < Math.ceil(start) && s < rec.seconds; s++) {
      if (rec.breakerPerSecond[s] >= 0) states.add(rec.breakerPerSecond[s])
    }
    return {
      name: p.name,
      startSeconds,
      endSeconds: start,
      offered,
      outcomes,
      okShare: offered === 0 ? 0 : round4(outcomes.ok / offered),
      by: countsAt(stages, rec.byPerPhase, i * S),
      wouldReject: countsAt(stages, rec.wouldRejectPerPhase, i * S),
      p50Ms: finite(Histogram.quantile(rec.latencyPerPhase, i * Histogram.BINS, 0.5)),
      p99Ms: finite(Histogram.quantile(rec.latencyPerPhase, i * Histogram.BINS, 0.99)),
      breakerStates: [...states].sort().map((s) => STATES[s])
    }
  })
  const seconds = Array.from({ length: rec.seconds }, (_, s) => s)
  const outcomes = {} as Record<Engine.Outcome, Array<number>>
  Engine.outcomes.forEach((o, i) => outcomes[o] = seconds.map((s) => rec.perSecond[s * K + i]))
  const totals = {} as Counts<Engine.Outcome>
  for (const o of Engine.outcomes) totals[o] = phases.reduce((sum, p) => sum + p.outcomes[o], 0)
  return {
    scenario: scenario.name,
    seed: scenario.seed,
    shadow: scenario.shadow,
    stack,
    signal: signal === undefined ? null : { kind: signal.kind, threshold: signal.threshold },
    durationSeconds: start,
    requests: rec.requests,
    phases,
    totals,
    perSecond: {
      outcomes,
      p50Ms: seconds.map((s) => finite(Histogram.quantile(rec.latencyPerSecond, s * Histogram.BINS, 0.5))),
      p99Ms: seconds.map((s) => finite(Histogram.quantile(rec.latencyPerSecond, s * Histogram.BINS, 0.99))),
      signal: seconds.map((s) => finite(round4(rec.signalPerSecond[s]))),
      breaker: seconds.map((s) => rec.breakerPerSecond[s] < 0 ? null : rec.breakerPerSecond[s]),
      wouldReject: seconds.map((s) => {
        let sum = 0
        for (let i = 0; i < S; i++) sum += rec.wouldRejectPerSecond[s * S + i]
        return sum
      })
    },
    transitions: rec.transitions,
    transitionsDropped: rec.transitionsDropped
  }
}
