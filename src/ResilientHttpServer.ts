/**
 * A server-side protection chain for `@effect/platform` HTTP apps, in the order go-zero uses:
 *
 * 1. **max connections** — more than `maxConns` requests in flight → `503 max_connections`;
 * 2. **circuit breaker per route** (`"METHOD /path"`) — a 5xx response (or an unhandled error, or a
 *    timeout) is a failure, a 4xx is not; open → `503 circuit_open`;
 * 3. **load shedding** — CPU-driven (`LoadShedder`); shed → `503 overloaded`; a 503 response
 *    counts as a failed pass;
 * 4. **rate limiting** — keyed by client IP or by your own key; over the limit →
 *    `429 rate_limited` with `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
 *    `Retry-After`; admitted responses carry the `RateLimit-*` headers too;
 * 5. **request timeout** — starts the `Timeout` deadline budget for the handler (nested
 *    `Timeout.within` calls are clamped to it); when it runs out the handler is interrupted and the
 *    client gets `503 timeout`. A handler failing with `TimeoutError` gets `503 timeout` when the
 *    deadline is spent, `504 upstream_timeout` otherwise.
 *
 * Every rejection is a JSON body of one stable shape (see `RejectionBody`). A client that goes
 * away mid-request interrupts the handler; that outcome is counted as neither success nor failure.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { ResilientHttpServer, RateLimiter } from "effect-resilience"
 *
 * const router = HttpRouter.empty.pipe(HttpRouter.get("/users/:id", HttpServerResponse.text("ok")))
 *
 * const ServerLive = Effect.gen(function*() {
 *   const resilient = yield* ResilientHttpServer.make({
 *     name: "user-api",
 *     timeout: "3 seconds",
 *     rateLimit: { algorithm: RateLimiter.tokenBucket({ rate: 100, burst: 100 }) },
 *     routes: { "GET /users/:id": { timeout: "1 second" } }
 *   })
 *   return HttpServer.serve(router, resilient.middleware)
 * }).pipe(Layer.unwrapScoped)
 * ```
 *
 * @since 0.1.0
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as CpuUsage from "./CpuUsage.js"
import { InvalidOptionsError, TimeoutError } from "./Errors.js"
import * as deadline_ from "./internal/deadline.js"
import * as http from "./internal/http.js"
import * as options_ from "./internal/options.js"
import * as LoadShedder from "./LoadShedder.js"
import * as RateLimiter from "./RateLimiter.js"
import * as RateLimiterStore from "./RateLimiterStore.js"
import * as Timeout from "./Timeout.js"

/**
 * The body of every response the middleware writes itself:
 *
 * ```json
 * { "error": { "code": "rate_limited", "status": 429, "message": "…", "route": "GET /users/:id", "retryAfterSeconds": 1 } }
 * ```
 *
 * `code` is one of `max_connections` (503), `circuit_open` (503), `overloaded` (503),
 * `rate_limited` (429), `timeout` (503), `upstream_timeout` (504) and `limiter_unavailable`
 * (503, only with `onStoreError: "reject"`). A handler that fails with `TimeoutError` gets
 * `503 timeout` when the request's own deadline is spent (a nested `Timeout.within` clamped to
 * it fired) and `504 upstream_timeout` when time was left (something the handler waited on timed
 * out); both count as failures for the route breaker. `retryAfterSeconds` is present when the rejecting layer knows when
 * capacity returns, and then equals the `Retry-After` header.
 *
 * @since 0.1.0
 * @category models
 */
export type RejectionBody = http.RejectionBody

/**
 * @since 0.1.0
 * @category models
 */
export type RejectionCode = http.RejectionCode

/**
 * How the rate-limit key of a request is found. The default is the client IP
 * (`request.remoteAddress`, or the first `X-Forwarded-For` hop with `trustProxy: true`).
 *
 * @since 0.1.0
 * @category models
 */
export type KeyFunction = (
  request: HttpServerRequest.HttpServerRequest
) => string | Effect.Effect<string>

/**
 * Rate-limit settings: either a ready `RateLimiter` or an `algorithm` from which one is built on
 * the `RateLimiterStore` in context (in memory when none is provided).
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimitOptions {
  readonly limiter?: RateLimiter.RateLimiter
  readonly algorithm?: RateLimiter.Algorithm
  /** the rate-limit key; default: the client IP */
  readonly key?: KeyFunction
  /** what to do when the limiter's store fails: admit the request (default) or answer 503 */
  readonly onStoreError?: "allow" | "reject"
  /** honour `X-Forwarded-For` for the default key (default false) */
  readonly trustProxy?: boolean
}

/**
 * Circuit breaker settings: one breaker per route, built by `policy(route)` in a
 * `CircuitBreaker.Registry` (or the `registry` you pass, so other code — `Health` — sees them).
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerOptions {
  /** default: `CircuitBreaker.sre({ name: route })`, go-zero's adaptive breaker */
  readonly policy?: (route: string) => CircuitBreaker.Policy
  readonly registry?: Context.Tag.Service<CircuitBreaker.Registry>
  /** which responses count as failures; default: status ≥ 500 */
  readonly isFailure?: (status: number) => boolean
}

/**
 * Load shedding settings: either a ready `LoadShedder` or the options of one built on the
 * `CpuUsage` in context (the live sampler when none is provided).
 *
 * @since 0.1.0
 * @category models
 */
export interface SheddingOptions {
  readonly shedder?: LoadShedder.LoadShedder
  /** per-mille of the CPU quota (default 900) */
  readonly cpuThreshold?: number
  readonly window?: Duration.DurationInput
  readonly buckets?: number
}

/**
 * Per-route overrides. Keys of `Options.routes` are patterns: `"GET /users/:id"`,
 * `"* /admin/*"`, `"/health"` (any method). A request matching a pattern is named after it, so
 * every user id shares the `"GET /users/:id"` breaker. `false` switches a layer off for the route.
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteOptions {
  readonly breaker?: boolean
  readonly shedding?: boolean
  /** `true` keeps the global limiter, an object gives the route its own limiter */
  readonly rateLimit?: boolean | RateLimitOptions
  readonly timeout?: Duration.DurationInput | false
}

/**
 * Options of `make`. Every layer is on by default except rate limiting (which needs a limit);
 * `false` switches a layer off.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** names the metrics and the shedder (default `"http"`) */
  readonly name?: string
  /** requests in flight before `503 max_connections` (default 10000, go-zero's default) */
  readonly maxConns?: number | false
  readonly breaker?: BreakerOptions | false
  readonly shedding?: SheddingOptions | false
  readonly rateLimit?: RateLimitOptions | false
  /** the request deadline (default 3 seconds, go-zero's default) */
  readonly timeout?: Duration.DurationInput | false
  readonly routes?: Readonly<Record<string, RouteOptions>>
  /** how a request that matches no pattern of `routes` is named (default `"METHOD /path"`) */
  readonly routeName?: (request: HttpServerRequest.HttpServerRequest) => string
}

/**
 * A built middleware and what it is made of.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilientHttpServer {
  readonly name: string
  /** apply it with `HttpServer.serve(app, middleware)`, `HttpRouter.use`, or `HttpApiBuilder.middleware` */
  readonly middleware: HttpMiddleware.HttpMiddleware
  /** requests currently in flight */
  readonly inFlight: Effect.Effect<number>
  /** the breaker of a route, created on first use */
  readonly breaker: (route: string) => Effect.Effect<Option.Option<CircuitBreaker.CircuitBreaker>>
  /** the registry holding the route breakers (pass it to `Health` to report them) */
  readonly breakers: Option.Option<CircuitBreaker.RegistryService>
  /** the route name a request gets */
  readonly routeOf: (request: HttpServerRequest.HttpServerRequest) => string
  readonly shedder: Option.Option<LoadShedder.LoadShedder>
  readonly limiter: Option.Option<RateLimiter.RateLimiter>
}

/**
 * A service holding a built `ResilientHttpServer`, provided by `layer` and `Config.layerConfig`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Server extends Context.Tag("effect-resilience/ResilientHttpServer")<Server, ResilientHttpServer>() {}

const rejectedTotal = Metric.counter("resilience_http_rejected_total", {
  description: "HTTP requests the resilient middleware answered itself, by reason",
  incremental: true
})
const inFlightGauge = Metric.gauge("resilience_requests_in_flight", {
  description: "requests in flight"
})

const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  maxConns: Schema.optional(Schema.Union(options_.PositiveInt, Schema.Literal(false))),
  timeout: Schema.optional(Schema.Union(options_.PositiveDuration, Schema.Literal(false))),
  routes: Schema.optional(Schema.Record({
    key: Schema.String,
    value: Schema.Struct({
      timeout: Schema.optional(Schema.Union(options_.PositiveDuration, Schema.Literal(false)))
    })
  })),
  shedding: Schema.optional(Schema.Union(
    Schema.Literal(false),
    Schema.Struct({ cpuThreshold: Schema.optional(options_.NonNegativeInt) })
  ))
})

const decode = options_.decodeOptions("ResilientHttpServer", OptionsSchema)

const jsonHeaders = { "cache-control": "no-store" }

const reject = (
  code: http.RejectionCode,
  status: number,
  message: string,
  route: string,
  retryAfter: Option.Option<Duration.Duration>,
  headers: Record<string, string> = {}
): HttpServerResponse.HttpServerResponse => {
  const body = http.rejectionBody(code, status, message, route, retryAfter)
  const extra = Option.isSome(retryAfter)
    ? { ...jsonHeaders, ...headers, "retry-after": String(http.ceilSeconds(retryAfter.value)) }
    : { ...jsonHeaders, ...headers }
  return HttpServerResponse.unsafeJson(body, { status, headers: extra as any })
}

const noTags: ReadonlyArray<never> = []

/**
 * The fiber runtime's own synchronous `FiberRef` write (what `FiberRef.set` runs), used to set
 * and restore the request's refs without an extra effect step each.
 */
interface RuntimeFiber extends Fiber.RuntimeFiber<unknown, unknown> {
  setFiberRef<A>(fiberRef: FiberRef.FiberRef<A>, value: A): void
}

/**
 * Adds `hook` after the pre-response handlers already installed on `fiber`, in one synchronous
 * step (call it inside `withFiberRuntime`).
 */
const addHook = (fiber: RuntimeFiber, hook: HttpApp.PreResponseHandler): void => {
  const previous = fiber.getFiberRef(HttpApp.currentPreResponseHandlers)
  fiber.setFiberRef(
    HttpApp.currentPreResponseHandlers,
    Option.some(
      previous._tag === "None"
        ? hook
        : (request: HttpServerRequest.HttpServerRequest, response: HttpServerResponse.HttpServerResponse) =>
          Effect.flatMap(previous.value(request, response), (r) => hook(request, r))
    )
  )
}

const isTimeoutError = (e: unknown): e is TimeoutError => e instanceof TimeoutError

/**
 * A handler's `TimeoutError` this close to the request deadline is the deadline's own: timers
 * fire on millisecond boundaries, so a nested timeout clamped to the deadline may fire one
 * millisecond before the request's timer.
 */
const deadlineSlackMillis = 1

/** The status the platform gives the response of a request whose client went away. */
const clientClosed = 499

/** Responses written by an inner layer, which the breaker must not count against the route. */
type InnerRejections = WeakSet<HttpServerResponse.HttpServerResponse>

/**
 * The status the client saw, or `undefined` when the request was abandoned: the client went away
 * (the platform answers 499) or the handler was interrupted (server shutting down). Abandoned
 * requests say nothing about the route's health.
 */
const statusOfExit = <E>(
  exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>,
  outcome: { readonly timedOut: boolean }
): Effect.Effect<number | undefined> => {
  if (outcome.timedOut) return Effect.succeed(503)
  if (Exit.isSuccess(exit)) return Effect.succeed(exit.value.status === clientClosed ? undefined : exit.value.status)
  if (Cause.isInterrupted(exit.cause)) return Effect.succeed(undefined)
  return Effect.map(
    HttpServerError.causeResponse(exit.cause),
    ([response]) => response.status === clientClosed ? undefined : response.status
  )
}

interface RouteSettings {
  readonly breaker: boolean
  readonly shedding: boolean
  readonly limiter: Option.Option<ResolvedLimiter>
  readonly timeout: Option.Option<{ readonly deadline: Deadline; readonly duration: Duration.Duration }>
}

type Deadline = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>

interface ResolvedLimiter {
  readonly limiter: RateLimiter.RateLimiter
  readonly key: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<string>
  readonly onStoreError: "allow" | "reject"
}

const clientIp = (trustProxy: boolean) => (request: HttpServerRequest.HttpServerRequest): string => {
  if (trustProxy) {
    const forwarded = request.headers["x-forwarded-for"]
    if (forwarded !== undefined && forwarded.length > 0) return forwarded.split(",")[0].trim()
  }
  return Option.getOrElse(request.remoteAddress, () => "unknown")
}

const keyFunction = (options: RateLimitOptions) => {
  const key = options.key ?? clientIp(options.trustProxy ?? false)
  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<string> => {
    const k = key(request)
    return typeof k === "string" ? Effect.succeed(k) : k
  }
}

const provideOptional = <I, S>(tag: Context.Tag<I, S>, fallback: Layer.Layer<I, any>) =>
  Effect.flatMap(Effect.serviceOption(tag), (found) =>
    Option.isSome(found)
      ? Effect.succeed(found.value)
      : Effect.map(Layer.build(fallback), (ctx) => Context.get(ctx, tag)))

const buildLimiter = (
  name: string,
  options: RateLimitOptions
): Effect.Effect<ResolvedLimiter, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    let limiter = options.limiter
    if (limiter === undefined) {
      if (options.algorithm === undefined) {
        return yield* Effect.fail(
          new InvalidOptionsError({
            module: "ResilientHttpServer",
            option: "rateLimit",
            value: undefined,
            reason: "expected a limiter or an algorithm"
          })
        )
      }
      const store = yield* provideOptional(RateLimiterStore.RateLimiterStore, RateLimiterStore.layerMemory())
      limiter = yield* RateLimiter.make({ name, algorithm: options.algorithm }).pipe(
        Effect.provideService(RateLimiterStore.RateLimiterStore, store)
      )
    }
    return { limiter, key: keyFunction(options), onStoreError: options.onStoreError ?? "allow" }
  })

/**
 * Builds the middleware. Breakers, the shedder and limiters live in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<ResilientHttpServer, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const name = decoded.name ?? "http"
    const maxConns = decoded.maxConns === undefined ? 10_000 : decoded.maxConns
    const deadlineOf = (
      duration: Duration.Duration | false | undefined,
      fallback: RouteSettings["timeout"]
    ): RouteSettings["timeout"] =>
      duration === undefined
        ? fallback
        : duration === false
        ? Option.none()
        : Option.some({ deadline: Timeout.deadline({ duration, operation: name }) as Deadline, duration })
    const timeout = deadlineOf(decoded.timeout ?? Duration.seconds(3), Option.none())

    // circuit breakers, one per route
    const breakerOptions = options.breaker === false ? undefined : options.breaker ?? {}
    const registry = breakerOptions === undefined
      ? undefined
      : breakerOptions.registry ?? (yield* CircuitBreaker.makeRegistry({
        policy: breakerOptions.policy ?? ((route) => CircuitBreaker.sre({ name: route })),
        idleTimeToLive: "10 minutes"
      }))
    const isFailure = breakerOptions?.isFailure ?? ((status: number) => status >= 500)

    // load shedding
    let shedder: LoadShedder.LoadShedder | undefined
    if (options.shedding !== false) {
      const so = options.shedding ?? {}
      if (so.shedder !== undefined) {
        shedder = so.shedder
      } else {
        const cpu = yield* provideOptional(CpuUsage.CpuUsage, CpuUsage.layer)
        shedder = yield* LoadShedder.make({
          name,
          ...(so.cpuThreshold === undefined ? {} : { cpuThreshold: so.cpuThreshold }),
          ...(so.window === undefined ? {} : { window: so.window }),
          ...(so.buckets === undefined ? {} : { buckets: so.buckets })
        }).pipe(Effect.provideService(CpuUsage.CpuUsage, cpu))
      }
    }

    // rate limiting
    const globalLimiter = options.rateLimit === false || options.rateLimit === undefined
      ? undefined
      : yield* buildLimiter(name, options.rateLimit)

    // per-route settings
    const defaults: RouteSettings = {
      breaker: registry !== undefined,
      shedding: shedder !== undefined,
      limiter: Option.fromNullable(globalLimiter),
      timeout
    }
    const patterns: Array<{ readonly pattern: http.RoutePattern; readonly settings: RouteSettings }> = []
    for (const [key, route] of Object.entries(options.routes ?? {})) {
      const pattern = http.compileRoute(key)
      if (typeof pattern === "string") {
        return yield* Effect.fail(
          new InvalidOptionsError({
            module: "ResilientHttpServer",
            option: `routes.${key}`,
            value: key,
            reason: pattern
          })
        )
      }
      const routeTimeout = decoded.routes?.[key]?.timeout
      const limiter = route.rateLimit === undefined || route.rateLimit === true
        ? defaults.limiter
        : route.rateLimit === false
        ? Option.none()
        : Option.some(yield* buildLimiter(`${name} ${pattern.name}`, route.rateLimit))
      patterns.push({
        pattern,
        settings: {
          breaker: defaults.breaker && route.breaker !== false,
          shedding: defaults.shedding && route.shedding !== false,
          limiter,
          timeout: deadlineOf(routeTimeout, timeout)
        }
      })
    }
    const routeName = options.routeName ??
      ((request: HttpServerRequest.HttpServerRequest) => `${request.method} ${http.pathOf(request.url)}`)
    const resolve = (request: HttpServerRequest.HttpServerRequest): readonly [string, RouteSettings] => {
      if (patterns.length > 0) {
        const path = http.pathOf(request.url)
        for (const { pattern, settings } of patterns) {
          if (pattern.test(request.method, path)) return [pattern.name, settings]
        }
      }
      return [routeName(request), defaults]
    }

    let inFlight = 0
    const tagged = (outcome: string) => Metric.tagged(Metric.tagged(rejectedTotal, "name", name), "reason", outcome)
    const counters = {
      max_connections: tagged("max_connections"),
      circuit_open: tagged("circuit_open"),
      overloaded: tagged("overloaded"),
      rate_limited: tagged("rate_limited"),
      timeout: tagged("timeout"),
      upstream_timeout: tagged("upstream_timeout"),
      limiter_unavailable: tagged("limiter_unavailable")
    }
    const gauge = Metric.tagged(inFlightGauge, "name", name)
    const release = Effect.sync(() => gauge.unsafeUpdate(--inFlight, noTags))
    // the clock's scheduler, looked up once per clock
    let lastClock: Clock.Clock | undefined
    let lastScheduler: deadline_.LiveScheduler | undefined
    const schedulerOf = (clock: Clock.Clock): deadline_.LiveScheduler | undefined => {
      if (clock !== lastClock) {
        lastClock = clock
        lastScheduler = deadline_.liveScheduler(clock)
      }
      return lastScheduler
    }
    const timeouts = Metric.tagged(Timeout.timeoutsTotal, "name", name)

    const rejected = (
      code: http.RejectionCode,
      status: number,
      message: string,
      route: string,
      retryAfter: Option.Option<Duration.Duration>,
      headers?: Record<string, string>
    ) =>
      Effect.as(
        Metric.increment(counters[code]),
        reject(code, status, message, route, retryAfter, headers)
      )

    const middleware = HttpMiddleware.make((app) =>
      Effect.withFiberRuntime<HttpServerResponse.HttpServerResponse, any, any>((fiber) => {
        const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
        const [route, settings] = resolve(request)
        const inner: InnerRejections = new WeakSet()
        const outcome: { timedOut: boolean; deadlineAt: number; headers: Record<string, string> | undefined } = {
          timedOut: false,
          deadlineAt: Infinity,
          headers: undefined
        }

        // set below when the request needs the pre-response hook
        let hook: HttpApp.PreResponseHandler | undefined

        // 5. timeout
        let handler: Effect.Effect<HttpServerResponse.HttpServerResponse, any, any> = app
        let timedOut: Effect.Effect<HttpServerResponse.HttpServerResponse> | undefined
        if (Option.isSome(settings.timeout)) {
          const { deadline, duration } = settings.timeout.value
          const millis = Duration.toMillis(duration)
          const answer = Effect.suspend(() => {
            outcome.timedOut = true
            return Effect.zipRight(
              Metric.increment(timeouts),
              rejected(
                "timeout",
                503,
                `request did not complete within ${Duration.format(duration)}`,
                route,
                Option.none()
              )
            )
          })
          timedOut = answer
          handler = Effect.withFiberRuntime<HttpServerResponse.HttpServerResponse, any, any>((fiber) => {
            if (hook !== undefined) addHook(fiber as RuntimeFiber, hook)
            const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
            const scheduler = schedulerOf(clock)
            const now = clock.unsafeCurrentTimeMillis()
            const outer = fiber.getFiberRef(Timeout.currentDeadline)
            const effective = deadline_.clamp(millis, outer, now)
            if (effective <= 0) return answer
            const deadlineAt = deadline_.nested(outer, now, effective)
            outcome.deadlineAt = deadlineAt
            if (scheduler === undefined) {
              // not the live clock (tests): the forking `Timeout.deadline`
              return Effect.catchIf(deadline(app), isTimeoutError, () => answer)
            }
            // One timer and no extra fiber. When it fires, the request is marked timed out before
            // the request fiber itself is interrupted, so the pre-response hook below knows for
            // certain that the platform's empty 503 is a timeout. The deadline budget is set for
            // the handler and restored after it, each in one synchronous step.
            const cancel = scheduler.unsafeSchedule(() => {
              outcome.timedOut = true
              fiber.unsafeInterruptAsFork(fiber.id())
            }, Duration.millis(effective))
            const runtime = fiber as RuntimeFiber
            runtime.setFiberRef(Timeout.currentDeadline, deadlineAt)
            return Effect.onExit(app, () =>
              Effect.sync(() => {
                cancel()
                runtime.setFiberRef(Timeout.currentDeadline, outer)
              }))
          })
        }

        // The platform writes the handler's response itself (and answers an interrupted handler
        // with an empty 503) before this middleware sees it: one pre-response hook per request adds
        // the rate-limit headers and turns a timed-out answer into ours.
        if (timedOut !== undefined || Option.isSome(settings.limiter)) {
          const answer = timedOut
          const withHeaders = (response: HttpServerResponse.HttpServerResponse) =>
            outcome.headers === undefined ? response : HttpServerResponse.setHeaders(response, outcome.headers)
          hook = (
            _: HttpServerRequest.HttpServerRequest,
            response: HttpServerResponse.HttpServerResponse
          ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
            // The handler failed with `TimeoutError`. It is the request's own deadline when that
            // is spent (a nested `within` clamped to it fired in the same millisecond as our
            // timer, or one before it); otherwise something the handler waited on timed out.
            const upstream = http.upstreamTimeoutMessage(response)
            if (upstream !== undefined) {
              return Effect.clockWith((clock) =>
                answer !== undefined &&
                  (outcome.timedOut || outcome.deadlineAt - clock.unsafeCurrentTimeMillis() <= deadlineSlackMillis)
                  ? answer
                  : Effect.map(rejected("upstream_timeout", 504, upstream, route, Option.none()), withHeaders)
              )
            }
            if (answer !== undefined && response.status === 503) {
              if (outcome.timedOut) return answer
              return Effect.flatMap(Timeout.remaining, (left) => {
                if (Option.isNone(left) || Duration.toMillis(left.value) > 0) {
                  return Effect.succeed(withHeaders(response))
                }
                outcome.timedOut = true
                return answer
              })
            }
            return Effect.succeed(withHeaders(response))
          }
          if (timedOut === undefined) {
            // no timeout layer to install it: install it here
            const next = handler
            const installed = hook
            handler = Effect.withFiberRuntime((fiber) => {
              addHook(fiber as RuntimeFiber, installed)
              return next
            })
          }
        }

        // 4. rate limiting
        if (Option.isSome(settings.limiter)) {
          const { key, limiter, onStoreError } = settings.limiter.value
          const next = handler
          handler = Effect.flatMap(key(request), (k) =>
            limiter.take(k).pipe(
              Effect.matchCauseEffect({
                onFailure: (cause) => {
                  const failure = Cause.failureOption(cause)
                  if (Option.isSome(failure) && failure.value._tag === "RateLimitedError") {
                    const e = failure.value
                    const retryAfter = e.retryAfter ?? Duration.seconds(1)
                    return Effect.tap(
                      rejected(
                        "rate_limited",
                        429,
                        e.message,
                        route,
                        Option.some(retryAfter),
                        http.rateLimitHeaders({
                          limit: e.limit,
                          remaining: e.remaining,
                          resetAfter: e.resetAfter ?? retryAfter
                        })
                      ),
                      (r) => inner.add(r)
                    )
                  }
                  if (Option.isSome(failure) && onStoreError === "allow") {
                    return Effect.zipRight(
                      Effect.logWarning("rate limiter store failed; admitting the request").pipe(
                        Effect.annotateLogs({ route, limiter: limiter.name, error: failure.value.message })
                      ),
                      next
                    )
                  }
                  if (Option.isSome(failure)) {
                    return Effect.tap(
                      rejected(
                        "limiter_unavailable",
                        503,
                        "the rate limiter is unavailable",
                        route,
                        Option.none()
                      ),
                      (r) => inner.add(r)
                    )
                  }
                  return Effect.failCause(cause) as Effect.Effect<never>
                },
                onSuccess: (decision) => {
                  const headers = http.rateLimitHeaders(decision)
                  if (!decision.allowed) {
                    return Effect.tap(
                      rejected(
                        "rate_limited",
                        429,
                        `rate limit exceeded (limit ${decision.limit})`,
                        route,
                        Option.some(decision.retryAfter),
                        headers
                      ),
                      (r) => inner.add(r)
                    )
                  }
                  outcome.headers = headers
                  return next
                }
              })
            ))
        }

        // 3. load shedding
        if (settings.shedding && shedder !== undefined) {
          const s = shedder
          const next = handler
          handler = Effect.uninterruptibleMask((restore) =>
            Effect.matchEffect(s.allow, {
              onFailure: (e) =>
                Effect.tap(
                  rejected("overloaded", 503, e.message, route, Option.fromNullable(e.retryAfter)),
                  (r) => inner.add(r)
                ),
              onSuccess: (ticket) =>
                Effect.flatMap(Effect.exit(restore(next)), (exit) => {
                  const settle = Exit.isSuccess(exit) && inner.has(exit.value)
                    ? ticket.fail
                    : Effect.flatMap(
                      statusOfExit(exit, outcome),
                      (status) => status === undefined || status === 503 ? ticket.fail : ticket.pass
                    )
                  return Effect.zipRight(settle, exit)
                })
            })
          )
        }

        // 2. circuit breaker per route
        if (settings.breaker && registry !== undefined) {
          const next = handler
          handler = Effect.flatMap(
            registry.get(route),
            (breaker) =>
              Effect.uninterruptibleMask((restore) =>
                Effect.matchEffect(breaker.allow, {
                  onFailure: (e) => rejected("circuit_open", 503, e.message, route, Option.fromNullable(e.retryAfter)),
                  onSuccess: (permit) =>
                    Effect.flatMap(Effect.exit(restore(next)), (exit) => {
                      const settle = Exit.isSuccess(exit) && inner.has(exit.value)
                        ? permit.ignore
                        : Effect.flatMap(statusOfExit(exit, outcome), (status) =>
                          status === undefined
                            ? permit.ignore
                            : isFailure(status)
                            ? permit.failure(Exit.isFailure(exit) ? Cause.squash(exit.cause) : `status ${status}`)
                            : permit.success)
                      return Effect.zipRight(settle, exit)
                    })
                })
              )
          )
        }

        // 1. max connections
        if (maxConns === false) return handler
        if (inFlight >= maxConns) {
          return rejected("max_connections", 503, `more than ${maxConns} requests in flight`, route, Option.none())
        }
        // the counter and its gauge change in one synchronous step on the way in and out
        gauge.unsafeUpdate(++inFlight, noTags)
        return Effect.ensuring(handler, release)
      })
    )

    return {
      name,
      middleware,
      inFlight: Effect.sync(() => inFlight),
      breakers: Option.fromNullable(registry),
      breaker: (route) =>
        registry === undefined ? Effect.succeedNone : Effect.map(registry.get(route), (b) => Option.some(b)),
      routeOf: (request) => resolve(request)[0],
      shedder: Option.fromNullable(shedder),
      limiter: Option.map(Option.fromNullable(globalLimiter), (l) => l.limiter)
    } satisfies ResilientHttpServer
  })

/**
 * Provides `Server` built from `options`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Server, InvalidOptionsError> =>
  Layer.scoped(Server, make(options))
