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
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import type {
  BulkheadFullError,
  CircuitOpenError,
  InvalidOptionsError,
  RateLimitedError,
  TimeoutError
} from "./Errors.js"
import * as Client_ from "./internal/httpClient/client.js"
import type { RedisClient } from "./RedisStore.js"

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

// defined beside the retry loop that raises it; docgen reads the comment on the name
export {
  /**
   * A retryable response (5xx or 429) seen by the retry loop: a `Data.TaggedError` with the
   * `response` and its `Retry-After` as `retryAfter` (a `Duration`, `undefined` without one). It
   * never escapes `make`'s client: once retries are exhausted, the response itself is returned.
   *
   * @since 0.1.0
   * @category models
   */
  RetryableResponse
} from "./internal/httpClient/retryable.js"

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

/**
 * `resilience_http_client_request_duration_seconds{name}`: how long a request through the client
 * took, retries and backoff included, in seconds.
 *
 * @since 0.2.0
 * @category metrics
 */
export const requestDuration: Metric.Metric.Histogram<number> = Client_.requestDuration

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
  Client_.wrap(client, options)

/**
 * Provides `Client` built on the `HttpClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Client, InvalidOptionsError, HttpClient.HttpClient> =>
  Layer.scoped(Client, make(options))
