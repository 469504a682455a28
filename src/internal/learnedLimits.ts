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
import { parseRetryAfterHeader } from "./transient.js"

export interface HostLimit {
  /** requests the server still accepts before `resetAt` */
  remaining: number
  /** epoch millis when the quota is whole again */
  resetAt: number
  /** the server's limit, when it said (NaN otherwise) */
  limit: number
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
    return { remaining: 0, resetAt: now + retryAfter, limit: Number.NaN }
  }
  const s = structured(headers["ratelimit"])
  const remaining = s.remaining ?? number(headers["ratelimit-remaining"]) ?? number(headers["x-ratelimit-remaining"])
  const reset = s.reset ?? number(headers["ratelimit-reset"]) ?? number(headers["x-ratelimit-reset"])
  const limit = s.limit ?? number(headers["ratelimit-limit"]) ?? number(headers["x-ratelimit-limit"]) ?? Number.NaN
  if (remaining !== undefined && reset !== undefined) {
    return { remaining: status === 429 ? 0 : Math.floor(remaining), resetAt: now + resetMillis(reset, now), limit }
  }
  return status === 429 ? { remaining: 0, resetAt: now + blockMillis, limit } : undefined
}

/** The learned limits of every host, at most `maxHosts` (the oldest entry goes first). */
export class LearnedLimits {
  readonly hosts = new Map<string, HostLimit>()
  constructor(readonly maxHosts: number, readonly blockMillis: number) {}

  /** 0 when a request to `host` may go now (and takes one from its quota), else millis to wait. */
  admit(host: string, now: number): number {
    const h = this.hosts.get(host)
    if (h === undefined) return 0
    if (now >= h.resetAt) {
      this.hosts.delete(host)
      return 0
    }
    if (h.remaining > 0) {
      h.remaining--
      return 0
    }
    return h.resetAt - now
  }

  /** Learns from a response of `host`. */
  learn(host: string, status: number, headers: Headers, now: number): void {
    const learned = read(status, headers, now, this.blockMillis)
    if (learned === undefined) return
    if (!this.hosts.has(host) && this.hosts.size >= this.maxHosts) {
      this.hosts.delete(this.hosts.keys().next().value!)
    }
    this.hosts.set(host, learned)
  }
}
