/**
 * The responses the server's stages answer with themselves, counted in
 * `resilience_http_rejected_total{name,reason}`.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Duration from "effect/Duration"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as http from "../http.js"

const rejectedTotal = Metric.counter("resilience_http_rejected_total", {
  description: "HTTP requests the resilient middleware answered itself, by reason",
  incremental: true
})

const noTags: ReadonlyArray<never> = []

/** Builds the JSON rejection response (see `RejectionBody`) with `Retry-After` when known. */
export const response = (
  code: http.RejectionCode,
  status: number,
  message: string,
  route: string,
  retryAfter: Option.Option<Duration.Duration>,
  headers: Record<string, string> = {}
): HttpServerResponse.HttpServerResponse => {
  const body = http.rejectionBody(code, status, message, route, retryAfter)
  const all: Record<string, string> = { "cache-control": "no-store", ...headers }
  if (Option.isSome(retryAfter)) all["retry-after"] = String(http.ceilSeconds(retryAfter.value))
  return HttpServerResponse.unsafeJson(body, { status, headers: all as any })
}

/** A rejecter for the server `name`: builds the response and counts it, in one synchronous step. */
export type Rejecter = (
  code: http.RejectionCode,
  status: number,
  message: string,
  route: string,
  retryAfter: Option.Option<Duration.Duration>,
  headers?: Record<string, string>
) => HttpServerResponse.HttpServerResponse

/** The rejecter of the server `name`. */
export const rejecter = (name: string): Rejecter => {
  const counters = new Map<string, Metric.Metric.Counter<number>>()
  return (code, status, message, route, retryAfter, headers) => {
    let counter = counters.get(code)
    if (counter === undefined) {
      counter = Metric.tagged(Metric.tagged(rejectedTotal, "name", name), "reason", code)
      counters.set(code, counter)
    }
    counter.unsafeUpdate(1, noTags)
    return response(code, status, message, route, retryAfter, headers)
  }
}
