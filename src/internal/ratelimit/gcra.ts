/**
 * GCRA (generic cell rate algorithm): emission interval `interval = period / limit` (whole µs,
 * rounded up), tolerance `tau = interval · burst`, one theoretical arrival time `tat` per key.
 * `next = max(tat, now) + interval · cost`; admitted iff `next − tau − now ≤ maxDelay` (0 for a
 * plain take; a positive value reserves ahead, like a token bucket in debt, and the reply says when
 * to act). `cancel` gives a reservation back as the token bucket does.
 *
 * `tat` is an absolute time, so a clock that steps backwards by `d` holds the key's next
 * admissions back by up to `d` (GCRA keeps no time of last update to tell a step from a burst); it
 * never admits more. Use the token bucket where the clock may step back and that matters.
 */
import type { Definition, StepResult } from "./core.js"
import { bucketDecoder, cancelled, intervalUs, scriptCancel, scriptHead, scriptPut } from "./core.js"

export interface Params {
  readonly limit: number
  readonly periodMs: number
  readonly burst: number
}

/** the theoretical arrival time, µs */
export type State = number

export const make = (params: Params): Definition<State> => {
  const burst = params.burst
  const interval = intervalUs(params.periodMs / params.limit)
  const tau = interval * burst
  const step = (state: State | undefined, now: number, cost: number, maxDelay: number): StepResult<State> => {
    const next = (state !== undefined && state > now ? state : now) + cost * interval
    const wait = next - tau - now
    if (wait > maxDelay || cost > burst) return { reply: -wait, state, until: state ?? now }
    return { reply: maxDelay > 0 ? [next - now, now] : next - now, state: next, until: next }
  }
  const cancel = (state: State | undefined, now: number, cost: number, timeToAct: number): StepResult<State> => {
    if (state === undefined) return { reply: 0, state, until: now }
    const tat = cancelled(state, state > now ? state : now, now, cost, timeToAct, interval, tau)
    if (tat === undefined) return { reply: 0, state, until: state }
    return { reply: 0, state: tat, until: tat }
  }
  return {
    kind: "Gcra",
    id: `Gcra ${interval} ${burst}`,
    capacity: burst,
    limit: burst,
    step,
    share: (n) => make({ limit: params.limit / n, periodMs: params.periodMs, burst: Math.ceil(burst / n) }),
    cancel,
    decode: bucketDecoder(interval, tau, burst),
    script: script(interval, tau, burst)
  }
}

const script = (interval: number, tau: number, burst: number) =>
  `${scriptHead}local interval, tau, burst = ${interval}, ${tau}, ${burst}
local stored = tonumber(redis.call("GET", key))
local full = now
if stored and stored > now then full = stored end
local tta = ARGV[4]
if tta then
  if not stored then return 0 end
  tta = tonumber(tta)
${scriptCancel}${scriptPut("full", "stored", "full")}  return 0
end
local nxt = full + cost * interval
local wait = nxt - tau - now
if wait > maxDelay or cost > burst then return -wait end
${scriptPut("nxt", "stored", "nxt")}if maxDelay > 0 then return { nxt - now, now } end
return nxt - now
`
