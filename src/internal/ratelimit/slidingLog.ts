/**
 * Sliding log: one timestamp (µs) per admitted unit of cost, exact. A request is admitted when
 * the entries younger than `window` plus its cost stay within `limit`. An entry stamped `t` counts
 * until `t + window` (exclusive). Memory and time per step grow with `limit`. Expired entries are
 * dropped when a request is admitted; a refused request writes nothing.
 */
import type { Definition, StepResult } from "./core.js"
import { EXPIRY_CELL, scriptHead, US, windowDecoder } from "./core.js"

export interface Params {
  readonly limit: number
  /** µs */
  readonly window: number
}

/** admission times, oldest first */
export type State = ReadonlyArray<number>

const empty: State = []

export const make = (params: Params): Definition<State> => {
  const { limit, window } = params
  const step = (state: State | undefined, now: number, cost: number): StepResult<State> => {
    const log = state ?? empty
    const cut = now - window
    let i = 0
    while (i < log.length && log[i] <= cut) i++
    const n = log.length - i
    let live = log
    let first = i
    let retry = 0
    if (cost > limit) retry = -1
    else if (n + cost <= limit) {
      const next = log.slice(i)
      for (let j = 0; j < cost; j++) next.push(now)
      live = next
      first = 0
    } else retry = log[i + n + cost - limit - 1] + window - now
    const m = live.length - first
    const reset = m > 0 ? live[live.length - 1] + window - now : 0
    const kept = live === log ? state : live
    return {
      reply: [limit - m, reset, retry],
      state: kept,
      until: kept === undefined || kept.length === 0 ? now : kept[kept.length - 1] + window
    }
  }
  return {
    kind: "SlidingLog",
    id: `SlidingLog ${limit} ${window}`,
    capacity: limit,
    limit,
    step,
    share: (n) => make({ limit: Math.ceil(limit / n), window }),
    decode: windowDecoder(limit, false),
    script: `${scriptHead}local limit, window = ${limit}, ${window}
local cut = now - window
local log = redis.call("LRANGE", key, 0, -1)
local len = #log
local i = 0
while i < len and tonumber(log[i + 1]) <= cut do i = i + 1 end
local n = len - i
local m = n
local retry = 0
local last = nil
if len > 0 then last = tonumber(log[len]) end
if cost > limit then
  retry = -1
elseif n + cost <= limit then
  if i > 0 then redis.call("LTRIM", key, i, -1) end
  if cost > 0 then
    local stamps = {}
    for j = 1, cost do stamps[j] = now end
    redis.call("RPUSH", key, unpack(stamps))
    -- the expiry grid of \`put\`; a list emptied by LTRIM was deleted, so it is new again
    local cell = math.floor((now + window) / ${EXPIRY_CELL})
    if i == len or cell > math.floor((last + window) / ${EXPIRY_CELL}) then
      redis.call("PEXPIREAT", key, (cell + 1) * ${EXPIRY_CELL / US})
    end
    last = now
  end
  m = n + cost
else
  retry = tonumber(log[i + n + cost - limit]) + window - now
end
local reset = 0
if m > 0 then reset = last + window - now end
return { limit - m, reset, retry }
`
  }
}
