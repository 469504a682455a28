/**
 * A server-side protection chain for `@effect/platform` HTTP apps, in the order go-zero uses, one
 * stage per module (`MaxConnections`, `Breaker`, `Shedding`, `RateLimit`, `Deadline`):
 *
 * 1. **max connections** — more than `maxConns` requests in flight → `503 max_connections`;
 * 2. **circuit breaker per route** — one breaker per route pattern (`"GET /users/:id"`, from the
 *    `router` when you pass it, else from `routes`); a 5xx response (or an unhandled error, or a
 *    timeout) is a failure, a 4xx is not; open → `503 circuit_open`;
 * 3. **load shedding** — the default shedder reads event-loop utilization and protects from a cold
 *    start; requests are admitted by tier (`routes[pattern].priority` or a trusted header); shed →
 *    `503 overloaded`;
 * 4. **rate limiting** — keyed by client IP or by your own key; over the limit → `429
 *    rate_limited` with `RateLimit-*` and `Retry-After` headers, or a wait for a turn;
 * 5. **request deadline** — the route's timeout clamped to the caller's budget header; no budget
 *    left → `504 deadline_exceeded` without running the handler; when it runs out the handler is
 *    interrupted and the client gets `503 timeout`.
 *
 * Every request has one record that owns what each stage took for it; everything is given back
 * exactly once, when the request's effect ends or when the client goes away — whichever is first
 * (a request fiber whose client went away may never finish). A client that goes away is counted
 * as neither success nor failure; one that goes away while waiting for a turn leaves the queue at
 * once and its handler never runs. Every rejection is a JSON body of one stable shape (see
 * `RejectionBody`), also for the toolkit's rejection errors escaping a handler.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { ResilientHttpServer, RateLimiter } from "effect-resilience"
 *
 * const router = HttpRouter.empty.pipe(HttpRouter.get("/users/:id", HttpServerResponse.text("ok")))
 *
 * const ServerLive = Effect.gen(function*() {
 *   const resilient = yield* ResilientHttpServer.make({
 *     name: "user-api",
 *     router,
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
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import { InvalidOptionsError } from "./Errors.js"
import type * as http from "./internal/http.js"
import * as compile from "./internal/http.js"
import * as options_ from "./internal/options.js"
import type * as pipeline_ from "./internal/server/pipeline.js"
import type * as record_ from "./internal/server/record.js"
import * as routes_ from "./internal/server/routes.js"
import * as serverMetrics from "./internal/server/serverMetrics.js"
import type * as LoadShedder from "./LoadShedder.js"
import type * as RateLimiter from "./RateLimiter.js"
import * as BreakerStage from "./server/breaker.js"
import * as DeadlineStage from "./server/deadline.js"
import * as MaxConnectionsStage from "./server/maxConnections.js"
import * as RateLimitStage from "./server/rateLimit.js"
import * as SheddingStage from "./server/shedding.js"

/**
 * The max-connections stage.
 *
 * @since 0.3.0
 * @category stages
 */
export * as MaxConnections from "./server/maxConnections.js"

/**
 * The circuit-breaker stage (one breaker per route).
 *
 * @since 0.3.0
 * @category stages
 */
export * as Breaker from "./server/breaker.js"

/**
 * The load-shedding stage.
 *
 * @since 0.3.0
 * @category stages
 */
export * as Shedding from "./server/shedding.js"

/**
 * The rate-limit stage.
 *
 * @since 0.3.0
 * @category stages
 */
export * as RateLimit from "./server/rateLimit.js"

/**
 * The request-deadline stage.
 *
 * @since 0.3.0
 * @category stages
 */
export * as Deadline from "./server/deadline.js"

/**
 * The body of every response the middleware writes itself:
 *
 * ```json
 * { "error": { "code": "rate_limited", "status": 429, "message": "…", "route": "GET /users/:id", "retryAfterSeconds": 1 } }
 * ```
 *
 * `code` is one of `max_connections` (503), `circuit_open` (503), `overloaded` (503),
 * `rate_limited` (429), `timeout` (503), `deadline_exceeded` (504), `upstream_timeout` (504),
 * `bulkhead_full` (503) and `limiter_unavailable` (503, only with `onStoreError: "reject"`).
 * `retryAfterSeconds` is present when the rejecting stage knows when capacity returns, and then
 * equals the `Retry-After` header.
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
 * One stage of the server: what it takes for a request, and how it gives it back.
 *
 * @since 0.3.0
 * @category models
 */
export type Stage = record_.Stage

/**
 * The per-request record every stage reads and writes.
 *
 * @since 0.3.0
 * @category models
 */
export type RequestRecord = record_.RequestRecord

/**
 * How the rate-limit key of a request is found (default: the client IP).
 *
 * @since 0.1.0
 * @category models
 */
export type KeyFunction = RateLimitStage.KeyFunction

/**
 * Rate-limit settings (see `RateLimit.LimitOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export type RateLimitOptions = RateLimitStage.LimitOptions

/**
 * Circuit breaker settings: one breaker per route, built by `policy(route)`.
 *
 * @since 0.1.0
 * @category models
 */
export type BreakerOptions = Omit<BreakerStage.Options, "name" | "routes">

/**
 * Load shedding settings: a ready `shedder`, or the options of one (default: event-loop
 * utilization, which works from cold); `priorityHeader` names a header a trusted proxy sets to
 * `critical`, `standard` or `sheddable`.
 *
 * @since 0.1.0
 * @category models
 */
export type SheddingOptions = Omit<SheddingStage.Options, "name" | "routes">

/**
 * Per-route overrides. Keys of `Options.routes` are patterns: `"GET /users/:id"`, `"* /admin/*"`,
 * `"/health"` (any method). `false` switches a stage off for the route.
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteOptions {
  readonly breaker?: boolean
  readonly shedding?: boolean
  /** the route's tier for load shedding */
  readonly priority?: LoadShedder.Priority
  /** `true` keeps the global limiter, an object gives the route its own limiter */
  readonly rateLimit?: boolean | RateLimitOptions
  readonly timeout?: Duration.DurationInput | false
}

/**
 * Options of `make`. Every stage is on by default except rate limiting (which needs a limit);
 * `false` switches a stage off.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** names the metrics and the shedder (default `"http"`) */
  readonly name?: string
  /** the router served: requests are keyed by the pattern of the route they reach */
  readonly router?: HttpRouter.HttpRouter<any, any>
  /** requests in flight before `503 max_connections` (default 10000, go-zero's default) */
  readonly maxConns?: number | false
  readonly breaker?: BreakerOptions | false
  readonly shedding?: SheddingOptions | false
  readonly rateLimit?: RateLimitOptions | false
  /** the request deadline (default 3 seconds, go-zero's default) */
  readonly timeout?: Duration.DurationInput | false
  /** the header carrying a caller's time budget (default `"x-request-timeout"`); `false`: ignore */
  readonly budgetHeader?: string | false
  readonly routes?: Readonly<Record<string, RouteOptions>>
  /** how a request that matches no route is named (default `"METHOD /path"` without a router) */
  readonly routeName?: (request: HttpServerRequest.HttpServerRequest) => string
}

/**
 * A middleware that keeps the app's error and requirement types.
 *
 * @since 0.3.0
 * @category models
 */
export type Middleware = <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R>

/**
 * A built middleware and what it is made of.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilientHttpServer {
  readonly name: string
  /** apply it with `HttpServer.serve(app, middleware)`, `HttpRouter.use`, or `HttpApiBuilder.middleware` */
  readonly middleware: Middleware
  /** the stages, outermost first */
  readonly stages: ReadonlyArray<Stage>
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

const Fn = Schema.declare((u: unknown): u is (...a: ReadonlyArray<any>) => any => typeof u === "function", {
  message: () => "expected a function"
})
const OnOff = <A, I>(schema: Schema.Schema<A, I>) => Schema.optional(Schema.Union(schema, Schema.Literal(false)))

// Each stage checks its own options exactly; this names the unknown keys of the top level and routes.
const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  router: Schema.optional(Schema.Object),
  maxConns: OnOff(options_.PositiveInt),
  breaker: OnOff(Schema.Object),
  shedding: OnOff(Schema.Object),
  rateLimit: OnOff(Schema.Object),
  timeout: OnOff(options_.PositiveDuration),
  budgetHeader: OnOff(Schema.String),
  routeName: Schema.optional(Fn),
  routes: Schema.optional(Schema.Record({
    key: Schema.String,
    value: Schema.Struct({
      breaker: Schema.optional(Schema.Boolean),
      shedding: Schema.optional(Schema.Boolean),
      priority: Schema.optional(Schema.Literal("sheddable", "standard", "critical")),
      rateLimit: Schema.optional(Schema.Union(Schema.Boolean, Schema.Object)),
      timeout: OnOff(options_.PositiveDuration)
    })
  }))
})

const decode = options_.decodeOptions("ResilientHttpServer", OptionsSchema, { exact: true })

/** Renames a stage's invalid option to where it sits in the server's options. */
const within = (prefix: string) => (e: InvalidOptionsError) =>
  new InvalidOptionsError({
    module: "ResilientHttpServer",
    option: e.option.startsWith("routes.") ? e.option : `${prefix}.${e.option}`,
    value: e.value,
    reason: e.reason
  })

const pick = <A>(
  routes: Readonly<Record<string, RouteOptions>>,
  f: (route: RouteOptions) => A | undefined
): Record<string, A> => {
  const out: Record<string, A> = {}
  for (const [pattern, route] of Object.entries(routes)) {
    const value = f(route)
    if (value !== undefined) out[pattern] = value
  }
  return out
}

/** The stages of `options`, outermost first, in go-zero's order. */
const stagesOf = (options: Options, name: string) =>
  Effect.gen(function*() {
    const routes = options.routes ?? {}
    const stages: Array<Stage> = []
    if (options.maxConns !== false) {
      stages.push(yield* MaxConnectionsStage.make({ name, limit: options.maxConns ?? 10_000 }))
    }
    if (options.breaker !== false) {
      stages.push(
        yield* BreakerStage.make({ ...options.breaker, name, routes: pick(routes, (r) => r.breaker) }).pipe(
          Effect.mapError(within("breaker"))
        )
      )
    }
    if (options.shedding !== false) {
      const sheddingRoutes = pick(routes, (r) =>
        r.shedding === undefined && r.priority === undefined ? undefined : {
          ...(r.shedding === undefined ? {} : { enabled: r.shedding }),
          ...(r.priority === undefined ? {} : { priority: r.priority })
        })
      stages.push(
        yield* SheddingStage.make({ ...options.shedding, name, routes: sheddingRoutes }).pipe(
          Effect.mapError(within("shedding"))
        )
      )
    }
    const rateLimitRoutes = pick(routes, (r) => r.rateLimit)
    if (options.rateLimit !== false && (options.rateLimit !== undefined || Object.keys(rateLimitRoutes).length > 0)) {
      stages.push(
        yield* RateLimitStage.make({ ...options.rateLimit, name, routes: rateLimitRoutes }).pipe(
          Effect.mapError(within("rateLimit"))
        )
      )
    }
    const timeoutRoutes = pick(routes, (r) => r.timeout)
    if (options.timeout !== false || options.budgetHeader !== false || Object.keys(timeoutRoutes).length > 0) {
      stages.push(
        yield* DeadlineStage.make({
          name,
          timeout: options.timeout ?? "3 seconds",
          ...(options.budgetHeader === undefined ? {} : { budgetHeader: options.budgetHeader }),
          routes: timeoutRoutes
        }).pipe(Effect.mapError(within("timeout")))
      )
    }
    return stages
  })

/**
 * Composes `stages` (outermost first, at most one of each kind) into a server. `routes` are the
 * patterns the stages' per-route settings are keyed by; `router` gives the route keys.
 *
 * @since 0.3.0
 * @category constructors
 */
export const fromStages = (
  stages: ReadonlyArray<Stage>,
  options: Pick<Options, "name" | "router" | "routeName"> & { readonly patterns?: ReadonlyArray<string> } = {}
): Effect.Effect<ResilientHttpServer, InvalidOptionsError> =>
  Effect.gen(function*() {
    const name = options.name ?? "http"
    const kinds = new Set<string>()
    for (const stage of stages) {
      if (kinds.has(stage.kind)) {
        return yield* new InvalidOptionsError({
          module: "ResilientHttpServer",
          option: "stages",
          value: stage.kind,
          reason: `a server holds one ${stage.kind} stage`
        })
      }
      kinds.add(stage.kind)
    }
    const configured: Array<http.RoutePattern & { readonly key: string }> = []
    for (const key of options.patterns ?? []) {
      const pattern = compile.compileRoute(key)
      if (typeof pattern === "string") {
        return yield* new InvalidOptionsError({
          module: "ResilientHttpServer",
          option: `routes.${key}`,
          value: key,
          reason: pattern
        })
      }
      configured.push({ ...pattern, key })
    }
    const resolve = routes_.resolver(
      options.router === undefined ? undefined : routes_.routerPatterns(options.router),
      configured,
      options.routeName
    )
    const observer = serverMetrics.make(name)
    // the request path loads with the first server: it needs @effect/platform's HttpApp and
    // HttpServerRequest (18 modules, about 20 ms of CPU), which an import that builds no server
    // would pay for nothing
    const pipeline: typeof pipeline_ = yield* Effect.promise(() => import("./internal/server/pipeline.js"))
    const middleware = pipeline.make({
      stages,
      resolve,
      observer,
      runtime: yield* Effect.runtime<never>()
    })
    const breakerStage = stages.find((s): s is BreakerStage.Breaker => s.kind === "breaker")
    const registry = breakerStage?.registry
    const sheddingStage = stages.find((s): s is SheddingStage.Shedding => s.kind === "shedding")
    const rateLimitStage = stages.find((s): s is RateLimitStage.RateLimit => s.kind === "rateLimit")
    return {
      name,
      middleware,
      stages,
      inFlight: Effect.sync(observer.inFlight),
      breakers: Option.fromNullable(registry),
      breaker: (route) =>
        registry === undefined ? Effect.succeedNone : Effect.map(registry.get(route), (b) => Option.some(b)),
      routeOf: (request) => resolve(request).route,
      shedder: Option.map(Option.fromNullable(sheddingStage), (s) => s.shedder),
      limiter: rateLimitStage === undefined ? Option.none() : rateLimitStage.limiter
    } satisfies ResilientHttpServer
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
    const stages = yield* stagesOf(options, name)
    return yield* fromStages(stages, {
      name,
      ...(options.router === undefined ? {} : { router: options.router }),
      ...(options.routeName === undefined ? {} : { routeName: options.routeName }),
      patterns: Object.keys(options.routes ?? {})
    })
  })

/**
 * Provides `Server` built from `options`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Server, InvalidOptionsError> =>
  Layer.scoped(Server, make(options))
