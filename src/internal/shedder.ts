/**
 * The adaptive load shedder (go-zero's AdaptiveShedder) as pure functions over plain, mutable
 * state. Every function runs in one synchronous step; the caller passes the time and the reading
 * of the overload signal, so the algorithm needs no clock and is exact under test.
 *
 * A request is dropped when the signal is at or over its threshold (or was, less than a second
 * ago, and requests were dropped since) and more requests are in flight than the window shows the
 * service can turn around: `maxFlight = maxPass · (minRt + allowance) · bucketsPerSecond / 1000`,
 * scaled down by how far the signal is over the threshold. With the CPU signal the allowance is 0
 * and every constant is go-zero's.
 *
 * Departures for a single-threaded event loop, used by every signal but the CPU: the allowance, and
 * the in-flight count is compared without go-zero's moving-average guard (see `averageGuard`).
 *
 * Priority tiers share the window and the in-flight count: `sheddable` requests may use half of
 * the flight limit, `standard` all of it, and `critical` requests are only shed once the signal
 * passes the higher `priorityThreshold` (go-zero's priority shedder) — and, with an event-loop
 * signal, only past twice the limit. Each tier has its own cool-off.
 */
import * as RollingWindow from "./rollingWindow.js"

/** Round-trip time assumed when the window holds no completed request, milliseconds. */
export const defaultMinRt = 1000
/** Weight of the previous value in the moving average of in-flight requests. */
export const flyingBeta = 0.9
/** How long the shedder stays hot after the signal was last over the threshold, milliseconds. */
export const coolOffMillis = 1000
/** The overload factor never goes below this: at least 10 % of `maxFlight` is admitted. */
export const overloadFactorLowerBound = 0.1
/** Per-mille meaning "all of the CPU". */
export const cpuMax = 1000

const PASS = 0
const RT = 1

/** The request tiers, lowest first. */
export type Priority = "sheddable" | "standard" | "critical"

/** Every tier, lowest first; a tier's index in this list is its index in the per-tier arrays of `State`. */
export const priorities: ReadonlyArray<Priority> = ["sheddable", "standard", "critical"]

/** Index of each tier in the per-tier arrays of `State`. */
export const tierIndex: Readonly<Record<Priority, number>> = { sheddable: 0, standard: 1, critical: 2 }

/** go-zero's tiers: sheddable requests may use half the flight limit, the others all of it. */
export const goZeroTierShares: ReadonlyArray<number> = [0.5, 1, 1]

/**
 * The tiers of an event-loop signal, which reads saturated (1) under any overload, so a higher
 * threshold alone cannot keep critical requests in: they may also use twice the flight limit.
 */
export const eventLoopTierShares: ReadonlyArray<number> = [0.5, 1, 2]

/**
 * How the signal's distance past its threshold shrinks the flight limit:
 * - `"bounded"`: a signal with a maximum (the CPU in per-mille): go-zero's
 *   `(max − value) / (max − threshold)`;
 * - `"ratio"`: an unbounded signal (a delay): `threshold / value`;
 * - `"none"`: the limit is not scaled (a utilization that reads 1 whenever the process is busy).
 */
export type FactorKind =
  | { readonly _tag: "bounded"; readonly max: number }
  | { readonly _tag: "ratio" }
  | { readonly _tag: "none" }

export interface Params {
  /** the signal value at which shedding may start */
  readonly threshold: number
  /** the value at which `critical` requests may be shed */
  readonly priorityThreshold: number
  readonly factor: FactorKind
  /** waiting time allowed on top of `minRt` when sizing the flight limit, ms */
  readonly allowanceMillis: number
  /**
   * go-zero's guard: drop only while the moving average of in-flight requests is over the limit
   * too. An event loop reads arrivals in batches between completions, so an average moved only
   * by completions lags a whole batch; the event-loop signals compare the in-flight count alone.
   */
  readonly averageGuard: boolean
  /** per tier: the share of the flight limit its requests may use */
  readonly tierShares: ReadonlyArray<number>
  /**
   * `maxPass` is the best average over this many consecutive completed buckets (go-zero: 1).
   * Requests that share an event loop finish in batches, so one bucket can count several times
   * what the loop sustains; an average over half a second does not.
   */
  readonly passSpan: number
  readonly buckets: number
  readonly bucketMillis: number
}

export interface State {
  readonly params: Params
  /** per bucket: completed passes and the sum of their round-trip times (ms) */
  readonly window: RollingWindow.RollingWindow
  flying: number
  avgFlying: number
  /** per tier: requests were dropped since the tier last cooled off */
  readonly droppedRecently: Array<boolean>
  /** per tier: when the signal was last seen over the tier's threshold; `-Infinity` if never */
  readonly overloadTime: Array<number>
  total: number
  passed: number
  /** per tier */
  readonly dropped: Array<number>
  /**
   * `maxFlight` as last computed, and the window's newest bucket then: it reads completed buckets
   * only, which change only when the window moves, so under overload (when every admission asks
   * for it) it is computed once a bucket instead of once a request
   */
  flightMax: number
  flightAt: number
}

export const make = (params: Params, now: number): State => ({
  params,
  window: RollingWindow.make(params.buckets, params.bucketMillis, 2, now),
  flying: 0,
  avgFlying: 0,
  droppedRecently: [false, false, false],
  overloadTime: [-Infinity, -Infinity, -Infinity],
  total: 0,
  passed: 0,
  dropped: [0, 0, 0],
  flightMax: 1,
  flightAt: NaN
})

/** go-zero's threshold of a priority shedder: halfway between `threshold` and 1000. */
export const priorityThreshold = (threshold: number): number => Math.floor((threshold + cpuMax) / 2)

/**
 * The most passes a completed bucket of the window holds — averaged over `passSpan` consecutive
 * buckets when that is more than 1 — at least 1.
 */
export const maxPass = (state: State, now: number): number => {
  const window = state.window
  RollingWindow.advance(window, now)
  const span = Math.min(state.params.passSpan, window.buckets - 1)
  let result = 1
  let sum = 0
  for (let age = 1; age < window.buckets; age++) {
    sum += RollingWindow.get(window, age, PASS)
    if (age > span) sum -= RollingWindow.get(window, age - span, PASS)
    if (age >= span && sum / span > result) result = sum / span
  }
  return result
}

/** The lowest average round-trip time (rounded, ms) of the completed buckets that hold one. */
export const minRt = (state: State, now: number): number => {
  const window = state.window
  RollingWindow.advance(window, now)
  let result = defaultMinRt
  for (let age = 1; age < window.buckets; age++) {
    const count = RollingWindow.get(window, age, PASS)
    if (count <= 0) continue
    const avg = Math.round(RollingWindow.get(window, age, RT) / count)
    if (avg < result) result = avg
  }
  return result
}

/** `maxPass · (minRt + allowance) · bucketsPerSecond / 1000`, at least 1. */
export const maxFlightOf = (
  maxPassValue: number,
  minRtValue: number,
  bucketMillis: number,
  allowanceMillis = 0
): number => Math.max(1, (maxPassValue * (minRtValue + allowanceMillis)) / bucketMillis)

export const maxFlight = (state: State, now: number): number => {
  const window = state.window
  RollingWindow.advance(window, now)
  if (window.current !== state.flightAt) {
    const { allowanceMillis, bucketMillis } = state.params
    state.flightMax = maxFlightOf(maxPass(state, now), minRt(state, now), bucketMillis, allowanceMillis)
    state.flightAt = window.current
  }
  return state.flightMax
}

const clampFactor = (factor: number): number =>
  factor < overloadFactorLowerBound ? overloadFactorLowerBound : factor > 1 ? 1 : factor

/** go-zero's `(1000 − cpu) / (1000 − threshold)` clamped to [0.1, 1]. */
export const overloadFactor = (cpu: number, cpuThreshold: number): number =>
  clampFactor((cpuMax - cpu) / (cpuMax - cpuThreshold))

/** How far `value` past `threshold` scales the flight limit down, in [0.1, 1]. */
export const factorOf = (kind: FactorKind, value: number, threshold: number): number => {
  switch (kind._tag) {
    case "bounded":
      return value >= kind.max ? overloadFactorLowerBound : clampFactor((kind.max - value) / (kind.max - threshold))
    case "ratio":
      return value <= threshold ? 1 : clampFactor(threshold / value)
    case "none":
      return 1
  }
}

const thresholdOf = (params: Params, tier: number): number => tier === 2 ? params.priorityThreshold : params.threshold

/** The flight limit of `tier` at signal `value`. */
export const flightLimit = (state: State, now: number, value: number, tier = 1): number => {
  const params = state.params
  return maxFlight(state, now) * factorOf(params.factor, value, thresholdOf(params, tier)) * params.tierShares[tier]
}

export const highThroughput = (state: State, now: number, value: number, tier = 1): boolean => {
  const limit = flightLimit(state, now, value, tier)
  return state.flying > limit && (!state.params.averageGuard || state.avgFlying > limit)
}

/** The signal at or over the tier's threshold; remembers when. */
export const systemOverloaded = (state: State, now: number, value: number, tier = 1): boolean => {
  if (value < thresholdOf(state.params, tier)) return false
  state.overloadTime[tier] = now
  return true
}

/** Requests of the tier were dropped and its signal was over the threshold less than 1 s ago; reads only. */
export const isHot = (state: State, now: number, tier = 1): boolean =>
  state.droppedRecently[tier] && now - state.overloadTime[tier] < coolOffMillis

/** `isHot`; once cooled off, forgets the drops. */
export const stillHot = (state: State, now: number, tier = 1): boolean => {
  if (isHot(state, now, tier)) return true
  state.droppedRecently[tier] = false
  return false
}

export const shouldDrop = (state: State, now: number, value: number, tier = 1): boolean =>
  (systemOverloaded(state, now, value, tier) || stillHot(state, now, tier)) && highThroughput(state, now, value, tier)

/**
 * One admission decision for a request of `tier` (see `tierIndex`): `true` admits (one more in
 * flight), `false` drops. Counts the request.
 */
export const allow = (state: State, now: number, value: number, tier = 1): boolean => {
  state.total++
  if (shouldDrop(state, now, value, tier)) {
    state.droppedRecently[tier] = true
    state.dropped[tier]++
    return false
  }
  state.flying++
  return true
}

const release = (state: State): void => {
  state.flying--
  state.avgFlying = state.avgFlying * flyingBeta + state.flying * (1 - flyingBeta)
}

/** An admitted request that started at `start` completed well at `now`. */
export const pass = (state: State, start: number, now: number): void => {
  release(state)
  const rt = Math.ceil(Math.max(0, now - start))
  RollingWindow.add(state.window, now, RT, rt)
  RollingWindow.add(state.window, now, PASS, 1)
  state.passed++
}

/** An admitted request failed: it leaves the flight count but records no round trip. */
export const fail = (state: State): void => {
  release(state)
}

/** Drops of every tier. */
export const droppedTotal = (state: State): number => state.dropped[0] + state.dropped[1] + state.dropped[2]
