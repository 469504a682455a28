/**
 * The adaptive load shedder (go-zero's AdaptiveShedder) as pure functions over plain, mutable
 * state. Every function runs in one synchronous step; the caller passes the time and the CPU
 * reading, so the algorithm needs no clock and is exact under test.
 *
 * A request is dropped when the CPU is over the threshold (or was, less than a second ago, and
 * requests were dropped since) and more requests are in flight than the window shows the service
 * can turn around: `maxFlight = maxPass · minRt · bucketsPerSecond / 1000`, scaled down by how far
 * the CPU is over the threshold.
 */
import * as RollingWindow from "./rollingWindow.js"

/** Round-trip time assumed when the window holds no completed request, milliseconds. */
export const defaultMinRt = 1000
/** Weight of the previous value in the moving average of in-flight requests. */
export const flyingBeta = 0.9
/** How long the shedder stays hot after the CPU was last over the threshold, milliseconds. */
export const coolOffMillis = 1000
/** The overload factor never goes below this: at least 10 % of `maxFlight` is admitted. */
export const overloadFactorLowerBound = 0.1
/** Per-mille meaning "all of the CPU". */
export const cpuMax = 1000

const PASS = 0
const RT = 1

export interface Params {
  readonly cpuThreshold: number
  readonly buckets: number
  readonly bucketMillis: number
}

export interface State {
  readonly params: Params
  /** per bucket: completed passes and the sum of their round-trip times (ms) */
  readonly window: RollingWindow.RollingWindow
  flying: number
  avgFlying: number
  droppedRecently: boolean
  /** when the CPU was last seen over the threshold; `-Infinity` if never */
  overloadTime: number
  total: number
  passed: number
  dropped: number
}

export const make = (params: Params, now: number): State => ({
  params,
  window: RollingWindow.make(params.buckets, params.bucketMillis, 2, now),
  flying: 0,
  avgFlying: 0,
  droppedRecently: false,
  overloadTime: -Infinity,
  total: 0,
  passed: 0,
  dropped: 0
})

/** The threshold of a priority shedder: halfway between `cpuThreshold` and 1000. */
export const priorityThreshold = (cpuThreshold: number): number => Math.floor((cpuThreshold + cpuMax) / 2)

/** The most passes any completed bucket of the window holds, at least 1. */
export const maxPass = (state: State, now: number): number => {
  const window = state.window
  RollingWindow.advance(window, now)
  let result = 1
  for (let age = 1; age < window.buckets; age++) {
    const passes = RollingWindow.get(window, age, PASS)
    if (passes > result) result = passes
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

/** `maxPass · minRt · bucketsPerSecond / 1000`, at least 1. */
export const maxFlightOf = (maxPassValue: number, minRtValue: number, bucketMillis: number): number =>
  Math.max(1, (maxPassValue * minRtValue) / bucketMillis)

export const maxFlight = (state: State, now: number): number =>
  maxFlightOf(maxPass(state, now), minRt(state, now), state.params.bucketMillis)

/** `(1000 − cpu) / (1000 − threshold)` clamped to [0.1, 1]. */
export const overloadFactor = (cpu: number, cpuThreshold: number): number => {
  const factor = (cpuMax - cpu) / (cpuMax - cpuThreshold)
  return factor < overloadFactorLowerBound ? overloadFactorLowerBound : factor > 1 ? 1 : factor
}

export const highThroughput = (state: State, now: number, cpu: number): boolean => {
  const limit = maxFlight(state, now) * overloadFactor(cpu, state.params.cpuThreshold)
  return state.avgFlying > limit && state.flying > limit
}

/** CPU at or over the threshold; remembers when. */
export const systemOverloaded = (state: State, now: number, cpu: number): boolean => {
  if (cpu < state.params.cpuThreshold) return false
  state.overloadTime = now
  return true
}

/** Requests were dropped and the CPU was over the threshold less than `coolOffMillis` ago; reads only. */
export const isHot = (state: State, now: number): boolean =>
  state.droppedRecently && now - state.overloadTime < coolOffMillis

/** `isHot`; once cooled off, forgets the drops. */
export const stillHot = (state: State, now: number): boolean => {
  if (isHot(state, now)) return true
  state.droppedRecently = false
  return false
}

export const shouldDrop = (state: State, now: number, cpu: number): boolean =>
  (systemOverloaded(state, now, cpu) || stillHot(state, now)) && highThroughput(state, now, cpu)

/**
 * One admission decision: `true` admits (one more in flight), `false` drops. Counts the request.
 */
export const allow = (state: State, now: number, cpu: number): boolean => {
  state.total++
  if (shouldDrop(state, now, cpu)) {
    state.droppedRecently = true
    state.dropped++
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
