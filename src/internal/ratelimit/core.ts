/**
 * The shape every rate-limit algorithm shares: one pure step function over plain state and the
 * Lua script that performs the same step inside Redis.
 *
 * A step reads the state of one key (or `undefined` when the key is new or expired), the time in
 * milliseconds, the algorithm's parameters, the cost of the request and how long the caller is
 * willing to wait for a reservation (`maxDelayMs`, 0 for a plain take). It returns the decision,
 * the new state and how long that state matters (`expireAfterMs`): after that many milliseconds
 * of silence the state is indistinguishable from a fresh key, so a store may forget it. The
 * expiry is never below 1 ms (an expiry of 0 would make Redis reject the script).
 *
 * A negative cost returns capacity (the cancel of a reservation). A cost above the algorithm's
 * capacity can never be admitted: the step denies it with `retryAfterMs = Infinity`.
 *
 * The scripts mirror the TypeScript line by line (same operations in the same order, numbers
 * carried as `%.17g` strings), so the memory store and the Redis store take the same decisions
 * on the same sequence; the integration tests check this.
 */

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
}

/** What one step returns. */
export interface StepResult<S> {
  readonly decision: RawDecision
  readonly state: S
  readonly expireAfterMs: number
}

/** A pure step function. */
export type Step<S, P> = (
  state: S | undefined,
  now: number,
  params: P,
  cost: number,
  maxDelayMs: number
) => StepResult<S>

/** Tolerance for floating-point comparisons (tokens, milliseconds). The scripts use the same value. */
export const EPS = 1e-9

/** An expiry in whole milliseconds, never below 1. */
export const expiry = (ms: number): number => {
  const c = Math.ceil(ms)
  return c >= 1 ? c : 1
}

/** The kinds of algorithm. */
export type Kind = "TokenBucket" | "FixedWindow" | "SlidingLog" | "SlidingCounter" | "Gcra"

/** An algorithm with its parameters, as the stores see it. */
export interface Definition<S = any, P = any> {
  readonly kind: Kind
  readonly params: P
  /** the most a single request may cost; above this a request can never be admitted */
  readonly capacity: number
  /** the `limit` reported in decisions */
  readonly limit: number
  /** whether a request may take capacity ahead of time and wait (token bucket, GCRA) */
  readonly reservable: boolean
  readonly step: Step<S, P>
  /** the Lua source of the same step */
  readonly script: string
  /** the parameters as script arguments (ARGV[4] onwards) */
  readonly scriptArgs: ReadonlyArray<string>
}

/** Formats a number so that it reads back as the same double, in JavaScript and in Lua. */
export const num = (n: number): string => n === Infinity ? "1e308" : n === -Infinity ? "-1e308" : String(n)

/**
 * The head every script shares. ARGV[1] is the time in milliseconds, or "" to read Redis `TIME`
 * (the normal case: every instance shares the server's clock); ARGV[2] the cost; ARGV[3] the most
 * a reservation may wait. `fmt` keeps fractional numbers exact across the reply.
 */
export const scriptHead = `local key = KEYS[1]
local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local cost = tonumber(ARGV[2])
local maxDelay = tonumber(ARGV[3])
local EPS = 1e-9
local function fmt(x)
  if x == 0 then return "0" end
  return string.format("%.17g", x)
end
local function expiry(ms)
  local c = math.ceil(ms)
  if c < 1 then c = 1 end
  return string.format("%.0f", c)
end
`
/*
 * Every script replies { allowed (0|1), remaining (an integer), retryAfter (-1 = never), resetAfter, delay,
 * code (0 none, 1 Allowed, 2 HitQuota, 3 OverQuota) }, fractional numbers as strings. State that needs several
 * numbers is one string of space-separated `%.17g` numbers, written with SET ... PX: one key, one write.
 */

const codes: ReadonlyArray<PeriodCode | undefined> = [undefined, "Allowed", "HitQuota", "OverQuota"]

/** Reads a script reply back into a decision. */
export const fromReply = (reply: unknown, limit: number): RawDecision => {
  const r = reply as ReadonlyArray<unknown>
  const retry = Number(r[2])
  return {
    allowed: Number(r[0]) === 1,
    limit,
    remaining: Number(r[1]),
    retryAfterMs: retry < 0 ? Infinity : retry,
    resetAfterMs: Number(r[3]),
    delayMs: Number(r[4]),
    code: codes[Number(r[5])]
  }
}

/**
 * What a step returns: the decision, the new state, and as expiry the time until the key is back
 * to full capacity (`resetAfterMs`), in whole milliseconds and never below 1. A request that can
 * never be admitted (cost above capacity) is denied with `retryAfterMs = Infinity`.
 */
export const result = <S>(
  state: S,
  allowed: boolean,
  limit: number,
  remaining: number,
  retryAfterMs: number,
  resetAfterMs: number,
  delayMs: number,
  code: PeriodCode | undefined
): StepResult<S> => ({
  decision: { allowed, limit, remaining, retryAfterMs, resetAfterMs, delayMs, code },
  state,
  expireAfterMs: expiry(resetAfterMs)
})
