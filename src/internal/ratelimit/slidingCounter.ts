/**
 * Sliding counter: counts per aligned window of `window` µs, and the estimate
 * `previous · (window − elapsed) / window + current` stands for the requests of the last window.
 * A request is admitted when the estimate plus its cost stays within `limit`, compared exactly in
 * integers (`previous · (window − elapsed) + (current + cost) · window ≤ limit · window`). Two
 * counts and the window start per key; approximate (assumes the previous window's requests were
 * spread evenly). A refused request writes nothing: the roll-over to a new window is recomputed
 * from the stored state.
 */
import type { Definition, StepResult } from "./core.js"
import { scriptHead, scriptPut, windowDecoder } from "./core.js"

export interface Params {
  readonly limit: number
  /** µs */
  readonly window: number
}

export interface State {
  readonly previous: number
  readonly current: number
  /** µs: start of the current window */
  readonly start: number
}

/** The same step as a Redis script, over the key's `"previous current start"` string. */
const script = (limit: number, window: number): string =>
  `${scriptHead}local limit, window = ${limit}, ${window}
local previous, current, start, stored = 0, 0, nil, nil
local s = redis.call("GET", key)
if s then
  local a = string.find(s, " ", 1, true)
  local b = string.find(s, " ", a + 1, true)
  stored = tonumber(string.sub(s, b + 1))
  if now < stored + window then
    previous = tonumber(string.sub(s, 1, a - 1))
    current = tonumber(string.sub(s, a + 1, b - 1))
    start = stored
  elseif now < stored + window + window then
    previous = tonumber(string.sub(s, a + 1, b - 1))
  end
end
if not start then start = math.floor(now / window) * window end
local elapsed = now - start
local weighted = previous * (window - elapsed)
local retry = 0
if cost > limit then
  retry = -1
elseif weighted + (current + cost) * window <= limit * window then
  current = current + cost
  local old = nil
  if stored then old = stored + window + window end
${scriptPut(`string.format("%d %d %d", previous, current, start)`, "old", "start + window + window")}else
  local room = limit - cost - current
  if room >= 0 then
    retry = window - elapsed - math.floor(room * window / previous)
  else
    retry = window - elapsed + window - math.floor((limit - cost) * window / current)
  end
end
local remaining = limit - current - math.ceil(weighted / window)
if remaining < 0 then remaining = 0 end
local reset = 0
if current > 0 then reset = window + window - elapsed elseif previous > 0 then reset = window - elapsed end
return { remaining, reset, retry }
`

export const make = (params: Params): Definition<State> => {
  const { limit, window } = params
  const step = (state: State | undefined, now: number, cost: number): StepResult<State> => {
    let previous = 0
    let current = 0
    let start: number
    if (state !== undefined && now < state.start + window) {
      previous = state.previous
      current = state.current
      start = state.start
    } else {
      if (state !== undefined && now < state.start + window + window) previous = state.current
      start = Math.floor(now / window) * window
    }
    const elapsed = now - start
    const weighted = previous * (window - elapsed)
    let retry = 0
    let next = state
    if (cost > limit) retry = -1
    else if (weighted + (current + cost) * window <= limit * window) {
      current = current + cost
      next = { previous, current, start }
    } else {
      const room = limit - cost - current
      retry = room >= 0
        ? window - elapsed - Math.floor(room * window / previous)
        : window - elapsed + window - Math.floor((limit - cost) * window / current)
    }
    const remaining = limit - current - Math.ceil(weighted / window)
    const reset = current > 0 ? window + window - elapsed : previous > 0 ? window - elapsed : 0
    return {
      reply: [remaining > 0 ? remaining : 0, reset, retry],
      state: next,
      until: next === undefined ? now : next.start + window + window
    }
  }
  return {
    kind: "SlidingCounter",
    id: `SlidingCounter ${limit} ${window}`,
    capacity: limit,
    limit,
    step,
    reuse: (stored, next) => {
      const s = stored as { previous: number; current: number; start: number }
      s.previous = next.previous
      s.current = next.current
      s.start = next.start
      return s
    },
    share: (n) => make({ limit: Math.ceil(limit / n), window }),
    decode: windowDecoder(limit, false),
    script: script(limit, window)
  }
}
