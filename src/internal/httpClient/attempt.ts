/**
 * One attempt of the resilient HTTP client: learned host limit → deadline check → breaker →
 * bulkhead → timeout → send, with the response classified (5xx and 429 fail as
 * `RetryableResponse`) and the outcome reported to the host's breaker.
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as CircuitBreaker from "../../CircuitBreaker.js"
import type { Error } from "../../ResilientHttpClient.js"
import * as http from "../http.js"
import type { Guards } from "./options.js"
import { RetryableResponse } from "./retryable.js"

type Response = HttpClientResponse.HttpClientResponse

/**
 * The breaker's part in an attempt that ended with `exit`: 429 and local rejections (a full
 * bulkhead, an interrupted caller) count as neither, 5xx, other errors and defects as failures.
 */
const settle = (permit: CircuitBreaker.Permit, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) return permit.success
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure instanceof RetryableResponse) {
    return failure.response.status === 429 ? permit.ignore : permit.failure(failure)
  }
  if (Predicate.hasProperty(failure, "_tag") && failure._tag === "BulkheadFullError") return permit.ignore
  if (failure === undefined && !Exit.isInterrupted(exit)) return permit.failure(exit.cause)
  if (failure === undefined) return permit.ignore
  return permit.failure(failure)
}

/** A 5xx or 429 response fails as `RetryableResponse`, with its `Retry-After` read. */
const classify = (response: Response): Effect.Effect<Response, RetryableResponse> =>
  response.status >= 500 || response.status === 429
    ? Effect.clockWith((clock) =>
      Effect.fail(
        new RetryableResponse({
          response,
          retryAfter: Option.getOrUndefined(
            http.parseRetryAfter(response.headers["retry-after"], clock.unsafeCurrentTimeMillis())
          )
        })
      )
    )
    : Effect.succeed(response)

/** Runs `call` under the host's breaker, reporting its outcome. */
const withBreaker = <R>(
  registry: NonNullable<Guards["registry"]>,
  breakerName: string,
  call: Effect.Effect<Response, any, R>
): Effect.Effect<Response, any, R> =>
  Effect.flatMap(
    registry.get(breakerName),
    (breaker) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(breaker.allow, (permit) =>
          Effect.flatMap(Effect.exit(restore(call)), (exit) => Effect.zipRight(settle(permit, exit), exit)))
      )
  )

/** One attempt: breaker → bulkhead → timeout → send, classifying the response. */
export const attempt = <E1, R1>(
  guards: Guards,
  send: Effect.Effect<Response, E1, R1>,
  request: HttpClientRequest.HttpClientRequest,
  host: string
): Effect.Effect<Response, E1 | Error | RetryableResponse, R1> => {
  const { budget, bulkheadOf, gate, registry, timeout } = guards
  let call: Effect.Effect<Response, any, R1> = budget === undefined ? send : budget.send(send, request)
  if (timeout !== undefined) call = timeout(call)
  if (gate !== undefined) call = Effect.tap(call, (r) => gate.learn(host, r.status, r.headers))
  call = Effect.flatMap(call, classify)
  if (bulkheadOf !== undefined) {
    const inner = call
    call = Effect.flatMap(bulkheadOf(host), (bulkhead) => bulkhead.run(inner))
  }
  if (registry !== undefined) call = withBreaker(registry, `${guards.name} ${host}`, call)
  // a host's spent quota holds the attempt back before the breaker and the bulkhead
  if (gate !== undefined) {
    call = Effect.zipRight(gate.enter(host), call)
  }
  // a spent budget fails before the breaker and the bulkhead: nothing was sent
  return budget === undefined ? call : budget.check(call)
}
