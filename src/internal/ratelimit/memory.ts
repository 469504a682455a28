/**
 * The in-memory table behind `RateLimiterStore.layerMemory` (and behind the Redis store's local
 * fallback): one `Map` per limiter from key to `{ state, until, touched }`, stepped synchronously.
 * Times are µs.
 *
 * Memory stays bounded two ways. A key whose `until` has passed is dead (its state equals a
 * fresh key's): reads treat it as absent, and every insertion sweeps a couple of dead keys from
 * the front of the map. The key count is capped: inserting beyond `maxKeys` evicts the front
 * key. The map's insertion order makes the front the least recently used end, because an entry
 * that is used again after `touchEvery` is moved to the back (a delete and a set; doing it on every
 * hit would double the cost of the hot path for little gain in precision).
 */
import type { Definition, RawDecision, StepResult } from "./core.js"

interface Entry {
  /** the state, or `NUMERIC` when it is a number, kept in `value` */
  state: unknown
  value: number
  until: number
  touched: number
}

/**
 * Stored states live long (they are old-generation objects); a fresh state object or boxed number
 * per step, referenced from an old entry, is what makes the garbage collector's work grow with
 * the key count. So a numeric state is kept in a number field that is overwritten in place, and
 * an object state is copied into the stored object when the algorithm offers `reuse`.
 */
const NUMERIC = Symbol("numeric")

export interface Table {
  readonly run: (key: string, now: number, cost: number, maxDelay: number) => RawDecision
  /** gives back a reservation (token bucket and GCRA) */
  readonly cancel: (key: string, now: number, cost: number, timeToAct: number) => void
  readonly size: () => number
}

export interface TableOptions {
  readonly maxKeys: number
  /** forget a key after this long without use even if its state still matters, µs (Infinity = never) */
  readonly idleTimeToLive: number
}

const SWEEP = 2

export const makeTable = (definition: Definition, options: TableOptions): Table => {
  const map = new Map<string, Entry>()
  const { cancel: cancelStep, decode, reuse, step } = definition
  const maxKeys = options.maxKeys
  const ttl = options.idleTimeToLive
  const touchEvery = Math.min(1_000_000, ttl / 2)
  const insert = (key: string, entry: Entry, now: number): void => {
    let swept = 0
    for (const [k, e] of map) {
      if (e.until > now || swept >= SWEEP) break
      map.delete(k)
      swept++
    }
    if (map.size >= maxKeys) {
      const oldest = map.keys().next()
      if (oldest.done !== true) map.delete(oldest.value)
    }
    map.set(key, entry)
  }
  const apply = (key: string, entry: Entry | undefined, r: StepResult<unknown>, now: number): void => {
    if (r.state === undefined) return
    const until = r.until - now < ttl ? r.until : now + ttl
    const next = r.state
    if (entry === undefined) {
      const numeric = typeof next === "number"
      insert(key, { state: numeric ? NUMERIC : next, value: numeric ? next : 0, until, touched: now }, now)
      return
    }
    if (typeof next === "number") {
      entry.state = NUMERIC
      entry.value = next
    } else if (reuse !== undefined && entry.state !== NUMERIC && entry.state !== next) {
      entry.state = reuse(entry.state, next)
    } else {
      entry.state = next
    }
    entry.until = until
    if (now - entry.touched >= touchEvery) {
      entry.touched = now
      map.delete(key)
      map.set(key, entry)
    }
  }
  const live = (entry: Entry | undefined, now: number): unknown =>
    entry === undefined || entry.until <= now ? undefined : entry.state === NUMERIC ? entry.value : entry.state
  const run = (key: string, now: number, cost: number, maxDelay: number): RawDecision => {
    const entry = map.get(key)
    const r = step(live(entry, now), now, cost, maxDelay)
    apply(key, entry, r, now)
    return decode(r.reply, cost)
  }
  const cancel = (key: string, now: number, cost: number, timeToAct: number): void => {
    if (cancelStep === undefined) return
    const entry = map.get(key)
    apply(key, entry, cancelStep(live(entry, now), now, cost, timeToAct), now)
  }
  return { run, cancel, size: () => map.size }
}
