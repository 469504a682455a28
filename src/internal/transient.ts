/**
 * Classification of failures for retry decisions: which errors are transient, and how long a
 * failure asks the caller to wait.
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import { hasRejectionTag } from "./rejection.js"

/** Node / undici error codes that mean the network, not the request, failed. */
const networkCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED"
])

const tagOf = (u: unknown): string | undefined =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" ? u._tag : undefined

/** A status code worth retrying: 5xx or 429. */
export const isTransientStatus = (status: number): boolean => status === 429 || (status >= 500 && status <= 599)

const statusOf = (u: unknown): number | undefined => {
  if (HttpClientError.isHttpClientError(u)) {
    return u._tag === "ResponseError" ? u.response.status : undefined
  }
  if (Predicate.hasProperty(u, "status") && typeof u.status === "number") return u.status
  if (Predicate.hasProperty(u, "statusCode") && typeof u.statusCode === "number") return u.statusCode
  return undefined
}

/** A Node system error (or an error caused by one, like undici's `fetch failed`) from the network. */
export const isNetworkError = (u: unknown, depth = 0): boolean => {
  if (depth > 4 || !Predicate.isObject(u)) return false
  if (Predicate.hasProperty(u, "code") && typeof u.code === "string" && networkCodes.has(u.code)) return true
  return Predicate.hasProperty(u, "cause") && isNetworkError(u.cause, depth + 1)
}

/** The decision behind `Retry.isTransient`; see its documentation for the rules. */
export const isTransient = (u: unknown): boolean => {
  const tag = tagOf(u)
  if (tag !== undefined) {
    switch (tag) {
      case "RetryableError":
      case "TimeoutError":
      case "TimeoutException":
        return true
      case "InvalidOptionsError":
        return false
      case "RequestError":
        return HttpClientError.isHttpClientError(u) ? u.reason === "Transport" : isNetworkError(u)
      case "ResponseError":
        if (HttpClientError.isHttpClientError(u) && u._tag === "ResponseError") {
          return isTransientStatus(u.response.status)
        }
        break
    }
    if (hasRejectionTag(u)) return retryAfterMillis(u) !== undefined
  }
  const status = statusOf(u)
  if (status !== undefined) return isTransientStatus(status)
  return isNetworkError(u)
}

/**
 * Parses an HTTP `Retry-After` header: delta seconds, or an HTTP date relative to `now` (Clock
 * millis; a date cannot be read without it).
 */
export const parseRetryAfterHeader = (value: string, now: number | undefined): number | undefined => {
  const trimmed = value.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000
  // an HTTP date names a day and a month; without letters `Date.parse` would take "-1" or "2026"
  if (now === undefined || !/[A-Za-z]/.test(trimmed)) return undefined
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * How long `u` asks the caller to wait, in millis: a `retryAfter` Duration on the error (every
 * rejection of this toolkit, `RetryableError`), or the `Retry-After` header of an HTTP response error.
 */
export const retryAfterMillis = (u: unknown, now?: number): number | undefined => {
  if (Predicate.hasProperty(u, "retryAfter") && Duration.isDuration(u.retryAfter)) {
    return Duration.toMillis(u.retryAfter)
  }
  if (HttpClientError.isHttpClientError(u) && u._tag === "ResponseError") {
    const header = u.response.headers["retry-after"]
    return typeof header === "string" ? parseRetryAfterHeader(header, now) : undefined
  }
  return undefined
}
