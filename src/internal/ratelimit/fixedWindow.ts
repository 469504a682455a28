/**
 * Fixed window (go-zero's PeriodLimit): a counter per window of `window` µs. The window starts at
 * the first request, or with `align` on a multiple of the window (windows end on period
 * boundaries, e.g. per day, counted from the Unix epoch plus `offset`). A request is admitted
 * while the count stays within `limit`; the code is `Allowed` below the quota, `HitQuota` for the
 * request that reaches it, `OverQuota` above. A denied request does not count (go-zero counts
 * it, but the codes are the same for single-cost takes and a denied costly take does not starve
 * the cheap ones that still fit).
 */
import type { Definition, StepResult } from "./core.js"
import { scriptHead, scriptPut, windowDecoder } from "./core.js"

export interface Params {
  readonly limit: number
  /** µs */
  readonly window: number
  readonly align: boolean
  /** µs */
  readonly offset: number
}

export interface State {
  readonly count: number
  /** µs: end of the current window */
  readonly end: number
}

export const make = (params: Params): Definition<State> => {
  const { align, limit, offset, window } = params
  const step = (state: State | undefined, now: number, cost: number): StepResult<State> => {
    let count = 0
    let end: number
    if (state === undefined || now >= state.end) {
      end = align ? (Math.floor((now - offset) / window) + 1) * window + offset : now + window
    } else {
      count = state.count
      end = state.end
    }
    const reset = end - now
    const c = count + cost
    // a request the quota can never admit still starts the window, as any first request does
    if (cost > limit) return { reply: [limit - count, reset, -1], state: { count, end }, until: end }
    if (c > limit) return { reply: [limit - count, reset, reset], state, until: end }
    return { reply: [limit - c, reset, 0], state: { count: c, end }, until: end }
  }
  return {
    kind: "FixedWindow",
    id: `FixedWindow ${limit} ${window} ${align ? offset : "-"}`,
    capacity: limit,
    limit,
    step,
    reuse: (stored, next) => {
      const s = stored as { count: number; end: number }
      s.count = next.count
      s.end = next.end
      return s
    },
    share: (n) => make({ ...params, limit: Math.ceil(limit / n) }),
    decode: windowDecoder(limit, true),
    script: `${scriptHead}local limit, window, offset = ${limit}, ${window}, ${offset}
local count, e, stored = 0, nil, nil
local s = redis.call("GET", key)
if s then
  local sp = string.find(s, " ", 1, true)
  stored = tonumber(string.sub(s, sp + 1))
  if now < stored then
    count = tonumber(string.sub(s, 1, sp - 1))
    e = stored
  end
end
if not e then
  ${align ? "e = (math.floor((now - offset) / window) + 1) * window + offset" : "e = now + window"}
end
local reset = e - now
local c = count + cost
if cost > limit then
  if count == 0 then
${scriptPut(`string.format("%d %d", 0, e)`, "stored", "e")}  end
  return { limit - count, reset, -1 }
end
if c > limit then return { limit - count, reset, reset } end
${scriptPut(`string.format("%d %d", c, e)`, "stored", "e")}return { limit - c, reset, 0 }
`
  }
}
