/**
 * The shape every rate-limit algorithm shares: one pure step function over plain state and the
 * Lua script that performs the same step inside Redis.
 *
 * Everything is integer arithmetic in microseconds: the clock, the interval between tokens
 * (rounded up to a whole microsecond, so a limit is never more permissive than asked), windows
 * and waits. Integers below 2^53 are exact in JavaScript and in Lua alike, so the TypeScript step
 * and the script take the same decisions on the same sequence of calls — the integration tests run
 * both side by side and compare every reply.
 *
 * A step reads the state of one key (`undefined` when the key is new or expired), the time, the
 * cost of the request and how long the caller is willing to wait for a reservation (`maxDelay`, 0
 * for a plain take). It returns the script's reply, the state to keep (the same object when nothing
 * changed: a refused request writes nothing) and `until`, the time after which the state is
 * indistinguishable from a fresh key's, so a store may forget it.
 */
import * as Duration from "effect/Duration"

/** go-zero's period codes: `Allowed` below the quota, `HitQuota` for the last admitted request, `OverQuota` above. */
export type PeriodCode = "Allowed" | "HitQuota" | "OverQuota"

/** A decision in plain numbers (milliseconds). */
export interface RawDecision {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  /** when denied: how long until the same request would be admitted (if nobody else takes); Infinity never */
  readonly retryAfterMs: number
  /** how long until the key is back to its full capacity */
  readonly resetAfterMs: number
  /** for an admitted reservation: how long the caller must wait before acting (0 for a plain take) */
  readonly delayMs: number
  /** the period code (fixed window only) */
  readonly code: PeriodCode | undefined
  /** for an admitted reservation: when it may act, on the store's clock (µs); what `cancel` needs */
  readonly timeToAct?: number | undefined
}

export const toDuration = (millis: number): Duration.Duration =>
  millis === Infinity ? Duration.infinity : millis > 0 ? Duration.millis(millis) : Duration.zero

/**
 * A decision as the built-in stores make it: the raw numbers, and the public `Decision` view of
 * them (durations built only when read: most callers look at `allowed` alone), in one object.
 */
export class Verdict implements RawDecision {
  constructor(
    readonly allowed: boolean,
    readonly limit: number,
    readonly remaining: number,
    readonly retryAfterMs: number,
    readonly resetAfterMs: number,
    readonly delayMs: number,
    readonly code: PeriodCode | undefined,
    readonly timeToAct: number | undefined
  ) {}
  get retryAfter(): Duration.Duration {
    return toDuration(this.retryAfterMs)
  }
  get resetAfter(): Duration.Duration {
    return toDuration(this.resetAfterMs)
  }
  toJSON() {
    return {
      allowed: this.allowed,
      limit: this.limit,
      remaining: this.remaining,
      retryAfter: this.retryAfter.toJSON(),
      resetAfter: this.resetAfter.toJSON(),
      ...(this.code === undefined ? {} : { code: this.code })
    }
  }
}

/**
 * What a script returns, and what the TypeScript step returns too. Token bucket and GCRA: one
 * integer (the lead, see `bucketDecoder`), or `[lead, now]` for a reservation. The window
 * algorithms: `[remaining, resetAfter, retryAfter]` with `retryAfter` 0 when admitted.
 */
export type Reply = number | ReadonlyArray<number>

/** What one step returns. */
export interface StepResult<S> {
  readonly reply: Reply
  /** the state to keep; `undefined` only when the key had none and still has none */
  readonly state: S | undefined
  /** µs; from then on the state is as good as absent */
  readonly until: number
}

/** The kinds of algorithm. */
export type Kind = "TokenBucket" | "FixedWindow" | "SlidingLog" | "SlidingCounter" | "Gcra"

/** An algorithm with its parameters, as the stores see it. */
export interface Definition<S = any> {
  readonly kind: Kind
  /** the kind and its integer parameters: equal ids behave identically */
  readonly id: string
  /** the most a single request may cost; above this a request can never be admitted */
  readonly capacity: number
  /** the `limit` reported in decisions */
  readonly limit: number
  readonly step: (state: S | undefined, now: number, cost: number, maxDelay: number) => StepResult<S>
  /**
   * Gives back a reservation of `cost` that may act at `timeToAct` (token bucket and GCRA): what
   * was reserved minus what reservations made after it count on, nothing once `timeToAct` passed.
   */
  readonly cancel?: ((state: S | undefined, now: number, cost: number, timeToAct: number) => StepResult<S>) | undefined
  readonly decode: (reply: Reply, cost: number) => RawDecision
  /**
   * Copies `next` into `stored` (a state the memory table owns, never handed out) and returns it:
   * long-lived state objects are overwritten in place rather than replaced, which spares the
   * garbage collector (see `memory.ts`). Absent: states are replaced.
   */
  readonly reuse?: ((stored: S, next: S) => S) | undefined
  /** the same algorithm with an `n`-th of the capacity and rate (rounded up): one instance's share */
  readonly share: (n: number) => Definition<S>
  /** the Lua source of the same step, parameters included */
  readonly script: string
}

/** µs per ms */
export const US = 1000

/** The granularity of Redis key expiries, µs: see `scriptPut`. */
export const EXPIRY_CELL = 1_000_000

/** The largest time span an algorithm may cover, µs (about 31 years): keeps every sum below 2^53. */
export const MAX_SPAN = 1e15

/** Lua: `now` (µs) from Redis `TIME` when the caller passed no time. */
export const nowFromRedisTime = `if not now then
  local t = redis.call("TIME")
  now = t[1] * 1000000 + t[2]
end
`

/**
 * Lua for the scripts of several limits or a read: the cost in ARGV[1] and the time in µs in
 * ARGV[2] (empty for Redis `TIME`); no waiting (`maxDelay` 0).
 */
export const costAndNowHead = `local cost, maxDelay, now = tonumber(ARGV[1]), 0, nil
local a2 = ARGV[2]
if a2 and a2 ~= "" then now = tonumber(a2) end
${nowFromRedisTime}`

/**
 * The head every script shares. With no arguments it takes one unit now (the hot path sends only
 * the key). ARGV[1] is the cost, ARGV[2] the most a reservation may wait (µs), ARGV[3] the time in
 * µs or "" to read Redis `TIME` (the normal case: every instance shares the server's clock),
 * ARGV[4] (token bucket and GCRA) the time to act of a reservation to cancel.
 */
export const scriptHead = `local key = KEYS[1]
local cost, maxDelay, now = 1, 0, nil
local a1 = ARGV[1]
if a1 then
  cost = tonumber(a1)
  maxDelay = tonumber(ARGV[2])
  local a3 = ARGV[3]
  if a3 and a3 ~= "" then now = tonumber(a3) end
end
${nowFromRedisTime}`

/**
 * Lua that writes the key's value `v` so that it expires no earlier than `new` (µs). Expiries are
 * kept on a one-second grid: the key expires at the end of the cell holding its `until`, so a
 * write whose `until` stays within the cell of the stored one keeps the expiry (`KEEPTTL`) instead
 * of setting it again, which costs Redis about as much as the rest of the script. `old` is the
 * stored state's `until` (nil for a new key); the invariant is expiry ≥ end of cell(stored until).
 * Inlined rather than a Lua function: a closure per call costs more than the code it saves.
 */
export const scriptPut = (v: string, old: string, until: string): string =>
  `local cell = math.floor((${until}) / ${EXPIRY_CELL})
if ${old} and cell <= math.floor((${old}) / ${EXPIRY_CELL}) then
  redis.call("SET", key, ${v}, "KEEPTTL")
else
  redis.call("SET", key, ${v}, "PXAT", (cell + 1) * ${EXPIRY_CELL / US})
end
`

/** ms to µs for a wait bound, whole µs, keeping "no limit" as Infinity */
export const toMicros = (ms: number): number => ms === Infinity ? Infinity : Math.floor(ms * US)

/** Formats a number as a script argument (integers in full; infinities as the largest double). */
export const num = (n: number): string => n === Infinity ? "1e308" : n === -Infinity ? "-1e308" : String(n)

/** An interval in whole µs from a duration in ms, rounded up, never below 1. */
export const intervalUs = (ms: number): number => {
  const us = Math.ceil(ms * US - 1e-6)
  return us >= 1 ? us : 1
}

/**
 * Reads a window algorithm's reply `[remaining, resetAfter, retryAfter]` (µs; `retryAfter` 0 when
 * admitted, -1 when the cost can never be admitted). The fixed window adds go-zero's codes.
 */
export const windowDecoder = (limit: number, codes: boolean) => (reply: Reply): RawDecision => {
  const r = reply as ReadonlyArray<number>
  const remaining = Number(r[0])
  const reset = Number(r[1])
  const retry = Number(r[2])
  if (retry === 0) {
    const code = codes ? (remaining > 0 ? "Allowed" : "HitQuota") : undefined
    return new Verdict(true, limit, remaining, 0, reset / US, 0, code, undefined)
  }
  const retryAfter = retry < 0 ? Infinity : retry / US
  return new Verdict(false, limit, remaining, retryAfter, reset / US, 0, codes ? "OverQuota" : undefined, undefined)
}

/**
 * Reads a token bucket's or GCRA's reply. Both keep a virtual time `full` (when the bucket is full
 * again); `interval` µs per token, `tau = interval · burst`. Admitted: the reply is the lead
 * `full − now` after the request (≥ 0), or `[lead, now]` for a reservation; the caller may act once
 * the lead is back within `tau`. Refused: the reply is `−wait` (≤ −1), the time until the request
 * would fit; the lead before it is `wait + tau − cost · interval`.
 */
export const bucketDecoder =
  (interval: number, tau: number, burst: number) => (reply: Reply, cost: number): RawDecision => {
    let lead: number
    let now: number | undefined
    if (typeof reply === "number") lead = reply
    else {
      lead = Number(reply[0])
      now = Number(reply[1])
    }
    if (lead >= 0) {
      const delay = lead > tau ? lead - tau : 0
      const remaining = Math.floor((tau - lead) / interval)
      return new Verdict(
        true,
        burst,
        remaining > 0 ? remaining : 0,
        0,
        lead / US,
        delay / US,
        undefined,
        now === undefined ? undefined : now + delay
      )
    }
    const wait = -lead
    const before = wait + tau - cost * interval
    const remaining = Math.floor((tau - before) / interval)
    return new Verdict(
      false,
      burst,
      remaining > 0 ? remaining : 0,
      cost > burst ? Infinity : wait / US,
      before > 0 ? before / US : 0,
      0,
      undefined,
      undefined
    )
  }

/**
 * The reservation cancel shared by the token bucket and GCRA, on the virtual time `full` (the
 * caller has already brought it to `now`). x/time/rate gives back the reserved tokens minus those
 * that reservations made after it count on: the latest reservation acts at `full − tau` (the
 * `lastEvent` of x/time/rate), so `cost · interval − (full − tau − timeToAct)` µs of tokens come
 * back, and the bucket never goes above full. Returns the new `full`, or `undefined` when there is
 * nothing to give back.
 */
export const cancelled = (
  storedFull: number,
  advancedFull: number,
  now: number,
  cost: number,
  timeToAct: number,
  interval: number,
  tau: number
): number | undefined => {
  if (timeToAct < now) return undefined
  const latest = storedFull - tau
  const restore = cost * interval - (latest > timeToAct ? latest - timeToAct : 0)
  if (restore <= 0) return undefined
  const full = advancedFull - restore
  return full > now ? full : now
}

/** The Lua of `cancelled`, reading `stored`, `full`, `tta` and the constants `interval`, `tau`. */
export const scriptCancel = `local latest = stored - tau
local restore = cost * interval
if latest > tta then restore = restore - (latest - tta) end
if tta < now or restore <= 0 then return 0 end
full = full - restore
if full < now then full = now end
`
