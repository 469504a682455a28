/**
 * Latency-driven concurrency limits, treated like a TCP congestion window: each completed request
 * is a sample `(rtt, inflight, dropped)` and the algorithm moves the limit. Pure functions over
 * plain, mutable state; the caller serialises calls (one synchronous step each).
 *
 * - gradient2: `gradient = clamp(tolerance · longRtt / shortRtt, 0.5, 1)`,
 *   `newLimit = limit · gradient + (gradient = 1 ? queueSize : 0)`, smoothed and clamped.
 * - vegas: `queue = limit · (1 − rttNoLoad / rtt)`; grow when the queue is short, shrink when long
 *   or on a drop; `rttNoLoad` is the lowest RTT seen, re-probed now and then.
 * - aimd: add one while the limit is in use, multiply by `backoffRatio` on a drop or a slow sample.
 *
 * Samples reach the algorithm aggregated per window (see `record`).
 *
 * Three departures from the usual formulation keep the limit from drifting upwards under
 * sustained overload, where every sample is queued behind the limit: the baselines (`longRtt` of
 * gradient2, `rttNoLoad` of vegas) only rise on samples taken with spare capacity
 * (`inflight < limit`); gradient2 adds its queue allowance only while the gradient is 1 (no
 * queueing seen); and gradient2's long RTT starts from the lowest of its first ten samples rather
 * than their mean.
 */

export interface Gradient2 {
  readonly _tag: "Gradient2"
  /** how much the short RTT may exceed the long one before the limit shrinks (1.5) */
  readonly tolerance: number
  /** weight of a new estimate (0.2) */
  readonly smoothing: number
  /** requests allowed to queue when no queueing is seen (4) */
  readonly queueSize: number
  /** samples in the long RTT average (600) */
  readonly longWindow: number
}

export interface Vegas {
  readonly _tag: "Vegas"
  /** weight of a new estimate (1) */
  readonly smoothing: number
  /** re-probe `rttNoLoad` after about `probeMultiplier · limit` samples (30) */
  readonly probeMultiplier: number
  /** grow while the queue is below `alpha · log10(limit)` (3) */
  readonly alpha: number
  /** shrink when the queue is above `beta · log10(limit)` (6) */
  readonly beta: number
}

export interface Aimd {
  readonly _tag: "Aimd"
  /** multiplier on a drop or a slow sample (0.9) */
  readonly backoffRatio: number
  /** samples slower than this (ms) count as drops */
  readonly latencyThreshold: number
}

export type Algorithm = Gradient2 | Vegas | Aimd

export interface Bounds {
  readonly min: number
  readonly max: number
}

export interface Sample {
  /** round-trip time, ms */
  readonly rtt: number
  /** requests in flight when this one was admitted, itself included */
  readonly inflight: number
  /** the request was dropped or timed out: back off */
  readonly dropped: boolean
}

export interface State {
  /** the estimated limit; the usable limit is its floor */
  limit: number
  samples: number
  longRtt: number
  rttNoLoad: number
  probeCount: number
  probeJitter: number
  /** xorshift32 state for the probe jitter, seeded from `Random` */
  seed: number
}

const longWarmup = 10

const nextJitter = (state: State): number => {
  let x = state.seed | 0
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  state.seed = x === 0 ? 0x9e3779b9 | 0 : x
  // in [0.5, 1)
  return 0.5 + ((state.seed >>> 0) / 4294967296) * 0.5
}

export const make = (initial: number, seed: number): State => {
  const state: State = {
    limit: initial,
    samples: 0,
    longRtt: 0,
    rttNoLoad: 0,
    probeCount: 0,
    probeJitter: 1,
    seed: seed | 0 || 1
  }
  state.probeJitter = nextJitter(state)
  return state
}

/** The usable limit: whole requests, within the bounds. */
export const limitOf = (state: State, bounds: Bounds): number =>
  Math.min(bounds.max, Math.max(bounds.min, Math.floor(state.limit)))

const clamp = (n: number, bounds: Bounds) => Math.min(bounds.max, Math.max(bounds.min, n))

/** `max(1, floor(log10(limit)))`: the step sizes of vegas. */
export const log10Root = (limit: number): number => Math.max(1, Math.floor(Math.log10(Math.max(1, limit))))

const saturated = (state: State, sample: Sample, bounds: Bounds) => sample.inflight >= limitOf(state, bounds)

export const gradient2 = (params: Gradient2, state: State, sample: Sample, bounds: Bounds): void => {
  const short = sample.rtt
  state.samples++
  if (state.samples <= longWarmup) {
    // the first windows may already be queued: start from the best of them, not their mean
    if (state.samples === 1 || short < state.longRtt) state.longRtt = short
  } else if (short < state.longRtt || !saturated(state, sample, bounds)) {
    state.longRtt += (short - state.longRtt) * (2 / (params.longWindow + 1))
  }
  // latency back to normal after a long overload: let the long average catch up quickly
  if (short > 0 && state.longRtt / short > 2) state.longRtt *= 0.95
  // application-limited: no evidence about the limit
  if (sample.inflight < state.limit / 2) return
  const gradient = short <= 0 ? 1 : Math.max(0.5, Math.min(1, (params.tolerance * state.longRtt) / short))
  const estimate = state.limit * gradient + (gradient >= 1 ? params.queueSize : 0)
  state.limit = clamp(state.limit * (1 - params.smoothing) + estimate * params.smoothing, bounds)
}

export const vegas = (params: Vegas, state: State, sample: Sample, bounds: Bounds): void => {
  const rtt = sample.rtt
  state.probeCount++
  if (
    state.probeJitter * params.probeMultiplier * state.limit <= state.probeCount && !saturated(state, sample, bounds)
  ) {
    state.probeJitter = nextJitter(state)
    state.probeCount = 0
    state.rttNoLoad = rtt
    return
  }
  if (state.rttNoLoad <= 0 || rtt < state.rttNoLoad) {
    state.rttNoLoad = rtt
    return
  }
  const limit = state.limit
  const step = log10Root(limit)
  let estimate: number
  if (sample.dropped) {
    estimate = limit - step
  } else if (sample.inflight * 2 < limit) {
    return
  } else {
    const queue = Math.ceil(limit * (1 - state.rttNoLoad / rtt))
    if (queue <= step) estimate = limit + params.beta * step
    else if (queue < params.alpha * step) estimate = limit + step
    else if (queue > params.beta * step) estimate = limit - step
    else return
  }
  state.limit = clamp((1 - params.smoothing) * limit + params.smoothing * clamp(estimate, bounds), bounds)
}

export const aimd = (params: Aimd, state: State, sample: Sample, bounds: Bounds): void => {
  if (sample.dropped || sample.rtt > params.latencyThreshold) {
    state.limit = clamp(Math.floor(state.limit * params.backoffRatio), bounds)
  } else if (sample.inflight * 2 >= state.limit) {
    state.limit = clamp(state.limit + 1, bounds)
  }
}

/**
 * Samples are aggregated into windows before they reach the algorithm (as Netflix's
 * `WindowedLimit` does): a window closes once it holds `minSamples` samples and spans at least
 * `rtts` times its average RTT, so each update sees the effect of the previous one instead of
 * reacting to requests admitted under an older limit.
 */
export interface Window {
  start: number
  count: number
  rttSum: number
  maxInflight: number
  dropped: boolean
}

export const windowMinSamples = 10
export const windowRtts = 2

export const makeWindow = (now: number): Window => ({ start: now, count: 0, rttSum: 0, maxInflight: 0, dropped: false })

/** Adds a sample; returns the window's aggregate when it closes (and starts the next at `now`). */
export const record = (window: Window, sample: Sample, now: number): Sample | undefined => {
  window.count++
  window.rttSum += sample.rtt
  if (sample.inflight > window.maxInflight) window.maxInflight = sample.inflight
  if (sample.dropped) window.dropped = true
  const avg = window.rttSum / window.count
  if (window.count < windowMinSamples || now - window.start < windowRtts * avg) return undefined
  const aggregate: Sample = { rtt: avg, inflight: window.maxInflight, dropped: window.dropped }
  window.start = now
  window.count = 0
  window.rttSum = 0
  window.maxInflight = 0
  window.dropped = false
  return aggregate
}

/** One sample through `algorithm`. */
export const update = (algorithm: Algorithm, state: State, sample: Sample, bounds: Bounds): void => {
  switch (algorithm._tag) {
    case "Gradient2":
      return gradient2(algorithm, state, sample, bounds)
    case "Vegas":
      return vegas(algorithm, state, sample, bounds)
    case "Aimd":
      return aimd(algorithm, state, sample, bounds)
  }
}
