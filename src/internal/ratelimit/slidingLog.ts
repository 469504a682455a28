/**
 * Sliding log: one timestamp per admitted unit of cost, exact. A request is admitted when the
 * entries younger than `windowMs` plus its cost stay within `limit`. An entry stamped `t` counts
 * until `t + windowMs` (exclusive). Memory and time per step grow with `limit`. A negative cost
 * removes the newest entries.
 */
import type { Definition, Step } from "./core.js"
import { num, result, scriptHead } from "./core.js"

export interface Params {
  readonly limit: number
  readonly windowMs: number
}

/** admission times, oldest first */
export type State = ReadonlyArray<number>

const empty: State = []

export const step: Step<State, Params> = (state, now, params, cost) => {
  const limit = params.limit
  const window = params.windowMs
  const cut = now - window
  const log = state ?? empty
  let i = 0
  while (i < log.length && log[i] <= cut) i++
  let live = i === 0 ? log : log.slice(i)
  const n = live.length
  let allowed = true
  let retry = 0
  if (cost > limit) {
    allowed = false
    retry = Infinity
  } else if (cost < 0) {
    const keep = n + cost
    live = live.slice(0, keep > 0 ? keep : 0)
  } else if (n + cost <= limit) {
    if (cost > 0) {
      const next = live.slice()
      for (let j = 0; j < cost; j++) next.push(now)
      live = next
    }
  } else {
    allowed = false
    retry = live[n + cost - limit - 1] + window - now
  }
  const m = live.length
  const reset = m > 0 ? live[m - 1] + window - now : 0
  return result(live, allowed, limit, limit - m, retry, reset, 0, undefined)
}

export const script = `${scriptHead}
local limit = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local cut = now - window
local log = redis.call("LRANGE", key, 0, -1)
local i = 0
while i < #log and tonumber(log[i + 1]) <= cut do i = i + 1 end
if i > 0 then redis.call("LTRIM", key, i, -1) end
local n = #log - i
local m = n
local allowed = 1
local retry = 0
local last = nil
if n > 0 then last = tonumber(log[#log]) end
if cost > limit then
  allowed = 0
  retry = -1
elseif cost < 0 then
  local drop = -cost
  if drop > n then drop = n end
  for j = 1, drop do redis.call("RPOP", key) end
  m = n - drop
  if m > 0 then last = tonumber(log[i + m]) end
elseif n + cost <= limit then
  local stamp = fmt(now)
  for j = 1, cost do redis.call("RPUSH", key, stamp) end
  m = n + cost
  if cost > 0 then last = now end
else
  allowed = 0
  retry = tonumber(log[i + n + cost - limit]) + window - now
end
local reset = 0
if m > 0 then
  reset = last + window - now
  redis.call("PEXPIRE", key, expiry(reset))
end
return { allowed, limit - m, fmt(retry), fmt(reset), "0", 0 }
`

export const make = (params: Params): Definition<State, Params> => ({
  kind: "SlidingLog",
  params,
  capacity: params.limit,
  limit: params.limit,
  reservable: false,
  step,
  script,
  scriptArgs: [num(params.limit), num(params.windowMs)]
})
