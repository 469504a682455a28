/**
 * Per-host limits learned from what servers say: `429` and `Retry-After`, and the rate-limit
 * headers — IETF's `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` (delta seconds),
 * the structured `RateLimit: limit=100, remaining=0, reset=5` (also `r=0;t=5`), and the common
 * `X-RateLimit-*` (reset in delta seconds, or epoch seconds as GitHub sends it).
 *
 * A host's entry is its remaining quota until a reset time. Each request admitted takes one from
 * it; each response that carries the headers replaces it with the server's numbers; once
 * `remaining` is 0 requests wait (or fail) until the reset. Past the reset the host is unknown
 * again, and requests go through until the server says otherwise.
 */
import { OrderedMap } from "./orderedMap.js"
import { parseRetryAfterHeader } from "./transient.js"

export interface HostLimit {
  /** requests the server still accepts before `resetAt` */
  remaining: number
  /** epoch millis when the quota is whole again */
  resetAt: number
  /** the server's limit, when it said (NaN otherwise) */
  limit: number
  /** epoch millis when the response that said so arrived */
  seen: number
  /** for figures another instance heard: which hearing they are (so one is taken on once) */
  origin?: string | undefined
}

type Headers = Readonly<Record<string, string | undefined>>

const EPOCH_SECONDS = 1_000_000_000

const number = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const n = Number(value.trim())
  return value.trim() !== "" && Number.isFinite(n) && n >= 0 ? n : undefined
}

/** `reset` in seconds: delta seconds, or epoch seconds when it is that large. */
const resetMillis = (seconds: number, now: number): number =>
  seconds >= EPOCH_SECONDS ? Math.max(0, seconds * 1000 - now) : seconds * 1000

/** The parameters of a structured `RateLimit` header (`limit=100, remaining=0, reset=5`, `r=0;t=5`). */
const structured = (value: string | undefined): { remaining?: number; reset?: number; limit?: number } => {
  if (value === undefined) return {}
  const out: { remaining?: number; reset?: number; limit?: number } = {}
  for (const part of value.split(/[;,]/)) {
    const [rawKey, rawValue] = part.split("=")
    const n = number(rawValue)
    if (n === undefined) continue
    const key = rawKey.trim().toLowerCase()
    if (key === "remaining" || key === "r") out.remaining = n
    else if (key === "reset" || key === "t") out.reset = n
    else if (key === "limit" || key === "l") out.limit = n
  }
  return out
}

/** What the response says of the host's quota, or `undefined` when it says nothing. */
export const read = (status: number, headers: Headers, now: number, blockMillis: number): HostLimit | undefined => {
  const retryAfterValue = headers["retry-after"]
  const retryAfter = retryAfterValue === undefined ? undefined : parseRetryAfterHeader(retryAfterValue, now)
  if ((status === 429 || status === 503) && retryAfter !== undefined) {
    return { remaining: 0, resetAt: now + retryAfter, limit: Number.NaN, seen: now }
  }
  const s = structured(headers["ratelimit"])
  const remaining = s.remaining ?? number(headers["ratelimit-remaining"]) ?? number(headers["x-ratelimit-remaining"])
  const reset = s.reset ?? number(headers["ratelimit-reset"]) ?? number(headers["x-ratelimit-reset"])
  const limit = s.limit ?? number(headers["ratelimit-limit"]) ?? number(headers["x-ratelimit-limit"]) ?? Number.NaN
  if (remaining !== undefined && reset !== undefined) {
    return {
      remaining: status === 429 ? 0 : Math.floor(remaining),
      resetAt: now + resetMillis(reset, now),
      limit,
      seen: now
    }
  }
  return status === 429 ? { remaining: 0, resetAt: now + blockMillis, limit, seen: now } : undefined
}

/**
 * The learned limits of every host, at most `maxHosts` (the oldest entry goes first).
 *
 * When instances share what they learn (`learnedLimitsShare.ts`), `share` is how many instances
 * draw on each host's quota: a host's remaining quota, as the server states it, is divided among
 * them, so together they send no more than the server still accepts.
 */
export class LearnedLimits {
  // the oldest host is read through a long-lived iterator: a fresh one per eviction would step
  // over every host deleted since V8 last rebuilt the table
  private readonly order = new OrderedMap<string, HostLimit>()
  /** Read only: changes go through `order`. */
  readonly hosts: ReadonlyMap<string, HostLimit> = this.order.map
  /** instances drawing on each host's quota (1: this one alone) */
  share = 1
  constructor(readonly maxHosts: number, readonly blockMillis: number) {}

  /** 0 when a request to `host` may go now (and takes one from its quota), else millis to wait. */
  admit(host: string, now: number): number {
    const h = this.hosts.get(host)
    if (h === undefined) return 0
    if (now >= h.resetAt) {
      this.order.delete(host)
      return 0
    }
    if (h.remaining > 0) {
      h.remaining--
      return 0
    }
    return h.resetAt - now
  }

  /** Learns from a response of `host`; returns what the server said (before sharing), if anything. */
  learn(host: string, status: number, headers: Headers, now: number): HostLimit | undefined {
    const learned = read(status, headers, now, this.blockMillis)
    if (learned === undefined) return undefined
    this.set(host, { ...learned, remaining: this.shareOf(learned.remaining) })
    return learned
  }

  /**
   * Takes on what another instance learned of `host` (the server's own figures), unless this
   * instance has heard from the server since. Returns whether it did.
   */
  adopt(host: string, observed: HostLimit, now: number): boolean {
    const h = this.hosts.get(host)
    if (observed.resetAt <= now) return false
    // the same hearing comes back every round, its time shifted by the round trip: taking it on
    // again would give back what this instance has spent of it since
    if (h !== undefined && (h.seen >= observed.seen || (h.origin !== undefined && h.origin === observed.origin))) {
      return false
    }
    this.set(host, { ...observed, remaining: this.shareOf(observed.remaining) })
    return true
  }

  private shareOf(remaining: number): number {
    return this.share > 1 ? Math.floor(remaining / this.share) : remaining
  }

  private set(host: string, limit: HostLimit): void {
    if (!this.hosts.has(host) && this.hosts.size >= this.maxHosts) this.order.delete(this.order.oldest()![0])
    this.order.set(host, limit)
  }
}
