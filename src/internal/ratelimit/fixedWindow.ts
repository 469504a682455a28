/**
 * Fixed window (go-zero's PeriodLimit): a counter per window of `windowMs`. The window starts at
 * the first request, or with `align` on a multiple of the window (windows end on period
 * boundaries, e.g. per day, counted from the Unix epoch plus `offsetMs`). A request is admitted
 * while the count stays within `limit`; the code is `Allowed` below the quota, `HitQuota` for the
 * request that reaches it, `OverQuota` above. A denied request does not count (go-zero counts
 * it, but the codes are the same for single-cost takes and a denied costly take does not starve
 * the cheap ones that still fit).
 */
import type { Definition, PeriodCode, Step } from "./core.js"
import { num, result, scriptHead } from "./core.js"

export interface Params {
  readonly limit: number
  readonly windowMs: number
  readonly align: boolean
  readonly offsetMs: number
}

export interface State {
  readonly count: number
  /** end of the current window, ms */
  readonly end: number
}

export const step: Step<State, Params> = (state, now, params, cost) => {
  const limit = params.limit
  let count: number
  let end: number
  if (state === undefined || now >= state.end) {
    count = 0
    end = params.align
      ? (Math.floor((now - params.offsetMs) / params.windowMs) + 1) * params.windowMs + params.offsetMs
      : now + params.windowMs
  } else {
    count = state.count
    end = state.end
  }
  const reset = end - now
  if (cost > limit) return result({ count, end }, false, limit, limit - count, Infinity, reset, 0, undefined)
  let c = count + cost
  if (c < 0) c = 0
  let allowed: boolean
  let code: PeriodCode
  let retry = 0
  if (c <= limit) {
    allowed = true
    count = c
    code = c < limit ? "Allowed" : "HitQuota"
  } else {
    allowed = false
    code = "OverQuota"
    retry = reset
  }
  return result({ count, end }, allowed, limit, limit - count, retry, reset, 0, code)
}

export const script = `${scriptHead}
local limit = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local align = ARGV[6] == "1"
local offset = tonumber(ARGV[7])
local stored = redis.call("GET", key)
local c0
local e0
if stored then
  local sp = string.find(stored, " ", 1, true)
  c0 = tonumber(string.sub(stored, 1, sp - 1))
  e0 = tonumber(string.sub(stored, sp + 1))
end
local count
local e
if (not stored) or now >= e0 then
  count = 0
  if align then
    e = (math.floor((now - offset) / window) + 1) * window + offset
  else
    e = now + window
  end
else
  count = c0
  e = e0
end
local reset = e - now
local allowed = 0
local code = 0
local retry = 0
if cost > limit then
  retry = -1
else
  local c = count + cost
  if c < 0 then c = 0 end
  if c <= limit then
    allowed = 1
    count = c
    if c < limit then code = 1 else code = 2 end
  else
    code = 3
    retry = reset
  end
end
redis.call("SET", key, fmt(count) .. " " .. fmt(e), "PX", expiry(reset))
return { allowed, limit - count, fmt(retry), fmt(reset), "0", code }
`

export const make = (params: Params): Definition<State, Params> => ({
  kind: "FixedWindow",
  params,
  capacity: params.limit,
  limit: params.limit,
  reservable: false,
  step,
  script,
  scriptArgs: [num(params.limit), num(params.windowMs), params.align ? "1" : "0", num(params.offsetMs)]
})
