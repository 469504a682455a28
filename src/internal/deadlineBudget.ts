/**
 * The client half of deadline propagation: each attempt carries what is left of its deadline,
 * less a margin, in a header; an attempt whose budget is spent is not sent.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TimeoutError } from "../Errors.js"
import { currentDeadline } from "./deadline.js"
import * as Header from "./deadlineHeader.js"

export interface Settings {
  readonly header?: string | undefined
  readonly format?: Header.Format | undefined
  readonly margin?: Duration.Duration | undefined
}

type Postprocess = (
  request: Effect.Effect<HttpClientRequest.HttpClientRequest, any, any>
) => Effect.Effect<HttpClientResponse.HttpClientResponse, any, any>

export interface Budget {
  /** sends `request` with the budget of the current deadline in the header (as is without one) */
  readonly send: <E, R>(
    send: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>,
    request: HttpClientRequest.HttpClientRequest
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>
  /** fails with `TimeoutError` at once when the current deadline leaves no more than the margin */
  readonly check: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  /** millis of the deadline kept back for the trip to the server */
  readonly margin: number
}

export const make = (client: HttpClient.HttpClient.With<any, any>, operation: string, settings: Settings): Budget => {
  const header = (settings.header ?? "x-request-timeout").toLowerCase()
  const fmt = settings.format ?? "millis"
  const margin = settings.margin === undefined ? 5 : Duration.toMillis(settings.margin)
  // the request as the wrapped client prepared it (base URL, default headers) is sent again
  // through the client's response side with the header added; `transform` hands over the prepared
  // request and the effect that sends it, and this is the one way to send a changed request once
  const postprocess = (client as unknown as { readonly postprocess?: Postprocess }).postprocess
  return {
    margin,
    send: (send, request) =>
      postprocess === undefined ? send : Effect.withFiberRuntime((fiber) => {
        const deadline = fiber.getFiberRef(currentDeadline)
        if (deadline === Infinity) return send
        return Effect.clockWith((clock) => {
          const left = deadline - clock.unsafeCurrentTimeMillis() - margin
          return postprocess(Effect.succeed(HttpClientRequest.setHeader(request, header, Header.format(left, fmt))))
        })
      }),
    check: <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.withFiberRuntime<A, E | TimeoutError, R>((fiber) => {
        const deadline = fiber.getFiberRef(currentDeadline)
        if (deadline === Infinity) return self
        return Effect.clockWith((clock): Effect.Effect<A, E | TimeoutError, R> => {
          const left = deadline - clock.unsafeCurrentTimeMillis()
          return left > margin ? self : Effect.fail(
            new TimeoutError({ duration: Duration.millis(Math.max(0, left)), operation, reason: "deadline" })
          )
        })
      })
  }
}
