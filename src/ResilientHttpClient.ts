/**
 * Wraps `@effect/platform`'s `HttpClient` with the client-side half of the toolkit, per host
 * (`url.host`, so `api:8080` and `api:9090` are isolated from each other):
 *
 * - a **circuit breaker** per host: network errors, timeouts and 5xx responses are failures;
 *   4xx responses are successes (the server answered); 429 and local rejections count as neither;
 *   an open breaker fails the call at once with `CircuitOpenError` and is never retried;
 * - a **bulkhead** per host bounding concurrent calls (`BulkheadFullError` when full); like the
 *   per-host breakers, a host's bulkhead is dropped once unused for `bulkhead.idleTimeToLive`
 *   (default 10 minutes) and never while calls are running or queued on it, so calling many
 *   distinct hosts does not grow memory without bound;
 * - a **per-attempt timeout** through `Timeout.within`, so it is clamped to the caller's deadline
 *   budget (`Timeout.deadline`, or the one the resilient server middleware starts);
 * - **deadline propagation**: each attempt sends what is left of its deadline (the caller's budget
 *   from `Timeout.deadline`, `Timeout.within` or the resilient server, or the per-attempt timeout
 *   when shorter), less a safety margin, in `x-request-timeout` (millis) or gRPC's `grpc-timeout`; with no budget left past the
 *   margin the request is not sent and fails with `TimeoutError` at once;
 * - **retries** with exponential backoff and full jitter, only for idempotent requests (GET, HEAD,
 *   OPTIONS, TRACE, PUT, DELETE, or any request with an `Idempotency-Key` header), only on network
 *   errors, timeouts, 5xx and 429, honouring `Retry-After`, never on other 4xx and never on a
 *   breaker or bulkhead rejection.
 *
 * Responses keep `@effect/platform`'s semantics: once retries are exhausted, a 5xx or 429 response
 * is returned as a response, not an error (use `HttpClient.filterStatusOk` to turn it into one).
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 * import { ResilientHttpClient } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* ResilientHttpClient.make({ timeout: "2 seconds", retry: { times: 3 } })
 *   const response = yield* client.get("http://127.0.0.1:8080/users/1")
 *   return response.status
 * }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Backoff from "./Backoff.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { BulkheadFullError, CircuitOpenError, InvalidOptionsError, RateLimitedError } from "./Errors.js"
import { TimeoutError } from "./Errors.js"
import * as BulkheadRegistry from "./internal/bulkheadRegistry.js"
import * as DeadlineBudget from "./internal/deadlineBudget.js"
import * as HostLimitGate from "./internal/hostLimitGate.js"
import * as http from "./internal/http.js"
import * as options_ from "./internal/options.js"
import type { RedisClient } from "./RedisStore.js"
import * as Retry from "./Retry.js"
import * as Timeout from "./Timeout.js"

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** names the metrics, breakers (`"<name> <host>"`) and bulkheads (default `"http-client"`) */
  readonly name?: string
  /**
   * hosts with a breaker and a bulkhead at most (default 10,000): past it the least recently used
   * idle host's are dropped (never one with calls running)
   */
  readonly maxHosts?: number
  /** default: `CircuitBreaker.sre` per host; `false` switches breakers off */
  readonly breaker?: false | {
    readonly policy?: (name: string) => CircuitBreaker.Policy
    readonly registry?: Context.Tag.Service<CircuitBreaker.Registry>
  }
  /** default: 64 concurrent calls per host, no queue; `false` switches bulkheads off */
  readonly bulkhead?: false | {
    readonly maxConcurrent?: number
    readonly maxQueue?: number
    readonly queueTimeout?: Duration.DurationInput
    /**
     * a host's bulkhead unused for this long is dropped (default 10 minutes, as the per-host
     * breakers); one with calls running or queued is kept
     */
    readonly idleTimeToLive?: Duration.DurationInput
  }
  /**
   * sends the remaining deadline budget of each attempt (the caller's deadline, or the per-attempt
   * timeout when shorter) less `margin` (default 5 ms: the time the request takes to reach the
   * server) in header `name` (default `x-request-timeout`, whole millis; `format: "grpc"` writes
   * gRPC's `grpc-timeout` format). Without a caller's deadline the per-attempt timeout is the
   * budget; with neither (`timeout: false`) nothing is sent. `false` switches it off.
   */
  readonly propagateDeadline?: false | {
    readonly header?: string
    readonly format?: "millis" | "grpc"
    readonly margin?: Duration.DurationInput
  }
  /**
   * learns each host's limit from its responses (429 with `Retry-After`, `RateLimit-*`,
   * `RateLimit`, `X-RateLimit-*`), and holds requests back once the host's quota is spent until it
   * resets: `onLimited: "wait"` (default) waits up to `maxWait` (default 30 seconds, never past
   * the caller's deadline), `"fail"` fails at once with `RateLimitedError` (limiter: the client's
   * name, key: the host). A 429 without a reset time blocks the host for `blockFor` (default 1
   * second). Off unless given.
   */
  readonly learnLimits?: {
    readonly onLimited?: "wait" | "fail"
    readonly maxWait?: Duration.DurationInput
    readonly blockFor?: Duration.DurationInput
    /**
     * shares what is learned with the other instances of this client (same `name`) through Redis,
     * so that together they keep to the upstream's quota (see "Shared between instances" in
     * docs/cross-service.md). Calls never wait for Redis; a fiber syncs every `interval`.
     *
     * @since 0.4.0
     */
    readonly share?: {
      /** the Redis connection (`RedisStore.connect`, or an adapted client of your own) */
      readonly client: RedisClient
      /** how often this instance syncs (default 500 millis) */
      readonly interval?: Duration.DurationInput
      /** a sync slower than this is dropped; the instance runs on its own limits (default 100 millis) */
      readonly timeout?: Duration.DurationInput
      /** key prefix (default `"resilience:learned:"`); the key is `<prefix>{<client name>}` */
      readonly prefix?: string
      /** names this instance (default: a random UUID per client) */
      readonly instance?: string
    }
  }
  /** per-attempt timeout, clamped to the caller's deadline (default 10 seconds) */
  readonly timeout?: Duration.DurationInput | false
  /** default: up to 3 retries, exponential from 100 ms capped at 2 s with full jitter */
  readonly retry?: false | {
    /** retries after the first attempt (default 3) */
    readonly times?: number
    /** replaces the backoff (its input is the failure); `times` still applies */
    readonly schedule?: Schedule.Schedule<unknown, unknown>
    /** which requests may be sent twice (default: idempotent methods or an `Idempotency-Key` header) */
    readonly idempotent?: (request: HttpClientRequest.HttpClientRequest) => boolean
    /** a `Retry-After` longer than this is not waited for: the response is returned (default 30 seconds) */
    readonly maxRetryAfter?: Duration.DurationInput
  }
}

/**
 * A retryable response (5xx or 429) seen by the retry loop. It never escapes `make`'s client: once
 * retries are exhausted, the response itself is returned.
 *
 * @since 0.1.0
 * @category models
 */
export class RetryableResponse extends Data.TaggedError("RetryableResponse")<{
  readonly response: HttpClientResponse.HttpClientResponse
  readonly retryAfter: Duration.Duration | undefined
}> {}

/**
 * The errors a resilient client adds to `HttpClientError`.
 *
 * @since 0.1.0
 * @category models
 */
export type Error =
  | HttpClientError.HttpClientError
  | CircuitOpenError
  | BulkheadFullError
  | TimeoutError
  | RateLimitedError

/**
 * The wrapped client.
 *
 * @since 0.1.0
 * @category models
 */
export type ResilientHttpClient = HttpClient.HttpClient.With<Error>

/**
 * A `Context.Tag` for a resilient client provided by `layer`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Client extends Context.Tag("effect-resilience/ResilientHttpClient")<Client, ResilientHttpClient>() {}

const OptionsSchema = () =>
  Schema.Struct({
    name: Schema.optional(options_.Name),
    maxHosts: Schema.optional(options_.PositiveInt),
    timeout: Schema.optional(Schema.Union(options_.PositiveDuration, Schema.Literal(false))),
    learnLimits: Schema.optional(Schema.Struct({
      onLimited: Schema.optional(Schema.Literal("wait", "fail")),
      maxWait: Schema.optional(options_.NonNegativeDuration),
      blockFor: Schema.optional(options_.PositiveDuration),
      share: Schema.optional(Schema.Struct({
        client: Schema.Unknown,
        interval: Schema.optionalWith(options_.PositiveDuration, { default: () => Duration.millis(500) }),
        timeout: Schema.optionalWith(options_.PositiveDuration, { default: () => Duration.millis(100) }),
        prefix: Schema.optionalWith(Schema.String, { default: () => "resilience:learned:" }),
        instance: Schema.optional(options_.Name)
      }))
    })),
    propagateDeadline: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        header: Schema.optional(options_.Name),
        format: Schema.optional(Schema.Literal("millis", "grpc")),
        margin: Schema.optional(options_.NonNegativeDuration)
      })
    )),
    bulkhead: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        maxConcurrent: Schema.optional(options_.PositiveInt),
        maxQueue: Schema.optional(options_.NonNegativeInt),
        queueTimeout: Schema.optional(options_.NonNegativeDuration),
        idleTimeToLive: Schema.optional(options_.PositiveDuration)
      })
    )),
    retry: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        times: Schema.optional(options_.NonNegativeInt),
        maxRetryAfter: Schema.optional(options_.NonNegativeDuration)
      })
    ))
  })

const decode = options_.decodeOptions("ResilientHttpClient", OptionsSchema)

const defaultIdempotent = (request: HttpClientRequest.HttpClientRequest): boolean =>
  http.idempotentMethods.has(request.method) || request.headers["idempotency-key"] !== undefined

const isTransportError = (u: unknown): boolean =>
  Predicate.hasProperty(u, "_tag") && u._tag === "RequestError" &&
  Predicate.hasProperty(u, "reason") && u.reason === "Transport"

/** Whether a failure of one attempt may be retried. */
const isRetryable = (u: unknown): boolean =>
  u instanceof RetryableResponse || u instanceof TimeoutError || isTransportError(u)

/**
 * `resilience_http_client_request_duration_seconds{name}`: how long a request through the client
 * took, retries and backoff included, in seconds.
 *
 * @since 0.2.0
 * @category metrics
 */
export const requestDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "resilience_http_client_request_duration_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  "requests through the resilient HTTP client, retries and backoff included, in seconds"
)

const hostOf = (url: string): string => {
  try {
    return new URL(url).host
  } catch {
    return "unknown"
  }
}

const describe = (e: unknown): string =>
  e instanceof RetryableResponse
    ? `status ${e.response.status}`
    : Predicate.hasProperty(e, "_tag") && typeof e._tag === "string"
    ? e._tag
    : "error"

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

/**
 * Wraps the `HttpClient` in context. Breakers and bulkheads live in the current scope; each is
 * dropped once idle (10 minutes by default; `bulkhead.idleTimeToLive` for bulkheads).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<ResilientHttpClient, InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(HttpClient.HttpClient, (client) => wrap(client, options))

/**
 * Wraps a given client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrap = <E, R>(
  client: HttpClient.HttpClient.With<E, R>,
  options: Options = {}
): Effect.Effect<HttpClient.HttpClient.With<E | Error, R>, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const name = decoded.name ?? "http-client"
    const timeout = decoded.timeout === false
      ? undefined
      : Timeout.within({ duration: decoded.timeout ?? Duration.seconds(10), operation: name })

    const budget = decoded.propagateDeadline === false
      ? undefined
      : DeadlineBudget.make(client, name, decoded.propagateDeadline ?? {})

    const maxHosts = decoded.maxHosts ?? 10_000
    const gate = decoded.learnLimits === undefined
      ? undefined
      : yield* HostLimitGate.make(name, maxHosts, {
        ...decoded.learnLimits,
        share: HostLimitGate.shareSettings(decoded.learnLimits.share)
      })
    const breakerOptions = options.breaker === false ? undefined : options.breaker ?? {}
    const registry = breakerOptions === undefined
      ? undefined
      : breakerOptions.registry ?? (yield* CircuitBreaker.makeRegistry({
        policy: breakerOptions.policy ?? ((n) => CircuitBreaker.sre({ name: n })),
        idleTimeToLive: "10 minutes",
        maxKeys: maxHosts
      }))

    const bulkheadOptions = decoded.bulkhead === false ? undefined : decoded.bulkhead ?? {}
    // per-host bulkheads, dropped once idle like the per-host breakers (never while in use)
    const bulkheadOf = bulkheadOptions === undefined ? undefined : yield* BulkheadRegistry.makePerKey({
      maxKeys: maxHosts,
      ttl: Duration.toMillis(bulkheadOptions.idleTimeToLive ?? Duration.minutes(10)),
      settingsOf: (host) => ({
        name: `${name} ${host}`,
        maxConcurrent: bulkheadOptions.maxConcurrent ?? 64,
        maxQueue: bulkheadOptions.maxQueue ?? 0,
        ...(bulkheadOptions.queueTimeout === undefined ? {} : { queueTimeout: bulkheadOptions.queueTimeout })
      }),
      onEvict: (host) => Effect.logDebug("dropped idle bulkhead").pipe(Effect.annotateLogs({ client: name, host }))
    })

    const retryOptions = decoded.retry === false ? undefined : decoded.retry ?? {}
    const rawRetry = options.retry === false ? undefined : options.retry
    const times = retryOptions?.times ?? 3
    const maxRetryAfter = Duration.toMillis(retryOptions?.maxRetryAfter ?? Duration.seconds(30))
    const idempotent = rawRetry?.idempotent ?? defaultIdempotent
    const schedule: Schedule.Schedule<unknown, unknown> = drainBeforeWaiting(Backoff.respectRetryAfter(
      (rawRetry?.schedule ?? Backoff.exponential({ base: "100 millis", cap: "2 seconds", jitter: "full" })).pipe(
        Schedule.intersect(Schedule.recurs(times))
      )
    ))
    const retries = Metric.tagged(Retry.retriesTotal, "name", name)
    const durations = Metric.tagged(requestDuration, "name", name)

    /** Whether a failed attempt is worth another one. */
    const mayRetry = (e: unknown): Effect.Effect<boolean> => {
      if (!isRetryable(e)) return Effect.succeed(false)
      const wait = e instanceof RetryableResponse && e.retryAfter !== undefined ? Duration.toMillis(e.retryAfter) : 0
      if (wait > maxRetryAfter) return Effect.succeed(false)
      // never wait past the caller's deadline, nor retry once it is spent: the attempt could not
      // be sent, and its instant timeout would count against the host's breaker
      return Effect.map(
        Timeout.remaining,
        Option.match({ onNone: () => true, onSome: (left) => Duration.toMillis(left) > wait + (budget?.margin ?? 0) })
      )
    }

    /** One attempt: breaker → bulkhead → timeout → send, classifying the response. */
    const attempt = <E1, R1>(
      send: Effect.Effect<HttpClientResponse.HttpClientResponse, E1, R1>,
      request: HttpClientRequest.HttpClientRequest,
      host: string
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, E1 | Error | RetryableResponse, R1> => {
      let call: Effect.Effect<HttpClientResponse.HttpClientResponse, any, R1> = budget === undefined
        ? send
        : budget.send(send, request)
      if (timeout !== undefined) call = timeout(call)
      if (gate !== undefined) call = Effect.tap(call, (r) => gate.learn(host, r.status, r.headers))
      call = Effect.flatMap(
        call,
        (response) =>
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
      )
      if (bulkheadOf !== undefined) {
        const inner = call
        call = Effect.flatMap(bulkheadOf(host), (bulkhead) => bulkhead.run(inner))
      }
      if (registry !== undefined) {
        const inner = call
        call = Effect.flatMap(registry.get(`${name} ${host}`), (breaker) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(breaker.allow, (permit) =>
              Effect.flatMap(Effect.exit(restore(inner)), (exit) => {
                let settle: Effect.Effect<void>
                if (Exit.isSuccess(exit)) {
                  settle = permit.success
                } else {
                  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
                  if (failure instanceof RetryableResponse) {
                    settle = failure.response.status === 429 ? permit.ignore : permit.failure(failure)
                  } else if (
                    Predicate.hasProperty(failure, "_tag") && failure._tag === "BulkheadFullError"
                  ) {
                    settle = permit.ignore
                  } else if (failure === undefined && !Exit.isInterrupted(exit)) {
                    settle = permit.failure(exit.cause)
                  } else if (failure === undefined) {
                    settle = permit.ignore
                  } else {
                    settle = permit.failure(failure)
                  }
                }
                return Effect.zipRight(settle, exit)
              }))
          ))
      }
      // a host's spent quota holds the attempt back before the breaker and the bulkhead
      if (gate !== undefined) {
        call = Effect.zipRight(gate.enter(host), call)
      }
      // a spent budget fails before the breaker and the bulkhead: nothing was sent
      return budget === undefined ? call : budget.check(call)
    }

    return HttpClient.transform(client, (send, request) => {
      const host = hostOf(request.url)
      const once = attempt(send, request, host)
      const run = retryOptions === undefined || times === 0 || !idempotent(request)
        ? once
        : Effect.flatMap(Schedule.driver(schedule), (driver) => {
          const loop: Effect.Effect<HttpClientResponse.HttpClientResponse, any, any> = Effect.catchAll(
            once,
            (e) =>
              Effect.flatMap(mayRetry(e), (retry) =>
                retry
                  ? Effect.matchEffect(driver.next(e), {
                    // the schedule is exhausted: surface the last outcome
                    onFailure: () =>
                      Effect.fail(e),
                    onSuccess: () =>
                      Effect.zipRight(
                        Effect.zipRight(
                          Metric.increment(retries),
                          Effect.logDebug("retrying request").pipe(
                            Effect.annotateLogs({ client: name, host, error: describe(e) })
                          )
                        ),
                        loop
                      )
                  })
                  : Effect.fail(e))
          )
          return loop
        })
      const answered = Effect.catchIf(
        run,
        (e): e is RetryableResponse =>
          e instanceof RetryableResponse,
        (e) => Effect.succeed(e.response)
      ) as Effect.Effect<HttpClientResponse.HttpClientResponse, any, any>
      // the duration the caller sees: every attempt and every backoff wait
      return Effect.clockWith((clock) => {
        const start = clock.unsafeCurrentTimeNanos()
        return Effect.ensuring(
          answered,
          Effect.sync(() => durations.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, []))
        )
      })
    }) as HttpClient.HttpClient.With<E | Error, R>
  })

/**
 * Provides `Client` built on the `HttpClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Client, InvalidOptionsError, HttpClient.HttpClient> =>
  Layer.scoped(Client, make(options))
