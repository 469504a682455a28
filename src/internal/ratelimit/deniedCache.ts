/**
 * The Redis store's optional "denied until" cache: a key refused with a finite `retryAfter` is
 * refused locally until then, without a round trip. `retryAfter` is how long until the same
 * request would pass if nobody else takes anything, so the local answer is never more permissive
 * than Redis's (others taking more only makes the real wait longer); it applies to requests that
 * cost at least what the refused one cost. Bounded: beyond `maxKeys` the oldest entry goes first.
 */
import { OrderedMap } from "../orderedMap.js"
import type { RawDecision } from "./core.js"
import { Verdict } from "./core.js"

interface Denied {
  readonly until: number
  readonly cost: number
  readonly decision: RawDecision
}

export interface DeniedCache {
  /** the cached refusal for `key` at `now` (ms, any monotonic clock), if one still holds */
  readonly get: (key: string, cost: number, now: number) => RawDecision | undefined
  readonly put: (key: string, cost: number, decision: RawDecision, now: number) => void
}

export const makeDeniedCache = (maxKeys: number): DeniedCache => {
  // read oldest first through a long-lived iterator: a fresh one per eviction would step over
  // every entry deleted since V8 last rebuilt the table
  const denied = new OrderedMap<string, Denied>()
  return {
    get: (key, cost, now) => {
      const entry = denied.map.get(key)
      if (entry === undefined) return undefined
      if (now >= entry.until) {
        denied.delete(key)
        return undefined
      }
      if (cost < entry.cost) return undefined
      const left = entry.until - now
      const d = entry.decision
      const reset = d.resetAfterMs - (d.retryAfterMs - left)
      return new Verdict(false, d.limit, d.remaining, left, reset > 0 ? reset : 0, 0, d.code, undefined)
    },
    put: (key, cost, decision, now) => {
      if (decision.allowed || !(decision.retryAfterMs > 0 && decision.retryAfterMs < Infinity)) return
      denied.delete(key)
      if (denied.size >= maxKeys) denied.delete(denied.oldest()![0])
      denied.set(key, { until: now + decision.retryAfterMs, cost, decision })
    }
  }
}
