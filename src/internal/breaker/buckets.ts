/**
 * A rolling window of time buckets that stores only the buckets holding counts — the windows of
 * the adaptive breaker (successes, failures, drops) and of the time-window breaker.
 *
 * A dense ring of 40 buckets × 3 counters costs about a kilobyte per breaker whether or not it sees
 * traffic; with a breaker per tenant or per host most windows hold one or two buckets. Here the
 * buckets live in one flat array, oldest first: `[index, count₀, count₁, …, index, …]`, where
 * `index = floor(now / bucketMillis)`. A bucket is appended when the first count of a new time
 * slot arrives, and buckets older than the window are dropped when one is appended or the window
 * is read. Empty buckets are simply absent, which is what the algorithms want: an empty bucket
 * neither counts nor breaks a run.
 *
 * The functions mutate the window in place inside one synchronous step, which JavaScript runs
 * atomically.
 */

export interface Buckets {
  readonly buckets: number
  readonly bucketMillis: number
  readonly fields: number
  /** `[index, field₀ … fieldₙ₋₁]` per bucket with counts, oldest first; undefined while empty */
  data: Array<number> | undefined
}

export const make = (buckets: number, bucketMillis: number, fields: number): Buckets => ({
  buckets,
  bucketMillis,
  fields,
  data: undefined
})

export const indexOf = (window: Buckets, now: number): number => Math.floor(now / window.bucketMillis)

/**
 * Drops the buckets that fell out of a window whose newest slot is `index`; a window left empty
 * gives its array back, so an idle breaker holds none.
 */
const expire = (window: Buckets, data: Array<number>, index: number): void => {
  const oldest = index - window.buckets
  const stride = window.fields + 1
  let drop = 0
  while (drop < data.length && data[drop] <= oldest) drop += stride
  if (drop === data.length) window.data = undefined
  else if (drop > 0) data.splice(0, drop)
}

/**
 * Adds `value` to `field` of the bucket holding `now`. A time older than the newest bucket (an
 * outcome that arrives after a later call opened a new slot) counts in the newest bucket.
 */
export const add = (window: Buckets, now: number, field: number, value: number): void => {
  const stride = window.fields + 1
  const index = Math.floor(now / window.bucketMillis)
  const data = window.data
  if (data !== undefined) {
    const tail = data.length - stride
    if (data[tail] >= index) {
      data[tail + 1 + field] += value
      return
    }
  }
  // A new bucket, at most once per bucket interval. The array is rebuilt to its exact size (a
  // push would leave it room for some twenty numbers more): most windows of a breaker per tenant
  // hold one or two buckets.
  const bucket = window.fields === 3 ? [index, 0, 0, 0] : [index]
  if (window.fields !== 3) { for (let f = 0; f < window.fields; f++) bucket.push(0) }
  bucket[1 + field] += value
  if (data === undefined) {
    window.data = bucket
    return
  }
  const oldest = index - window.buckets
  let drop = 0
  while (drop < data.length && data[drop] <= oldest) drop += stride
  window.data = drop === data.length ? bucket : (drop === 0 ? data : data.slice(drop)).concat(bucket)
}

/** Forgets the buckets that are out of the window at `now`. */
export const advance = (window: Buckets, now: number): void => {
  const data = window.data
  if (data !== undefined) expire(window, data, Math.floor(now / window.bucketMillis))
}

/** Sums `field` over the window at `now`. */
export const sum = (window: Buckets, now: number, field: number): number => {
  advance(window, now)
  const data = window.data
  if (data === undefined) return 0
  const stride = window.fields + 1
  let total = 0
  for (let i = 0; i < data.length; i += stride) total += data[i + 1 + field]
  return total
}

/** Forgets every count. */
export const clear = (window: Buckets): void => {
  window.data = undefined
}
