/**
 * The in-memory table behind `RateLimiterStore.layerMemory` (and behind the Redis store's local
 * fallback): one `Map` per limiter from key to `{ state, expiresAt, touched }`, stepped
 * synchronously.
 *
 * Memory stays bounded two ways. A key whose step expiry has passed is dead (its state equals a
 * fresh key's): reads treat it as absent, and every insertion sweeps a couple of dead keys from
 * the front of the map. The key count is capped: inserting beyond `maxKeys` evicts the front
 * key. The map's insertion order makes the front the least recently used end, because an entry
 * that is used again after `touchMs` is moved to the back (a delete and a set; doing it on every
 * hit would double the cost of the hot path for little gain in precision).
 */
import type { Definition, RawDecision } from "./core.js"

interface Entry {
  state: unknown
  expiresAt: number
  touched: number
}

export interface Table {
  readonly run: (key: string, now: number, cost: number, maxDelayMs: number) => RawDecision
  readonly size: () => number
}

export interface TableOptions {
  readonly maxKeys: number
  /** forget a key after this long without use even if its state still matters (Infinity = never) */
  readonly idleTimeToLiveMs: number
}

const SWEEP = 2

export const makeTable = (definition: Definition, options: TableOptions): Table => {
  const map = new Map<string, Entry>()
  const step = definition.step
  const params = definition.params
  const maxKeys = options.maxKeys
  const ttl = options.idleTimeToLiveMs
  const touchMs = Math.min(1000, ttl / 2)
  const insert = (key: string, entry: Entry, now: number): void => {
    let swept = 0
    for (const [k, e] of map) {
      if (e.expiresAt > now || swept >= SWEEP) break
      map.delete(k)
      swept++
    }
    if (map.size >= maxKeys) {
      const oldest = map.keys().next()
      if (oldest.done !== true) map.delete(oldest.value)
    }
    map.set(key, entry)
  }
  const run = (key: string, now: number, cost: number, maxDelayMs: number): RawDecision => {
    const entry = map.get(key)
    if (entry === undefined) {
      const r = step(undefined, now, params, cost, maxDelayMs)
      const keep = r.expireAfterMs < ttl ? r.expireAfterMs : ttl
      insert(key, { state: r.state, expiresAt: now + keep, touched: now }, now)
      return r.decision
    }
    const r = step(entry.expiresAt > now ? entry.state : undefined, now, params, cost, maxDelayMs)
    entry.state = r.state
    entry.expiresAt = now + (r.expireAfterMs < ttl ? r.expireAfterMs : ttl)
    if (now - entry.touched >= touchMs) {
      entry.touched = now
      map.delete(key)
      map.set(key, entry)
    }
    return r.decision
  }
  return { run, size: () => map.size }
}
