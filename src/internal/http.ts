/**
 * Pure helpers of the HTTP layer: route patterns, rate-limit headers, rejection bodies, status
 * classification and HTTP date / Retry-After parsing.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { parseRetryAfterHeader } from "./transient.js"

/** A compiled `"METHOD /path/:param/*"` route pattern. */
export interface RoutePattern {
  readonly name: string
  readonly method: string
  readonly test: (method: string, path: string) => boolean
}

const escapeRegExp = (s: string): string => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")

/**
 * Compiles a route key such as `"GET /users/:id"`, `"* /admin/*"` or `"/health"` (any method).
 * `:name` matches one path segment, a trailing `*` matches the rest of the path.
 */
export const compileRoute = (name: string): RoutePattern | string => {
  const trimmed = name.trim()
  const space = trimmed.indexOf(" ")
  const method = space === -1 ? "*" : trimmed.slice(0, space).toUpperCase()
  const path = space === -1 ? trimmed : trimmed.slice(space + 1).trim()
  if (!path.startsWith("/")) return `expected "METHOD /path", got ${JSON.stringify(name)}`
  if (method !== "*" && !/^[A-Z]+$/.test(method)) return `invalid method in ${JSON.stringify(name)}`
  const source = path
    .split("/")
    .map((segment, i, all) => {
      if (segment === "*" && i === all.length - 1) return ".*"
      if (segment.startsWith(":")) return "[^/]+"
      return escapeRegExp(segment)
    })
    .join("/")
  const regexp = new RegExp(`^${source}/?$`)
  return {
    name: method === "*" && space === -1 ? `* ${path}` : `${method} ${path}`,
    method,
    test: (m, p) => (method === "*" || method === m) && regexp.test(p)
  }
}

/** The path of a request URL without its query string. */
export const pathOf = (url: string): string => {
  const q = url.indexOf("?")
  const h = url.indexOf("#")
  const end = q === -1 ? (h === -1 ? url.length : h) : h === -1 ? q : Math.min(q, h)
  let path = url.slice(0, end)
  if (!path.startsWith("/")) {
    // absolute-form request target
    try {
      path = new URL(path).pathname
    } catch {
      path = "/"
    }
  }
  return path.length === 0 ? "/" : path
}

/** Whole seconds, rounded up, never negative: the unit of `Retry-After` and `RateLimit-Reset`. */
export const ceilSeconds = (d: Duration.Duration): number => Math.max(0, Math.ceil(Duration.toMillis(d) / 1000))

/** The codes of the JSON rejection body. */
export type RejectionCode =
  | "max_connections"
  | "circuit_open"
  | "overloaded"
  | "rate_limited"
  | "timeout"
  | "upstream_timeout"
  | "limiter_unavailable"
  | "deadline_exceeded"
  | "bulkhead_full"

/** The JSON body of every rejection the middleware writes. */
export interface RejectionBody {
  readonly error: {
    readonly code: RejectionCode
    readonly status: number
    readonly message: string
    readonly route: string
    readonly retryAfterSeconds?: number
  }
}

export const rejectionBody = (
  code: RejectionCode,
  status: number,
  message: string,
  route: string,
  retryAfter: Option.Option<Duration.Duration>
): RejectionBody => ({
  error: Option.isSome(retryAfter)
    ? { code, status, message, route, retryAfterSeconds: ceilSeconds(retryAfter.value) }
    : { code, status, message, route }
})

/** `RateLimit-*` headers (IETF draft "RateLimit header fields for HTTP", integer form). */
export const rateLimitHeaders = (
  decision: { readonly limit: number; readonly remaining: number; readonly resetAfter: Duration.Duration }
): Record<string, string> =>
  rateLimitHeadersOf(decision.limit, decision.remaining, Duration.toMillis(decision.resetAfter))

const smallInts: Array<string> = []

/** The decimal text of a whole number; small ones (header values, mostly) are made once. */
export const intText = (n: number): string => {
  if (n >= 0 && n < 1024 && Number.isInteger(n)) return smallInts[n] ??= String(n)
  return String(n)
}

/** `RateLimit-*` headers from a decision's numbers (`resetAfterMillis` until the key is full again). */
export const rateLimitHeadersOf = (
  limit: number,
  remaining: number,
  resetAfterMillis: number
): Record<string, string> => ({
  "ratelimit-limit": intText(limit),
  "ratelimit-remaining": intText(Math.max(0, Math.floor(remaining))),
  "ratelimit-reset": intText(Math.max(0, Math.ceil(resetAfterMillis / 1000)))
})

/**
 * Parses a `Retry-After` header: delay-seconds or an HTTP date (relative to `nowMillis`).
 */
export const parseRetryAfter = (value: string | undefined, nowMillis: number): Option.Option<Duration.Duration> => {
  if (value === undefined) return Option.none()
  const millis = parseRetryAfterHeader(value, nowMillis)
  return millis === undefined ? Option.none() : Option.some(Duration.millis(millis))
}

/** Methods that are safe to send twice (RFC 9110 §9.2.2). */
export const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])

/** What a rejection response made from an error says, so a server can add its route to it. */
export interface RejectionSpec {
  readonly code: RejectionCode
  readonly status: number
  readonly message: string
  readonly retryAfter: Option.Option<Duration.Duration>
  readonly headers: Record<string, string>
}

/** Responses made from the toolkit's errors (identity markers only). */
const fromErrors = new WeakMap<HttpServerResponse.HttpServerResponse, RejectionSpec>()

/**
 * The JSON rejection response of an error that escaped a handler (`route` is empty until a
 * `ResilientHttpServer` fills it in).
 */
export const errorResponse = (spec: RejectionSpec): HttpServerResponse.HttpServerResponse => {
  const headers: Record<string, string> = { "cache-control": "no-store", ...spec.headers }
  if (Option.isSome(spec.retryAfter)) headers["retry-after"] = String(ceilSeconds(spec.retryAfter.value))
  const response = HttpServerResponse.unsafeJson(
    rejectionBody(spec.code, spec.status, spec.message, "", spec.retryAfter),
    { status: spec.status, headers: headers as any }
  )
  fromErrors.set(response, spec)
  return response
}

/** The spec of a response made by `errorResponse`, if it is one. */
export const errorResponseSpec = (response: HttpServerResponse.HttpServerResponse): RejectionSpec | undefined =>
  fromErrors.get(response)

/** The response of a `TimeoutError` a handler failed with: `504 upstream_timeout`. */
export const upstreamTimeoutResponse = (message: string): HttpServerResponse.HttpServerResponse =>
  errorResponse({ code: "upstream_timeout", status: 504, message, retryAfter: Option.none(), headers: {} })

/** The message of a response made by `upstreamTimeoutResponse`, if it is one. */
export const upstreamTimeoutMessage = (response: HttpServerResponse.HttpServerResponse): string | undefined => {
  const spec = fromErrors.get(response)
  return spec !== undefined && spec.code === "upstream_timeout" ? spec.message : undefined
}

const grpcUnits: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }

/**
 * A caller's time budget in millis from a header value: plain milliseconds (`"250"`), or gRPC's
 * `grpc-timeout` form — at most 8 digits and a unit (`"250m"`, `"2S"`, `"1H"`; `u` and `n` for
 * micro- and nanoseconds). `undefined` when the value is neither.
 */
export const parseBudget = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const match = /^\s*(\d{1,8})([HMSmun]?)\s*$/.exec(value)
  if (match === null) return undefined
  const amount = Number(match[1])
  return match[2] === "" ? amount : amount * grpcUnits[match[2]]
}
