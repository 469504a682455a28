/**
 * What the resilient HTTP client's retry loop sees of a failed attempt: a retryable response
 * (5xx or 429) as an error value, and which failures may be tried again.
 */
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import { TimeoutError } from "../../Errors.js"

/** `ResilientHttpClient.RetryableResponse`, documented there. */
export class RetryableResponse extends Data.TaggedError("RetryableResponse")<{
  readonly response: HttpClientResponse.HttpClientResponse
  readonly retryAfter: Duration.Duration | undefined
}> {}

const isTransportError = (u: unknown): boolean =>
  Predicate.hasProperty(u, "_tag") && u._tag === "RequestError" &&
  Predicate.hasProperty(u, "reason") && u.reason === "Transport"

/** Whether a failure of one attempt may be retried. */
export const isRetryable = (u: unknown): boolean =>
  u instanceof RetryableResponse || u instanceof TimeoutError || isTransportError(u)

/** A failure as the retry log line names it. */
export const describe = (e: unknown): string =>
  e instanceof RetryableResponse
    ? `status ${e.response.status}`
    : Predicate.hasProperty(e, "_tag") && typeof e._tag === "string"
    ? e._tag
    : "error"
