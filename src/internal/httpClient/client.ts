/**
 * `ResilientHttpClient.wrap`: the retry loop around each attempt, and the request-duration metric.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import type * as Scope from "effect/Scope"
import * as Backoff from "../../Backoff.js"
import type { InvalidOptionsError } from "../../Errors.js"
import type { Error, Options } from "../../ResilientHttpClient.js"
import * as Retry from "../../Retry.js"
import * as Timeout from "../../Timeout.js"
import * as http from "../http.js"
import { attempt } from "./attempt.js"
import { decode, type Decoded, type Guards, guards as guardsOf } from "./options.js"
import { describe, isRetryable, RetryableResponse } from "./retryable.js"

type Response = HttpClientResponse.HttpClientResponse

/** `ResilientHttpClient.requestDuration`, documented there. */
export const requestDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "resilience_http_client_request_duration_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  "requests through the resilient HTTP client, retries and backoff included, in seconds"
)

const defaultIdempotent = (request: HttpClientRequest.HttpClientRequest): boolean =>
  http.idempotentMethods.has(request.method) || request.headers["idempotency-key"] !== undefined

const hostOf = (url: string): string => {
  try {
    return new URL(url).host
  } catch {
    return "unknown"
  }
}

/**
 * Drains the abandoned 5xx/429 response as soon as `self` decides to retry, before the backoff
 * wait, so its connection goes back to the pool instead of being held through the delay. When
 * the schedule is done the response is left unread: it is returned to the caller.
 */
const drainBeforeWaiting = <Out, R>(self: Schedule.Schedule<Out, unknown, R>): Schedule.Schedule<Out, unknown, R> =>
  Schedule.makeWithState(
    self.initial,
    (now, input, state) =>
      Effect.tap(
        self.step(now, input, state),
        ([, , decision]) =>
          ScheduleDecision.isContinue(decision) && input instanceof RetryableResponse
            ? input.response.text.pipe(Effect.timeout("1 second"), Effect.ignore)
            : Effect.void
      )
  )

/** The retry policy of a client: which requests retry, on what schedule, after which failures. */
interface Retrying {
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly idempotent: (request: HttpClientRequest.HttpClientRequest) => boolean
  /** whether a failed attempt is worth another one */
  readonly mayRetry: (e: unknown) => Effect.Effect<boolean>
}

const retryingOf = (decoded: Decoded, options: Options, margin: number): Retrying | undefined => {
  const retryOptions = decoded.retry === false ? undefined : decoded.retry ?? {}
  const rawRetry = options.retry === false ? undefined : options.retry
  const times = retryOptions?.times ?? 3
  if (retryOptions === undefined || times === 0) return undefined
  const maxRetryAfter = Duration.toMillis(retryOptions.maxRetryAfter ?? Duration.seconds(30))
  const schedule: Schedule.Schedule<unknown, unknown> = drainBeforeWaiting(Backoff.respectRetryAfter(
    (rawRetry?.schedule ?? Backoff.exponential({ base: "100 millis", cap: "2 seconds", jitter: "full" })).pipe(
      Schedule.intersect(Schedule.recurs(times))
    )
  ))
  const mayRetry = (e: unknown): Effect.Effect<boolean> => {
    if (!isRetryable(e)) return Effect.succeed(false)
    const wait = e instanceof RetryableResponse && e.retryAfter !== undefined ? Duration.toMillis(e.retryAfter) : 0
    if (wait > maxRetryAfter) return Effect.succeed(false)
    // never wait past the caller's deadline, nor retry once it is spent: the attempt could not
    // be sent, and its instant timeout would count against the host's breaker
    return Effect.map(
      Timeout.remaining,
      Option.match({ onNone: () => true, onSome: (left) => Duration.toMillis(left) > wait + margin })
    )
  }
  return { schedule, idempotent: rawRetry?.idempotent ?? defaultIdempotent, mayRetry }
}

/** `once` again while the failure may be retried and the schedule goes on; the last outcome else. */
const retried = (
  once: Effect.Effect<Response, any, any>,
  retrying: Retrying,
  retries: Metric.Metric.Counter<number>,
  client: string,
  host: string
): Effect.Effect<Response, any, any> =>
  Effect.flatMap(Schedule.driver(retrying.schedule), (driver) => {
    const loop: Effect.Effect<Response, any, any> = Effect.catchAll(
      once,
      (e) =>
        Effect.flatMap(retrying.mayRetry(e), (retry) =>
          retry
            ? Effect.matchEffect(driver.next(e), {
              // the schedule is exhausted: surface the last outcome
              onFailure: () => Effect.fail(e),
              onSuccess: () =>
                Effect.zipRight(
                  Effect.zipRight(
                    Metric.increment(retries),
                    Effect.logDebug("retrying request").pipe(
                      Effect.annotateLogs({ client, host, error: describe(e) })
                    )
                  ),
                  loop
                )
            })
            : Effect.fail(e))
    )
    return loop
  })

const handler = (guards: Guards, retrying: Retrying | undefined) => {
  const { name } = guards
  const retries = Metric.tagged(Retry.retriesTotal, "name", name)
  const durations = Metric.tagged(requestDuration, "name", name)
  return (send: Effect.Effect<Response, any, any>, request: HttpClientRequest.HttpClientRequest) => {
    const host = hostOf(request.url)
    const once = attempt(guards, send, request, host)
    const run = retrying === undefined || !retrying.idempotent(request)
      ? once
      : retried(once, retrying, retries, name, host)
    const answered = Effect.catchIf(
      run,
      (e): e is RetryableResponse => e instanceof RetryableResponse,
      (e) => Effect.succeed(e.response)
    ) as Effect.Effect<Response, any, any>
    // the duration the caller sees: every attempt and every backoff wait
    return Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeNanos()
      return Effect.ensuring(
        answered,
        Effect.sync(() => durations.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, []))
      )
    })
  }
}

export const wrap = <E, R>(
  client: HttpClient.HttpClient.With<E, R>,
  options: Options
): Effect.Effect<HttpClient.HttpClient.With<E | Error, R>, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const guards = yield* guardsOf(client, decoded, options)
    const retrying = retryingOf(decoded, options, guards.budget?.margin ?? 0)
    return HttpClient.transform(client, handler(guards, retrying)) as HttpClient.HttpClient.With<E | Error, R>
  })
