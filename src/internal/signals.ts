/**
 * The arithmetic of the overload signals a Node process shows, as pure functions over plain,
 * mutable state; the live layers feed them readings from `perf_hooks` and the time.
 *
 * - Event-loop utilization: cumulative `{ active, idle }` milliseconds read every tick into a
 *   small ring; the value is the share of active time between the oldest and the newest reading.
 * - Event-loop delay: `monitorEventLoopDelay` records the interval between firings of a timer
 *   due every `resolution`; the delay is that interval minus the resolution. The value is the
 *   larger of the last complete window's mean delay and the current window's so far, so a stall
 *   shows as soon as its timer fires and is remembered for one more window.
 * - Queue delay (CoDel's measure): the minimum wait of the requests started during the last
 *   `interval`. A minimum over the target means even the luckiest request waited: a standing
 *   queue, not a burst.
 */

// ---------------------------------------------------------------------------------------------
// event-loop utilization
// ---------------------------------------------------------------------------------------------

export interface EluReading {
  readonly active: number
  readonly idle: number
}

export interface EluRing {
  readonly active: Float64Array
  readonly idle: Float64Array
  /** readings taken so far (the ring holds the last `active.length`) */
  count: number
}

export const makeEluRing = (size: number, first: EluReading): EluRing => {
  const ring: EluRing = { active: new Float64Array(size), idle: new Float64Array(size), count: 0 }
  pushElu(ring, first)
  return ring
}

export const pushElu = (ring: EluRing, reading: EluReading): void => {
  const slot = ring.count % ring.active.length
  ring.active[slot] = reading.active
  ring.idle[slot] = reading.idle
  ring.count++
}

/** Utilization in [0, 1] between the oldest and the newest reading of the ring (0 with one reading). */
export const eluOf = (ring: EluRing): number => {
  const size = ring.active.length
  if (ring.count < 2) return 0
  const newest = (ring.count - 1) % size
  const oldest = ring.count > size ? ring.count % size : 0
  const active = ring.active[newest] - ring.active[oldest]
  const idle = ring.idle[newest] - ring.idle[oldest]
  const total = active + idle
  if (!(total > 0) || !(active > 0)) return 0
  return active >= total ? 1 : active / total
}

// ---------------------------------------------------------------------------------------------
// event-loop delay
// ---------------------------------------------------------------------------------------------

/** What a delay histogram shows: sample count and mean interval, nanoseconds. */
export interface HistogramView {
  readonly count: number
  readonly mean: number
}

/** Mean delay in ms of a window: the mean interval minus the timer's resolution, at least 0. */
export const meanDelayMillis = (view: HistogramView, resolutionMillis: number): number => {
  if (view.count <= 0 || !Number.isFinite(view.mean)) return 0
  const delay = view.mean / 1e6 - resolutionMillis
  return delay > 0 ? delay : 0
}

// ---------------------------------------------------------------------------------------------
// queue delay (CoDel)
// ---------------------------------------------------------------------------------------------

export interface CoDel {
  readonly intervalMillis: number
  /** start of the current interval */
  start: number
  /** lowest wait seen in the current interval; `Infinity` when none */
  min: number
  /** the standing delay of the last complete interval (0 when it saw no request) */
  standing: number
}

export const makeCoDel = (intervalMillis: number, now: number): CoDel => ({
  intervalMillis,
  start: now,
  min: Infinity,
  standing: 0
})

const roll = (codel: CoDel, now: number): void => {
  const elapsed = now - codel.start
  if (elapsed < codel.intervalMillis) return
  // more than one interval without a request: the queue has drained
  codel.standing = elapsed >= 2 * codel.intervalMillis || codel.min === Infinity ? 0 : codel.min
  codel.start = now - (elapsed % codel.intervalMillis)
  codel.min = Infinity
}

/** Records a request that waited `delay` ms and started at `now`. */
export const recordDelay = (codel: CoDel, delay: number, now: number): void => {
  roll(codel, now)
  const wait = delay > 0 ? delay : 0
  if (wait < codel.min) codel.min = wait
}

/** The standing queue delay at `now`, ms. */
export const standingDelay = (codel: CoDel, now: number): number => {
  roll(codel, now)
  return codel.standing
}
