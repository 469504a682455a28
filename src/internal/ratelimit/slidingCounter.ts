/**
 * Sliding counter: counts per aligned window of `windowMs`, and the estimate
 * `previous · (window − elapsed) / window + current` stands for the requests of the last
 * `windowMs`. A request is admitted when the estimate plus its cost stays within `limit`.
 * Two numbers per key, approximate (assumes the previous window's requests were spread evenly).
 */
import type { Definition, Step } from "./core.js"
import { EPS, num, result, scriptHead } from "./core.js"

export interface Params {
  readonly limit: number
  readonly windowMs: number
}

export interface State {
  readonly previous: number
  readonly current: number
  /** start of the current window, ms */
  readonly start: number
}

export const step: Step<State, Params> = (state, now, params, cost) => {
  const limit = params.limit
  const window = params.windowMs
  let previous: number
  let current: number
  let start: number
  if (state === undefined) {
    previous = 0
    current = 0
    start = Math.floor(now / window) * window
  } else if (now >= state.start + window) {
    previous = now < state.start + window + window ? state.current : 0
    current = 0
    start = Math.floor(now / window) * window
  } else {
    previous = state.previous
    current = state.current
    start = state.start
  }
  const elapsed = now - start
  const weight = (window - elapsed) / window
  const estimate = previous * weight + current
  let allowed = true
  let retry = 0
  if (cost > limit) {
    allowed = false
    retry = Infinity
  } else if (cost < 0) {
    current = current + cost
    if (current < 0) current = 0
  } else if (estimate + cost <= limit + EPS) {
    current = current + cost
  } else {
    allowed = false
    const room = limit - cost - current
    if (room >= 0) {
      retry = (window - elapsed) - room * window / previous
    } else {
      retry = (window - elapsed) + (window - (limit - cost) * window / current)
    }
  }
  let remaining = Math.floor(limit - (previous * weight + current) + EPS)
  if (remaining < 0) remaining = 0
  const reset = current > 0 ? window + window - elapsed : previous > 0 ? window - elapsed : 0
  return result({ previous, current, start }, allowed, limit, remaining, retry, reset, 0, undefined)
}

export const script = `${scriptHead}
local limit = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local stored = redis.call("GET", key)
local previous
local current
local start
if not stored then
  previous = 0
  current = 0
  start = math.floor(now / window) * window
else
  local a = string.find(stored, " ", 1, true)
  local b = string.find(stored, " ", a + 1, true)
  local p0 = tonumber(string.sub(stored, 1, a - 1))
  local c0 = tonumber(string.sub(stored, a + 1, b - 1))
  local s0 = tonumber(string.sub(stored, b + 1))
  if now >= s0 + window then
    if now < s0 + window + window then previous = c0 else previous = 0 end
    current = 0
    start = math.floor(now / window) * window
  else
    previous = p0
    current = c0
    start = s0
  end
end
local elapsed = now - start
local weight = (window - elapsed) / window
local estimate = previous * weight + current
local allowed = 1
local retry = 0
if cost > limit then
  allowed = 0
  retry = -1
elseif cost < 0 then
  current = current + cost
  if current < 0 then current = 0 end
elseif estimate + cost <= limit + EPS then
  current = current + cost
else
  allowed = 0
  local room = limit - cost - current
  if room >= 0 then
    retry = (window - elapsed) - room * window / previous
  else
    retry = (window - elapsed) + (window - (limit - cost) * window / current)
  end
end
local remaining = math.floor(limit - (previous * weight + current) + EPS)
if remaining < 0 then remaining = 0 end
local reset = 0
if current > 0 then
  reset = window + window - elapsed
elseif previous > 0 then
  reset = window - elapsed
end
redis.call("SET", key, fmt(previous) .. " " .. fmt(current) .. " " .. fmt(start), "PX", expiry(reset))
return { allowed, remaining, fmt(retry), fmt(reset), "0", 0 }
`

export const make = (params: Params): Definition<State, Params> => ({
  kind: "SlidingCounter",
  params,
  capacity: params.limit,
  limit: params.limit,
  reservable: false,
  step,
  script,
  scriptArgs: [num(params.limit), num(params.windowMs)]
})
