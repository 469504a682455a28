/**
 * A rolling window of time buckets over plain numbers: the counting structure shared by the
 * adaptive breaker (sum/success/failure/drop per bucket), the time-window breaker and the load
 * shedder (passes and round-trip time per bucket).
 *
 * Buckets are addressed by their absolute index `floor(now / bucketMillis)`, stored in a ring of
 * `buckets` slots with `fields` numbers each. Advancing clears the slots that fell out of the
 * window, so a read never sees stale counts. The functions mutate the window in place: callers
 * keep it in a closure and touch it only inside one synchronous step, which JavaScript runs
 * atomically, so the hot path needs no Ref round trip.
 */

export interface RollingWindow {
  readonly buckets: number
  readonly bucketMillis: number
  readonly fields: number
  readonly data: Float64Array
  /** absolute index of the newest bucket */
  current: number
}

/** A window of `buckets` slots of `bucketMillis` each, `fields` counters per slot, empty at `now`. */
export const make = (buckets: number, bucketMillis: number, fields: number, now: number): RollingWindow => ({
  buckets,
  bucketMillis,
  fields,
  data: new Float64Array(buckets * fields),
  current: Math.floor(now / bucketMillis)
})

const slotOf = (window: RollingWindow, absolute: number): number => {
  const slot = absolute % window.buckets
  return slot < 0 ? slot + window.buckets : slot
}

/** Moves the window to `now`, clearing every bucket that expired since the last step. */
export const advance = (window: RollingWindow, now: number): void => {
  const target = Math.floor(now / window.bucketMillis)
  const passed = target - window.current
  if (passed <= 0) return
  if (passed >= window.buckets) {
    window.data.fill(0)
  } else {
    for (let absolute = window.current + 1; absolute <= target; absolute++) {
      const base = slotOf(window, absolute) * window.fields
      window.data.fill(0, base, base + window.fields)
    }
  }
  window.current = target
}

/** Adds `value` to `field` of the bucket holding `now`. */
export const add = (window: RollingWindow, now: number, field: number, value: number): void => {
  advance(window, now)
  window.data[slotOf(window, window.current) * window.fields + field] += value
}

/** Reads `field` of the bucket `age` steps back from the newest (0 = the current, partial bucket). */
export const get = (window: RollingWindow, age: number, field: number): number =>
  window.data[slotOf(window, window.current - age) * window.fields + field]

/** Sums `field` over the buckets, optionally leaving out the current, partial bucket. */
export const sum = (window: RollingWindow, field: number, includeCurrent = true): number => {
  let total = 0
  for (let age = includeCurrent ? 0 : 1; age < window.buckets; age++) total += get(window, age, field)
  return total
}

/** Clears every bucket. */
export const clear = (window: RollingWindow): void => {
  window.data.fill(0)
}
