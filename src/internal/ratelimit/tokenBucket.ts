/**
 * Token bucket with golang.org/x/time/rate semantics: a bucket of `burst` tokens, full at start,
 * refilled lazily at `rate` tokens per second. A take with `maxDelayMs = 0` is `allow(n)`; with a
 * positive `maxDelayMs` it is `reserve(n)`: the tokens are taken even if the balance goes negative
 * (debt), and `delayMs` says when the caller may act. A negative cost returns tokens (cancel),
 * never above `burst`.
 */
import type { Definition, Step } from "./core.js"
import { EPS, num, result, scriptHead } from "./core.js"

export interface Params {
  /** tokens per second */
  readonly rate: number
  readonly burst: number
}

export interface State {
  readonly tokens: number
  /** time of the last refill, ms */
  readonly last: number
}

export const step: Step<State, Params> = (state, now, params, cost, maxDelayMs) => {
  const rate = params.rate
  const burst = params.burst
  let tokens: number
  let last: number
  if (state !== undefined) {
    const elapsed = now - state.last
    tokens = Math.min(burst, state.tokens + (elapsed > 0 ? elapsed : 0) * rate / 1000)
    last = state.last > now ? state.last : now
  } else {
    tokens = burst
    last = now
  }
  if (cost > burst) {
    return result({ tokens, last }, false, burst, remainingOf(tokens), Infinity, resetOf(tokens, params), 0, undefined)
  }
  let after = tokens - cost
  if (cost <= 0 && after > burst) after = burst
  const wait = after < -EPS ? -after * 1000 / rate : 0
  let allowed: boolean
  let delay = 0
  let retry = 0
  if (wait <= maxDelayMs + EPS) {
    allowed = true
    tokens = after
    delay = wait
  } else {
    allowed = false
    retry = wait
  }
  return result({ tokens, last }, allowed, burst, remainingOf(tokens), retry, resetOf(tokens, params), delay, undefined)
}

const remainingOf = (tokens: number): number => {
  const r = Math.floor(tokens + EPS)
  return r > 0 ? r : 0
}

const resetOf = (tokens: number, params: Params): number => {
  const r = (params.burst - tokens) * 1000 / params.rate
  return r > 0 ? r : 0
}

export const script = `${scriptHead}
local rate = tonumber(ARGV[4])
local burst = tonumber(ARGV[5])
local stored = redis.call("GET", key)
local tokens
local last
if stored then
  local sp = string.find(stored, " ", 1, true)
  local t0 = tonumber(string.sub(stored, 1, sp - 1))
  local l0 = tonumber(string.sub(stored, sp + 1))
  local elapsed = now - l0
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, t0 + elapsed * rate / 1000)
  if l0 > now then last = l0 else last = now end
else
  tokens = burst
  last = now
end
local allowed = 0
local delay = 0
local retry = 0
if cost > burst then
  retry = -1
else
  local after = tokens - cost
  if cost <= 0 and after > burst then after = burst end
  local wait = 0
  if after < -EPS then wait = -after * 1000 / rate end
  if wait <= maxDelay + EPS then
    allowed = 1
    tokens = after
    delay = wait
  else
    retry = wait
  end
end
local reset = (burst - tokens) * 1000 / rate
if not (reset > 0) then reset = 0 end
local remaining = math.floor(tokens + EPS)
if not (remaining > 0) then remaining = 0 end
redis.call("SET", key, fmt(tokens) .. " " .. fmt(last), "PX", expiry(reset))
return { allowed, remaining, fmt(retry), fmt(reset), fmt(delay), 0 }
`

export const make = (params: Params): Definition<State, Params> => ({
  kind: "TokenBucket",
  params,
  capacity: params.burst,
  limit: params.burst,
  reservable: true,
  step,
  script,
  scriptArgs: [num(params.rate), num(params.burst)]
})
