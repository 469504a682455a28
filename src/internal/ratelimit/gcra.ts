/**
 * GCRA (generic cell rate algorithm): emission interval `T = periodMs / limit`, tolerance
 * `τ = T · burst`, one theoretical arrival time `tat` per key. `newTat = max(tat, now) + T · cost`;
 * admitted iff `newTat − τ − now ≤ maxDelayMs` (0 for a plain take; a positive value reserves
 * ahead, like a token bucket in debt, and `delayMs` says when to act). A negative cost moves `tat`
 * back (cancel), never before `now`.
 */
import type { Definition, Step } from "./core.js"
import { EPS, num, result, scriptHead } from "./core.js"

export interface Params {
  readonly limit: number
  readonly periodMs: number
  readonly burst: number
}

/** the theoretical arrival time, ms */
export type State = number

const TIME_EPS = 1e-6

export const step: Step<State, Params> = (state, now, params, cost, maxDelayMs) => {
  const interval = params.periodMs / params.limit
  const tau = interval * params.burst
  const base = state !== undefined && state > now ? state : now
  let tat = base
  let allowed = true
  let retry = 0
  let delay = 0
  if (cost > params.burst) {
    allowed = false
    retry = Infinity
  } else {
    let next = base + interval * cost
    if (cost < 0 && next < now) next = now
    const wait = next - tau - now
    if (wait <= maxDelayMs + TIME_EPS) {
      tat = next
      if (wait > 0) delay = wait
    } else {
      allowed = false
      retry = wait
    }
  }
  let remaining = Math.floor((tau - (tat - now)) / interval + EPS)
  if (remaining < 0) remaining = 0
  return result(tat, allowed, params.burst, remaining, retry, tat - now, delay, undefined)
}

export const script = `${scriptHead}
local limit = tonumber(ARGV[4])
local period = tonumber(ARGV[5])
local burst = tonumber(ARGV[6])
local interval = period / limit
local tau = interval * burst
local stored = redis.call("GET", key)
local base = now
if stored then
  local t0 = tonumber(stored)
  if t0 > now then base = t0 end
end
local tat = base
local allowed = 1
local retry = 0
local delay = 0
if cost > burst then
  allowed = 0
  retry = -1
else
  local nxt = base + interval * cost
  if cost < 0 and nxt < now then nxt = now end
  local wait = nxt - tau - now
  if wait <= maxDelay + 1e-6 then
    tat = nxt
    if wait > 0 then delay = wait end
  else
    allowed = 0
    retry = wait
  end
end
local remaining = math.floor((tau - (tat - now)) / interval + EPS)
if remaining < 0 then remaining = 0 end
local reset = tat - now
redis.call("SET", key, fmt(tat), "PX", expiry(reset))
return { allowed, remaining, fmt(retry), fmt(reset), fmt(delay), 0 }
`

export const make = (params: Params): Definition<State, Params> => ({
  kind: "Gcra",
  params,
  capacity: params.burst,
  limit: params.burst,
  reservable: true,
  step,
  script,
  scriptArgs: [num(params.limit), num(params.periodMs), num(params.burst)]
})
