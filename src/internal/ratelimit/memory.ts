/**
 * The in-memory table behind `RateLimiterStore.layerMemory` (and behind the Redis store's local
 * fallback): one `Map` per limiter from key to `{ state, until, touched }`, stepped synchronously.
 * Times are µs.
 *
 * Memory stays bounded two ways. A key whose `until` has passed is dead (its state equals a
 * fresh key's): reads treat it as absent, and a sweep cursor walks the map round and round
 * deleting dead keys — a short stretch on any call once a second, and whole passes from the store's
 * background sweeper — so the map shrinks back after a burst of keys whatever order they die in;
 * each insertion also drops a couple of dead keys from the front, where keys usually die first.
 * The key count is capped: inserting beyond `maxKeys` evicts the front key. The map's insertion
 * order makes the front the least recently used end, because an entry that is used again after
 * `touchEvery` is moved to the back (a delete and a set; doing it on every hit would double the
 * cost of the hot path for little gain in precision). The front is read through one long-lived
 * iterator, never a fresh one (see `OrderedMap`).
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { OrderedMap } from "../orderedMap.js"
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
 * an object state is copied into the stored object when the algorithm offers `reuse` (see
 * `Inline`: that stored object is then the entry itself).
 */
const NUMERIC = Symbol("numeric")

/**
 * With `reuse`, the stored state object is the table's own, so it is also the entry: `until` and
 * `touched` are added to it, and a lookup reaches the state in one object (at a million keys every
 * object more is one more cache miss per decision).
 */
interface Inline {
  until: number
  touched: number
}

export interface Table {
  readonly run: (key: string, now: number, cost: number, maxDelay: number) => RawDecision
  /** gives back a reservation (token bucket and GCRA) */
  readonly cancel: (key: string, now: number, cost: number, timeToAct: number) => void
  readonly size: () => number
  /**
   * Walks up to `budget` entries from where the last sweep stopped, deleting dead ones; true when
   * the walk reached the end of the map (the next sweep starts a new pass).
   */
  readonly sweep: (now: number, budget: number) => boolean
  /**
   * Computes `key`'s step without applying it: `commit` applies it. Between the two, nothing else
   * may touch this table (all-or-nothing over several tables: evaluate them all, then commit all
   * or none, in one synchronous block).
   */
  readonly evaluate: (key: string, now: number, cost: number) => Evaluated
  readonly commit: (evaluated: Evaluated) => void
}

/** A step computed but not applied yet. */
export interface Evaluated {
  readonly key: string
  readonly now: number
  readonly entry: unknown
  readonly result: StepResult<unknown>
  readonly decision: RawDecision
}

export interface TableOptions {
  readonly maxKeys: number
  /** forget a key after this long without use even if its state still matters, µs (Infinity = never) */
  readonly idleTimeToLive: number
}

/** dead keys dropped from the front on each insertion: enough to keep up with the insertions */
const SWEEP_ON_INSERT = 2
/** entries walked on a call once the next sweep is due: a few µs at most */
const SWEEP_ON_CALL = 256
/** pause between two passes of the on-call sweep, µs */
const SWEEP_PAUSE = 1_000_000

export const makeTable = (definition: Definition, options: TableOptions): Table =>
  definition.reuse !== undefined ? makeInlineTable(definition, options) : makeBoxedTable(definition, options)

/** The sweeping, capped insertion and recency that both kinds of table share. */
const makeKeys = <E extends { until: number; touched: number }>(options: TableOptions) => {
  // the oldest key and the sweep's place are read through long-lived iterators (see OrderedMap)
  const keys = new OrderedMap<string, E>()
  const map = keys.map
  const maxKeys = options.maxKeys
  const touchEvery = Math.min(1_000_000, options.idleTimeToLive / 2)
  let nextSweepAt = 0
  const sweep = (now: number, budget: number): boolean => {
    for (let i = 0; i < budget; i++) {
      const next = keys.walk()
      if (next === undefined) return true
      if (next[1].until <= now) keys.delete(next[0])
    }
    return false
  }
  const sweepIfDue = (now: number): void => {
    if (now < nextSweepAt) return
    nextSweepAt = sweep(now, SWEEP_ON_CALL) ? now + SWEEP_PAUSE : now
  }
  const insert = (key: string, entry: E, now: number): void => {
    // the front is the least recently used end, where keys usually die first
    for (let swept = 0; swept < SWEEP_ON_INSERT; swept++) {
      const first = keys.oldest()
      if (first === undefined || first[1].until > now) break
      keys.delete(first[0])
    }
    if (map.size >= maxKeys) {
      const first = keys.oldest()
      if (first !== undefined) keys.delete(first[0])
    }
    keys.set(key, entry)
  }
  const touch = (key: string, entry: E, now: number): void => {
    if (now - entry.touched >= touchEvery) {
      entry.touched = now
      keys.moveToBack(key, entry)
    }
  }
  return { map, sweep, sweepIfDue, insert, touch }
}

const makeInlineTable = (definition: Definition, options: TableOptions): Table => {
  const { map, insert, sweep, sweepIfDue, touch } = makeKeys<Inline>(options)
  const { cancel: cancelStep, decode, step } = definition
  const reuse = definition.reuse!
  const ttl = options.idleTimeToLive
  const apply = (key: string, entry: Inline | undefined, r: StepResult<unknown>, now: number): void => {
    const next = r.state as Inline | undefined
    if (next === undefined) return
    const until = r.until - now < ttl ? r.until : now + ttl
    if (entry === undefined) {
      // a fresh object from the step, handed to nobody else: it becomes the entry
      next.until = until
      next.touched = now
      insert(key, next, now)
      return
    }
    if (entry !== next) reuse(entry, next)
    entry.until = until
    touch(key, entry, now)
  }
  const live = (entry: Inline | undefined, now: number): Inline | undefined =>
    entry === undefined || entry.until <= now ? undefined : entry
  const run = (key: string, now: number, cost: number, maxDelay: number): RawDecision => {
    sweepIfDue(now)
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
  const evaluate = (key: string, now: number, cost: number): Evaluated => {
    sweepIfDue(now)
    const entry = map.get(key)
    const result = step(live(entry, now), now, cost, 0)
    return { key, now, entry, result, decision: decode(result.reply, cost) }
  }
  const commit = (e: Evaluated): void => apply(e.key, e.entry as Inline | undefined, e.result, e.now)
  return { run, cancel, size: () => map.size, sweep, evaluate, commit }
}

const makeBoxedTable = (definition: Definition, options: TableOptions): Table => {
  const { map, insert, sweep, sweepIfDue, touch } = makeKeys<Entry>(options)
  const { cancel: cancelStep, decode, step } = definition
  const ttl = options.idleTimeToLive
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
    } else {
      entry.state = next
    }
    entry.until = until
    touch(key, entry, now)
  }
  const live = (entry: Entry | undefined, now: number): unknown =>
    entry === undefined || entry.until <= now ? undefined : entry.state === NUMERIC ? entry.value : entry.state
  const run = (key: string, now: number, cost: number, maxDelay: number): RawDecision => {
    sweepIfDue(now)
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
  const evaluate = (key: string, now: number, cost: number): Evaluated => {
    sweepIfDue(now)
    const entry = map.get(key)
    const result = step(live(entry, now), now, cost, 0)
    return { key, now, entry, result, decision: decode(result.reply, cost) }
  }
  const commit = (e: Evaluated): void => apply(e.key, e.entry as Entry | undefined, e.result, e.now)
  return { run, cancel, size: () => map.size, sweep, evaluate, commit }
}

/**
 * Takes `cost` from `keys[i]` in `tables[i]` for every `i`, or from none: every step is computed
 * first and applied only when all of them admit. One synchronous block, so no other call can
 * interleave. The tables must be distinct (a table stepped twice would not see its first step).
 */
export const runAll = (
  tables: ReadonlyArray<Table>,
  keys: ReadonlyArray<string>,
  now: number,
  cost: number
): Array<RawDecision> => {
  const n = tables.length
  const evaluated = new Array<Evaluated>(n)
  const decisions = new Array<RawDecision>(n)
  let allowed = true
  for (let i = 0; i < n; i++) {
    const e = tables[i].evaluate(keys[i], now, cost)
    evaluated[i] = e
    decisions[i] = e.decision
    if (!e.decision.allowed) allowed = false
  }
  if (allowed) { for (let i = 0; i < n; i++) tables[i].commit(evaluated[i]) }
  return decisions
}

/** entries a background sweep walks before it yields to other fibers */
const SWEEP_CHUNK = 10_000

/**
 * One pass over every table, in chunks so that a million keys never block the event loop. The
 * cursor may start mid-map (calls sweep too): a pass walks one chunk more than the map holds, as
 * the first chunk may stop short at the end of the map, so every entry is seen once.
 */
export const sweepTables = (tables: Iterable<Table>): Effect.Effect<void> =>
  Effect.forEach(tables, (table) =>
    Effect.clockWith((clock) => {
      let chunks = Math.ceil(table.size() / SWEEP_CHUNK) + 1
      return Effect.suspend(function loop(): Effect.Effect<void> {
        table.sweep(clock.unsafeCurrentTimeMillis() * 1000, SWEEP_CHUNK)
        return --chunks <= 0 ? Effect.void : Effect.zipRight(Effect.yieldNow(), Effect.suspend(loop))
      })
    }), { discard: true })

/** The background sweeper: a pass over the tables (read afresh each time) every `interval`. */
export const sweepEvery = (tables: Map<string, Table>, interval: Duration.Duration): Effect.Effect<never> =>
  Effect.forever(Effect.zipRight(Effect.sleep(interval), Effect.suspend(() => sweepTables(tables.values()))))
