/**
 * Chaos engineering for Effect programs (the strategies Polly v8 calls chaos): inject faults,
 * latency, fake outcomes (an HTTP 503) and extra behaviour into a share of calls, to see the
 * protections around them work before production needs them.
 *
 * An `Injector` decides, for each call, whether to inject: it must be enabled (off unless
 * enabled, switchable at run time), the call must fall in an open window when a window schedule
 * is given, and a uniform draw from `Random` must fall below `rate`. Strategies say what happens
 * to an injected call: `fault`, `latency`, `outcome`, `behavior`, and for HTTP `httpStatus`
 * (server), `clientStatus` and `clientFault` (client). Time comes from `Clock` and randomness
 * from `Random`, so everything is deterministic under `TestClock` and `TestRandom`.
 *
 * When the injector is off a strategy costs one synchronous check and runs the effect untouched.
 * Every injection counts in `resilience_chaos_injections_total{name,kind}`.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * declare const queryUsers: Effect.Effect<ReadonlyArray<string>>
 *
 * const program = Effect.gen(function*() {
 *   const chaos = yield* Chaos.make({
 *     name: "users",
 *     enabled: true,
 *     rate: 0.05,
 *     // for one minute every ten minutes
 *     window: { schedule: Schedule.spaced("10 minutes"), duration: "1 minute" }
 *   })
 *   return yield* queryUsers.pipe(
 *     Chaos.latency(chaos, "2 seconds"),
 *     Chaos.fault(chaos, () => new Error("injected"))
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "./Errors.js"
import * as internalInjector from "./internal/chaosInjector.js"
import * as internal from "./internal/chaosStrategy.js"
import { Name, PositiveDuration, Probability } from "./internal/options.js"

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * When injection is allowed: a window opens each time `schedule` fires and stays open for
 * `duration`. The schedule starts when the injector is made and is stepped as a driver that is
 * always on time would step it (`Schedule.spaced("1 hour")`: windows at 1 h, 2 h, …;
 * `Schedule.cron("0 14 * * *")`: every day at 14:00). A schedule that ends closes the last
 * window for good.
 *
 * @since 0.2.0
 * @category models
 */
export interface Window {
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly duration: Duration.DurationInput
}

/**
 * Options of `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** names the injector in metrics and logs */
  readonly name: string
  /** injection happens only while enabled (default `false`: off unless enabled) */
  readonly enabled?: boolean | undefined
  /** share of calls injected, in [0, 1] (default 0.001, Polly's default: one call in a thousand) */
  readonly rate?: number | undefined
  /** inject only inside the windows of a schedule (default: always) */
  readonly window?: Window | undefined
}

/**
 * A snapshot of an injector.
 *
 * @since 0.2.0
 * @category models
 */
export interface Status {
  readonly name: string
  readonly enabled: boolean
  readonly rate: number
  /** `"none"` without a window schedule */
  readonly window: "none" | "open" | "closed"
  /** calls seen while enabled, inside a window or not */
  readonly decisions: number
  /** calls injected */
  readonly injections: number
}

/**
 * Decides, per call, whether to inject. Build one with `make`; strategies take it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Injector {
  readonly name: string
  /** whether the current call is injected (counts it in `status`) */
  readonly decide: Effect.Effect<boolean>
  /**
   * the decision as strategies take it, on the calling fiber: a plain boolean when it needs no
   * effect (off, outside a window, rate 0 or 1), otherwise the effect that draws from `Random`
   */
  readonly unsafeDecide: (fiber: Fiber.RuntimeFiber<unknown, unknown>) => boolean | Effect.Effect<boolean>
  readonly enable: Effect.Effect<void>
  readonly disable: Effect.Effect<void>
  /** changes the rate at run time; a rate outside [0, 1] fails with `InvalidOptionsError` */
  readonly setRate: (rate: number) => Effect.Effect<void, InvalidOptionsError>
  readonly status: Effect.Effect<Status>
}

/**
 * What a strategy returns: a combinator applying it to any effect. `A2`, `E2` and `R2` are what
 * an injected call may add (an outcome's value, a fault's error, a behaviour's requirements).
 *
 * @since 0.2.0
 * @category models
 */
export interface Injection<A2 = never, E2 = never, R2 = never> {
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A | A2, E | E2, R | R2>
  /**
   * Type-level only, never set: without it TypeScript measures `A2` as unused and lets an
   * injection that replaces the value pass for one that does not (e.g. in `client`).
   */
  readonly "~value"?: (_: never) => A2
}

/**
 * What a client strategy returns: a transform for `HttpClient.transform`, which also sees the
 * request. Every `Injection` that adds no value (`fault`, `latency`, `behavior`) is one too.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClientInjection<E2 = never, R2 = never> {
  <E, R>(
    send: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>,
    request: HttpClientRequest.HttpClientRequest
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, E | E2, R | R2>
}

/**
 * `resilience_chaos_injections_total{name,kind}`: calls injected, by injector and strategy
 * (`fault`, `latency`, `outcome`, `behavior`, `http-status`, `client-status`, `client-fault`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const injectionsTotal: Metric.Metric.Counter<number> = internal.injectionsTotal

// ---------------------------------------------------------------------------------------------
// Injector
// ---------------------------------------------------------------------------------------------

const ScheduleFromSelf = Schema.declare(
  (u: unknown): u is Schedule.Schedule<unknown, unknown> => Schedule.isSchedule(u),
  { identifier: "Schedule", message: () => "expected a Schedule" }
)

const OptionsSchema = Schema.Struct({
  name: Name,
  enabled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  rate: Schema.optionalWith(Probability, { default: () => 0.001 }),
  window: Schema.optional(Schema.Struct({ schedule: ScheduleFromSelf, duration: PositiveDuration }))
})

const decodeOptions = internal.strictDecoder("Chaos", OptionsSchema)

/**
 * Builds an injector, failing with `InvalidOptionsError` (naming the option) for a bad option or
 * an unknown key. With a window, the schedule starts now.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Injector, InvalidOptionsError> =>
  Effect.flatMap(Effect.suspend(() => decodeOptions(options)), internalInjector.make)

/**
 * Provides an injector under your own tag.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I>(tag: Context.Tag<I, Injector>, options: Options): Layer.Layer<I, InvalidOptionsError> =>
  Layer.effect(tag, make(options))

/**
 * The options of an injector named `name`, read from configuration. Keys: `enabled` (default
 * `false`), `rate` (default 0.001), and an optional window: `window.every` (a duration) or
 * `window.cron` (a cron expression, with `window.timeZone`, default the system's), and
 * `window.duration`. Nest it to read under a prefix, e.g. environment variables
 * `CHAOS_enabled=true CHAOS_rate=0.1` with `Config.nested(Chaos.config("users"), "CHAOS")`.
 *
 * @since 0.2.0
 * @category config
 */
export const config = (name: string): Config.Config<Options> =>
  Config.all({
    enabled: Config.withDefault(Config.boolean("enabled"), false),
    rate: Config.option(Config.number("rate")),
    window: internalInjector.windowConfig
  }).pipe(Config.map(({ enabled, rate, window }): Options => ({
    name,
    enabled,
    ...(Option.isSome(rate) ? { rate: rate.value } : {}),
    ...(window === undefined ? {} : { window })
  })))

/**
 * Provides an injector whose options are read from `effect/Config` (see `config`); a value out
 * of range fails with `InvalidOptionsError`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, Injector>,
  options: Config.Config<Options>
): Layer.Layer<I, InvalidOptionsError | ConfigError.ConfigError> => Layer.effect(tag, Effect.flatMap(options, make))

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/**
 * Injected calls fail with the error `error()` makes, without running the effect (Polly's fault
 * strategy, as a typed failure; use `outcome` with `Effect.die` for a defect).
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * class ConnectionReset extends Data.TaggedError("ConnectionReset") {}
 * const call = Effect.tryPromise(() => fetch("http://127.0.0.1:8080/quote").then((res) => res.text()))
 *
 * const flaky = (chaos: Chaos.Injector) => call.pipe(Chaos.fault(chaos, () => new ConnectionReset()))
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const fault: {
  <E2>(injector: Injector, error: () => E2): Injection<never, E2>
  <A, E, R, E2>(self: Effect.Effect<A, E, R>, injector: Injector, error: () => E2): Effect.Effect<A, E | E2, R>
} = internal.dualStrategy((injector, error: () => unknown) =>
  internal.strategy(injector, "fault", () => Effect.failSync(error))
)

/**
 * Injected calls wait `delay` on the `Clock` before running. `delay` is a duration, or an effect
 * choosing one per call (e.g. from `Random`); an invalid duration makes every call die with
 * `InvalidOptionsError`.
 *
 * The wait is interruptible even inside an uninterruptible region — an `HttpMiddleware` runs in
 * one — so a caller that gives up (a client that hangs up) never waits it out; the effect itself
 * keeps its own interruptibility.
 *
 * @since 0.2.0
 * @category strategies
 */
export const latency: {
  <R2 = never>(
    injector: Injector,
    delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, R2>
  ): Injection<never, never, R2>
  <A, E, R, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, R2>
  ): Effect.Effect<A, E, R | R2>
} = internal.dualStrategy(internal.latency)

/**
 * Injected calls get `outcome` instead of running the effect: a fake result, a failure, a
 * defect (`Effect.die`) or an HTTP response (Polly's outcome strategy).
 *
 * @since 0.2.0
 * @category strategies
 */
export const outcome: {
  <A2, E2 = never, R2 = never>(injector: Injector, outcome: Effect.Effect<A2, E2, R2>): Injection<A2, E2, R2>
  <A, E, R, A2, E2 = never, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    outcome: Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E | E2, R | R2>
} = internal.dualStrategy((injector, replacement: internal.AnyEffect) =>
  internal.strategy(injector, "outcome", () => replacement)
)

/**
 * Injected calls run `behavior` first, then the effect (Polly's behaviour strategy): restart a
 * dependency, fill a disk, drop a cache. A failing behaviour fails the call.
 *
 * @since 0.2.0
 * @category strategies
 */
export const behavior: {
  <X, E2 = never, R2 = never>(injector: Injector, behavior: Effect.Effect<X, E2, R2>): Injection<never, E2, R2>
  <A, E, R, X, E2 = never, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    behavior: Effect.Effect<X, E2, R2>
  ): Effect.Effect<A, E | E2, R | R2>
} = internal.dualStrategy((injector, extra: internal.AnyEffect) =>
  internal.strategy(injector, "behavior", (self) => Effect.zipRight(extra, self))
)

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/**
 * Options of `httpStatus` and `clientStatus`.
 *
 * @since 0.2.0
 * @category models
 */
export interface StatusOptions {
  /** sets `Retry-After` (whole seconds, rounded up) */
  readonly retryAfter?: Duration.DurationInput | undefined
  /** the message in the JSON body (default `"injected by chaos"`) */
  readonly message?: string | undefined
}

/**
 * For server handlers: injected requests are answered with `status` (e.g. 503) and a JSON body
 * `{"error": {"code": "chaos_injected", "status": …, "message": …}}` without running the
 * handler. Use it in `middleware`, or on one route's handler.
 *
 * @since 0.2.0
 * @category http
 */
export const httpStatus = (
  injector: Injector,
  status: number,
  options: StatusOptions = {}
): Injection<HttpServerResponse.HttpServerResponse> => {
  const prepared = internal.prepareStatus("Chaos.httpStatus", status, options)
  if (prepared instanceof InvalidOptionsError) return internal.invalid(prepared) as Injection<never>
  return internal.strategy(
    injector,
    "http-status",
    () =>
      Effect.sync(() =>
        HttpServerResponse.unsafeJson(prepared.body, { status: prepared.status, headers: prepared.headers })
      )
  ) as Injection<HttpServerResponse.HttpServerResponse>
}

/**
 * An `HttpMiddleware` applying strategies to every request, the first one outermost:
 * `middleware(Chaos.latency(slow, "2 seconds"), Chaos.httpStatus(errors, 503))`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * const app = HttpRouter.empty.pipe(HttpRouter.get("/", HttpServerResponse.text("ok")))
 * const ServeLive = Layer.unwrapEffect(Effect.gen(function*() {
 *   const chaos = yield* Chaos.make({ name: "api", enabled: true, rate: 0.01 })
 *   return HttpServer.serve(app, Chaos.middleware(Chaos.httpStatus(chaos, 503)))
 * }))
 * ```
 *
 * @since 0.2.0
 * @category http
 */
export const middleware = (
  ...injections: ReadonlyArray<Injection<HttpServerResponse.HttpServerResponse, unknown, unknown>>
): HttpMiddleware.HttpMiddleware =>
  ((app) =>
    injections.reduceRight<internal.AnyEffect>(
      (inner, injection) => injection(inner),
      app
    )) as HttpMiddleware.HttpMiddleware

/**
 * For `HttpClient`: injected requests are not sent; the caller gets a response with `status`
 * (e.g. 503, or 429 with `retryAfter`) and the JSON body of `httpStatus`.
 *
 * @since 0.2.0
 * @category http
 */
export const clientStatus = (injector: Injector, status: number, options: StatusOptions = {}): ClientInjection => {
  const prepared = internal.prepareStatus("Chaos.clientStatus", status, options)
  if (prepared instanceof InvalidOptionsError) return internal.invalid(prepared) as ClientInjection
  const body = JSON.stringify(prepared.body)
  const headers = { ...prepared.headers, "content-type": "application/json" }
  return internal.strategy(
    injector,
    "client-status",
    (_send, request: HttpClientRequest.HttpClientRequest) =>
      Effect.sync(() => HttpClientResponse.fromWeb(request, new Response(body, { status: prepared.status, headers })))
  ) as ClientInjection
}

/**
 * For `HttpClient`: injected requests are not sent and fail as a lost connection does — a
 * `RequestError` with reason `"Transport"` whose cause has code `ECONNRESET` — which retries
 * and breakers treat as a network failure.
 *
 * @since 0.2.0
 * @category http
 */
export const clientFault = (
  injector: Injector,
  options: { readonly message?: string | undefined } = {}
): ClientInjection<HttpClientError.RequestError> => {
  const message = options.message ?? "connection reset (injected by chaos)"
  return internal.strategy(
    injector,
    "client-fault",
    (_send, request: HttpClientRequest.HttpClientRequest) =>
      Effect.fail(
        new HttpClientError.RequestError({
          request,
          reason: "Transport",
          cause: Object.assign(new Error(message), { code: "ECONNRESET" }),
          description: message
        })
      )
  ) as ClientInjection<HttpClientError.RequestError>
}

/**
 * Applies a client strategy (`clientStatus`, `clientFault`, or any of `fault`, `latency`,
 * `behavior`) to every request of an `HttpClient`. An `outcome` fits only when it yields an
 * `HttpClientResponse`: one replacing the response with any other value is a type error.
 *
 * @example
 * ```ts
 * import { HttpClient } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * // every HttpClient user in the app sees 10 % of calls answered 503
 * const ChaosClientLive = Layer.effect(
 *   HttpClient.HttpClient,
 *   Effect.gen(function*() {
 *     const chaos = yield* Chaos.make({ name: "downstream", enabled: true, rate: 0.1 })
 *     return (yield* HttpClient.HttpClient).pipe(Chaos.client(Chaos.clientStatus(chaos, 503)))
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category http
 */
export const client: {
  <A2 extends HttpClientResponse.HttpClientResponse, E2, R2>(
    injection: Injection<A2, E2, R2>
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | E2, R | R2>
  <E2, R2>(
    injection: ClientInjection<E2, R2>
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | E2, R | R2>
  <E, R, A2 extends HttpClientResponse.HttpClientResponse, E2, R2>(
    self: HttpClient.HttpClient.With<E, R>,
    injection: Injection<A2, E2, R2>
  ): HttpClient.HttpClient.With<E | E2, R | R2>
  <E, R, E2, R2>(
    self: HttpClient.HttpClient.With<E, R>,
    injection: ClientInjection<E2, R2>
  ): HttpClient.HttpClient.With<E | E2, R | R2>
} = dual(2, <E, R, E2, R2>(
  self: HttpClient.HttpClient.With<E, R>,
  injection: ClientInjection<E2, R2>
) => HttpClient.transform(self, (send, request) => injection(send, request)))
