/**
 * Token bucket with golang.org/x/time/rate semantics: a bucket of `burst` tokens, full at start,
 * refilled at `rate` tokens per second. A take with `maxDelay = 0` is `allow(n)`; with a positive
 * `maxDelay` it is `reserve(n)`: the tokens are taken even if the balance goes negative (debt),
 * and the reply says when the caller may act. `cancel` is x/time/rate's `Reservation.Cancel`.
 *
 * The state is the virtual time `full` at which the bucket is full again (tokens at `t` are
 * `burst − (full − t) / interval`) and `last`, the time of the last update. A clock that steps
 * backwards behaves as in x/time/rate: the tokens stay what they were at `last` (no refill, and no
 * stall), and refill resumes from the earlier time. A refused request changes nothing.
 */
import type { Definition, StepResult } from "./core.js"
import { bucketDecoder, cancelled, intervalUs, scriptCancel, scriptHead, scriptPut } from "./core.js"

export interface Params {
  /** tokens per second */
  readonly rate: number
  readonly burst: number
}

export interface State {
  /** µs: when the bucket is full again */
  readonly full: number
  /** µs: the time of the last update */
  readonly last: number
}

/** The time the bucket is full again, seen from `now` (x/time/rate's `advance`). */
const advance = (state: State | undefined, now: number): number => {
  if (state === undefined) return now
  const full = state.last > now ? state.full - (state.last - now) : state.full
  return full > now ? full : now
}

export const make = (params: Params): Definition<State> => {
  const burst = params.burst
  const interval = intervalUs(1000 / params.rate)
  const tau = interval * burst
  const step = (state: State | undefined, now: number, cost: number, maxDelay: number): StepResult<State> => {
    const next = advance(state, now) + cost * interval
    const wait = next - tau - now
    if (wait > maxDelay || cost > burst) return { reply: -wait, state, until: state === undefined ? now : state.full }
    return { reply: maxDelay > 0 ? [next - now, now] : next - now, state: { full: next, last: now }, until: next }
  }
  const cancel = (state: State | undefined, now: number, cost: number, timeToAct: number): StepResult<State> => {
    if (state === undefined) return { reply: 0, state, until: now }
    const full = cancelled(state.full, advance(state, now), now, cost, timeToAct, interval, tau)
    if (full === undefined) return { reply: 0, state, until: state.full }
    return { reply: 0, state: { full, last: now }, until: full }
  }
  return {
    kind: "TokenBucket",
    id: `TokenBucket ${interval} ${burst}`,
    capacity: burst,
    limit: burst,
    step,
    reuse: (stored, next) => {
      const s = stored as { full: number; last: number }
      s.full = next.full
      s.last = next.last
      return s
    },
    share: (n) => make({ rate: params.rate / n, burst: Math.ceil(burst / n) }),
    cancel,
    decode: bucketDecoder(interval, tau, burst),
    script: script(interval, tau, burst)
  }
}

const script = (interval: number, tau: number, burst: number) =>
  `${scriptHead}local interval, tau, burst = ${interval}, ${tau}, ${burst}
local stored, last = nil, nil
local s = redis.call("GET", key)
if s then
  local sp = string.find(s, " ", 1, true)
  stored = tonumber(string.sub(s, 1, sp - 1))
  last = tonumber(string.sub(s, sp + 1))
end
local full = now
if stored then
  full = stored
  if last > now then full = stored - (last - now) end
  if full < now then full = now end
end
local tta = ARGV[4]
if tta then
  if not stored then return 0 end
  tta = tonumber(tta)
${scriptCancel}${scriptPut(`string.format("%d %d", full, now)`, "stored", "full")}  return 0
end
local nxt = full + cost * interval
local wait = nxt - tau - now
if wait > maxDelay or cost > burst then return -wait end
${scriptPut(`string.format("%d %d", nxt, now)`, "stored", "nxt")}if maxDelay > 0 then return { nxt - now, now } end
return nxt - now
`
