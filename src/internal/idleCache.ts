/**
 * Named instances kept by recency: the store behind every registry (breakers, bulkheads, the HTTP
 * client's per-host parts). At most `maxKeys` entries — the least recently used goes first — and
 * an entry idle for `ttl` goes at a sweep. An entry in use (`inUse`, or leases counted in
 * `active`) or held by `keep` is never evicted: past `maxKeys` the cache grows by the entries in
 * use until they are free again, and an entry a sweep found busy counts as idle only from the
 * first sweep that finds it free (its idle time starts after its last call, not before it).
 *
 * The entries form a doubly linked list from the oldest use to the newest, so a use, an eviction
 * and each step of a sweep are O(1); a sweep stops at the first entry used within `ttl`. Everything
 * here is synchronous; the caller runs the disposal of what was evicted.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

export interface Options<A> {
  /** entries before the least recently used idle one is evicted (Infinity: no bound) */
  readonly maxKeys: number
  /** millis of idleness after which a sweep evicts an entry (Infinity: never) */
  readonly ttl: number
  /**
   * the last use of the instance itself, when it can be used without the cache seeing it; `now`
   * is the sweep's time, which an instance may give for a use it did not date
   */
  readonly lastUsed?: (a: A, now: number) => number
  /** the instance is busy (calls running, callers queued, permits out) */
  readonly inUse?: (a: A) => boolean
  /** the instance must stay however idle it is */
  readonly keep?: (a: A) => boolean
}

export interface Entry<A> {
  readonly key: string
  readonly value: A
  /** the last use the cache saw, in clock millis */
  touched: number
  /** leases taken through the registry and not yet given back */
  active: number
  older: Entry<A> | undefined
  newer: Entry<A> | undefined
}

export class KeyedCache<A> {
  private readonly map = new Map<string, Entry<A>>()
  private oldest: Entry<A> | undefined = undefined
  private newest: Entry<A> | undefined = undefined
  /** entries a sweep found busy: each sweep checks them, and the first that finds one free starts its idle time */
  private readonly busyAtSweep = new Set<Entry<A>>()

  constructor(readonly options: Options<A>) {}

  get size(): number {
    return this.map.size
  }

  keys(): Array<string> {
    return Array.from(this.map.keys())
  }

  values(): Array<A> {
    const out: Array<A> = []
    for (const entry of this.map.values()) out.push(entry.value)
    return out
  }

  /** The entry for `key` without marking it used. */
  peek(key: string): Entry<A> | undefined {
    return this.map.get(key)
  }

  /** The entry for `key`, marked used at `now`. */
  get(key: string, now: number): Entry<A> | undefined {
    const entry = this.map.get(key)
    if (entry !== undefined) this.touch(entry, now)
    return entry
  }

  private unlink(entry: Entry<A>): void {
    if (entry.older === undefined) this.oldest = entry.newer
    else entry.older.newer = entry.newer
    if (entry.newer === undefined) this.newest = entry.older
    else entry.newer.older = entry.older
    entry.older = undefined
    entry.newer = undefined
  }

  private append(entry: Entry<A>): void {
    entry.older = this.newest
    entry.newer = undefined
    if (this.newest === undefined) this.oldest = entry
    else this.newest.newer = entry
    this.newest = entry
  }

  touch(entry: Entry<A>, now: number): void {
    entry.touched = now
    if (this.newest === entry) return
    this.unlink(entry)
    this.append(entry)
  }

  private busy(entry: Entry<A>): boolean {
    const { inUse, keep } = this.options
    return entry.active > 0 || (inUse !== undefined && inUse(entry.value)) ||
      (keep !== undefined && keep(entry.value))
  }

  /**
   * Evicts least recently used idle entries until one more fits within `maxKeys`, and returns
   * them. Called before an instance is built, so the evicted ones give back what they hold (their
   * metric series) before the new one takes its share.
   */
  makeRoom(now: number): Array<Entry<A>> {
    const evicted: Array<Entry<A>> = []
    // every entry is looked at once at most: a busy one moves to the newest end
    for (let budget = this.map.size; this.map.size >= this.options.maxKeys && budget > 0; budget--) {
      const candidate = this.oldest!
      if (this.busy(candidate)) {
        this.touch(candidate, now)
        continue
      }
      this.delete(candidate)
      evicted.push(candidate)
    }
    return evicted
  }

  /** Adds `value` under `key`, which must be absent (call `makeRoom` first to stay within `maxKeys`). */
  insert(key: string, value: A, now: number): Entry<A> {
    const entry: Entry<A> = { key, value, touched: now, active: 0, older: undefined, newer: undefined }
    this.map.set(key, entry)
    this.append(entry)
    return entry
  }

  delete(entry: Entry<A>): void {
    if (this.map.get(entry.key) !== entry) return
    this.map.delete(entry.key)
    this.unlink(entry)
    this.busyAtSweep.delete(entry)
  }

  /**
   * Removes and returns every entry idle for `ttl` at `now`. An entry found busy is idle from the
   * first sweep that finds it free, so it goes between `ttl` and `ttl` + one sweep interval after
   * its last call ended.
   */
  sweep(now: number): Array<Entry<A>> {
    const { lastUsed, ttl } = this.options
    for (const entry of this.busyAtSweep) {
      if (!this.busy(entry)) {
        this.busyAtSweep.delete(entry)
        this.touch(entry, now)
      }
    }
    const evicted: Array<Entry<A>> = []
    let entry = this.oldest
    for (let budget = this.map.size; entry !== undefined && budget > 0; budget--) {
      if (now - entry.touched < ttl) break
      const next = entry.newer
      const used = lastUsed === undefined ? entry.touched : Math.max(entry.touched, lastUsed(entry.value, now))
      if (now - used < ttl) {
        this.touch(entry, used) // used without the cache seeing it: it moves to the recent end
      } else if (this.busy(entry)) {
        this.busyAtSweep.add(entry)
        this.touch(entry, now)
      } else {
        this.delete(entry)
        evicted.push(entry)
      }
      entry = next
    }
    return evicted
  }

  /** Removes and returns every entry. */
  clear(): Array<Entry<A>> {
    const all = Array.from(this.map.values())
    this.map.clear()
    this.busyAtSweep.clear()
    this.oldest = undefined
    this.newest = undefined
    return all
  }
}

/**
 * Runs `sweep` every half `ttl` in a fiber of the current scope (none when entries never expire).
 */
export const sweepEvery = (ttl: number, sweep: Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
  Number.isFinite(ttl)
    ? Effect.asVoid(Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(Math.max(1, ttl / 2))))))
    : Effect.void
