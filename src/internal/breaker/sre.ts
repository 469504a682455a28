/**
 * The adaptive breaker of Google's SRE book ("client-side throttling"), as go-zero runs it, with
 * the recovery weakness removed. Pure functions over a plain, closure-held state.
 *
 * Counting: a bucketed rolling window holds, per bucket, the calls that reached the downstream and
 * succeeded, those that failed, and the calls the breaker itself dropped. `accepts` is the sum of
 * successes, `total` the sum of successes and failures — the breaker's own drops are kept for the
 * statistics but are NOT part of `total`.
 *
 * Why: go-zero counts drops in `total`. After an outage the window is full of drops, so
 * `total − k · accepts` stays positive long after the downstream healed: every drop raises the
 * ratio that causes the next drop, and recovery waits for the whole window (and then some) to roll
 * over. Without drops the ratio depends only on what the downstream answered; as soon as passed
 * calls succeed, `k · accepts` overtakes `total` and the breaker closes.
 *
 * Leaving drops out alone would let the leak during an outage grow with the square root of the
 * offered load, because `(total − protection) / (total + 1)` never reaches 1. So when the window
 * holds failures and not a single success, the ratio is 1: only the forced probe (one call per
 * `forcePassAfter`) reaches the downstream. That probe is the recovery path: its success breaks
 * the all-failure state, the ratio falls below 1 at once, and the positive feedback of successes
 * opens the gate within a few hundred milliseconds.
 */
import * as Buckets from "./buckets.js"

/** Bucket fields. */
export const SUCCESS = 0
export const FAILURE = 1
export const DROP = 2
const FIELDS = 3
const STRIDE = FIELDS + 1

/** `decide` results. */
export const ADMIT = 0
export const REJECT = -1
export const NEED_RANDOM = -2

export interface Params {
  readonly k: number
  readonly minK: number
  readonly protection: number
  readonly forcePassAfterMillis: number
  readonly windowMillis: number
  readonly buckets: number
  /** go-zero's original counting (drops in `total`, no all-failure rule); used to compare designs */
  readonly countDrops?: boolean
}

/**
 * The adaptive breaker's state. It is its own bucket window (`Buckets`), so a breaker's counting
 * state is one object.
 */
export class State implements Buckets.Buckets {
  readonly buckets: number
  readonly bucketMillis: number
  readonly fields = FIELDS
  data: Array<number> | undefined = undefined
  /** time of the last call let through */
  lastPass: number
  /** absolute bucket index of the newest failure (−∞: none) */
  lastFailureBucket = Number.NEGATIVE_INFINITY
  /** the ratio computed by the last decision (0 when admitting everything) */
  ratio = 0
  consecutiveSuccesses = 0
  consecutiveFailures = 0
  /**
   * The bucket `ratio` was computed in, or NaN once an outcome was recorded since. Drops do not
   * enter the ratio, so while this matches the current bucket a decision reuses `ratio` — a
   * breaker that rejects most calls does not rescan the window for each one.
   */
  ratioBucket = Number.NaN

  constructor(readonly params: Params, now: number) {
    this.buckets = params.buckets
    this.bucketMillis = params.windowMillis / params.buckets
    this.lastPass = now
  }
}

export const make = (params: Params, now: number): State => new State(params, now)

/** Forgets every count (the next decision admits). */
export const reset = (state: State, now: number): void => {
  Buckets.clear(state)
  state.lastPass = now
  state.lastFailureBucket = Number.NEGATIVE_INFINITY
  state.ratio = 0
  state.consecutiveSuccesses = 0
  state.consecutiveFailures = 0
  state.ratioBucket = Number.NaN
}

/**
 * The drop ratio at `now`: ≤ 0 admits every call, 1 admits only the forced probe, anything in
 * between drops that share of calls at random.
 */
export const dropRatio = (state: State, now: number): number => {
  const params = state.params
  const window = state
  // Fast path: no failure in the window means the ratio is negative (accepts ≥ total).
  if (Buckets.indexOf(window, now) - state.lastFailureBucket >= params.buckets && !params.countDrops) return 0
  Buckets.advance(window, now)
  const data = window.data
  if (data === undefined) return 0
  let accepts = 0
  let total = 0
  let working = 0
  let failing = 0
  // 0: looking for the newest non-empty bucket, 1: counting working, 2: counting failing, 3: run ended
  let run = 0
  // newest bucket first; buckets without successes or failures are absent or skipped
  for (let i = data.length - STRIDE; i >= 0; i -= STRIDE) {
    const s = data[i + 1 + SUCCESS]
    const f = data[i + 1 + FAILURE]
    accepts += s
    total += s + f
    if (params.countDrops) total += data[i + 1 + DROP]
    if (run === 3 || (s === 0 && f === 0)) continue
    const kind = s > 0 && f === 0 ? 1 : f > 0 && s === 0 ? 2 : 3
    if (run === 0) run = kind
    if (kind !== run) run = 3
    else if (kind === 1) working++
    else if (kind === 2) failing++
  }
  const kEff = Math.max(params.k - (params.k - params.minK) * failing / params.buckets, params.minK)
  const ratio = (total - params.protection - kEff * accepts) / (total + 1)
  if (ratio <= 0) return 0
  if (accepts === 0 && !params.countDrops) return 1
  return ratio * (params.buckets - working) / params.buckets
}

/**
 * The admission decision. Returns `ADMIT`, `REJECT`, or `NEED_RANDOM` when the caller must draw a
 * uniform number in [0, 1) and call `decideWithRandom` (so randomness is read only when needed).
 */
export const decide = (state: State, now: number): number => {
  const bucket = Buckets.indexOf(state, now)
  let ratio = state.ratio
  if (bucket !== state.ratioBucket || state.params.countDrops) {
    ratio = dropRatio(state, now)
    state.ratio = ratio
    state.ratioBucket = bucket
  }
  if (ratio <= 0) {
    state.lastPass = now
    return ADMIT
  }
  if (now - state.lastPass >= state.params.forcePassAfterMillis) {
    state.lastPass = now
    return ADMIT
  }
  if (ratio >= 1) {
    Buckets.add(state, now, DROP, 1)
    return REJECT
  }
  return NEED_RANDOM
}

/** Completes a `NEED_RANDOM` decision with `u` drawn uniformly from [0, 1). */
export const decideWithRandom = (state: State, now: number, u: number): number => {
  if (u < state.ratio) {
    Buckets.add(state, now, DROP, 1)
    return REJECT
  }
  state.lastPass = now
  return ADMIT
}

/** Counts a call rejected without a decision (the breaker is isolated) as a drop. */
export const markDrop = (state: State, now: number): void => {
  Buckets.add(state, now, DROP, 1)
}

export const markSuccess = (state: State, now: number): void => {
  Buckets.add(state, now, SUCCESS, 1)
  state.ratioBucket = Number.NaN
  state.consecutiveSuccesses++
  state.consecutiveFailures = 0
}

export const markFailure = (state: State, now: number): void => {
  Buckets.add(state, now, FAILURE, 1)
  state.ratioBucket = Number.NaN
  // the bucket the failure landed in (the newest: an outcome never lands behind it)
  const data = state.data!
  state.lastFailureBucket = data[data.length - STRIDE]
  state.consecutiveFailures++
  state.consecutiveSuccesses = 0
}

/** Time until the next forced probe, in millis (the earliest a rejected caller can get through). */
export const retryAfterMillis = (state: State, now: number): number =>
  Math.max(0, state.lastPass + state.params.forcePassAfterMillis - now)

export interface Counts {
  readonly successes: number
  readonly failures: number
  readonly drops: number
}

export const counts = (state: State, now: number): Counts => ({
  successes: Buckets.sum(state, now, SUCCESS),
  failures: Buckets.sum(state, now, FAILURE),
  drops: Buckets.sum(state, now, DROP)
})
