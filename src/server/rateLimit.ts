/**
 * The rate-limit stage: keyed by client IP or your own key. Over the limit → `429 rate_limited`
 * with `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `Retry-After`; admitted
 * responses carry the `RateLimit-*` headers too. With `onExceeded: "wait"` (token bucket and GCRA)
 * a request over the limit reserves its turn and waits up to `maxWait`; a client that goes away
 * while waiting leaves at once, its reservation is cancelled and its handler never runs.
 *
 * @since 0.3.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { InvalidOptionsError, type RateLimitedError, type StoreError } from "../Errors.js"
import * as http from "../internal/http.js"
import * as options_ from "../internal/options.js"
import { toDuration } from "../internal/ratelimit/core.js"
import type { RequestRecord, Stage } from "../internal/server/record.js"
import * as reject from "../internal/server/reject.js"
import * as SyncAdmission from "../internal/syncAdmission.js"
import * as RateLimiter from "../RateLimiter.js"
import * as RateLimiterStore from "../RateLimiterStore.js"

/**
 * How the rate-limit key of a request is found. The default is the client IP
 * (`request.remoteAddress`, or the first `X-Forwarded-For` hop with `trustProxy: true`).
 *
 * @since 0.3.0
 * @category models
 */
export type KeyFunction = (request: HttpServerRequest.HttpServerRequest) => string | Effect.Effect<string>

/**
 * One limit: a ready `limiter`, or an `algorithm` built on the `RateLimiterStore` in context (in
 * memory when none is provided). Several limits on one route — per second and per hour — are
 * `algorithm: [...]` or `limiters: [...]`: a request is admitted only if every one admits it, and
 * takes from none of them otherwise (`RateLimiter.all`); the 429 reports the limit that refused
 * with the longest `Retry-After`. Several limits answer at once (`onExceeded: "wait"` needs one).
 *
 * @since 0.3.0
 * @category models
 */
export interface LimitOptions {
  readonly limiter?: RateLimiter.RateLimiter
  readonly algorithm?: RateLimiter.Algorithm | ReadonlyArray<RateLimiter.Algorithm>
  /**
   * several ready limiters, on one store, applied all-or-nothing
   *
   * @since 0.3.0
   */
  readonly limiters?: ReadonlyArray<RateLimiter.RateLimiter>
  /** the rate-limit key; default: the client IP */
  readonly key?: KeyFunction
  /** when the limiter's store fails: admit the request (default) or answer 503 */
  readonly onStoreError?: "allow" | "reject"
  /** honour `X-Forwarded-For` for the default key (default false) */
  readonly trustProxy?: boolean
  /** over the limit: answer 429 at once (default), or wait for a turn up to `maxWait` */
  readonly onExceeded?: "reject" | "wait"
  /** the longest a request waits for its turn with `onExceeded: "wait"` (default 1 second) */
  readonly maxWait?: Duration.DurationInput
}

/**
 * Options of `make`: the limit for every route, and per-route overrides (`false` switches rate
 * limiting off for the route, `true` keeps the shared limit, an object is the route's own).
 *
 * @since 0.3.0
 * @category models
 */
export interface Options extends LimitOptions {
  /** names the limiter and the rejection metric (default `"http"`) */
  readonly name?: string
  readonly routes?: Readonly<Record<string, boolean | LimitOptions>>
}

const Fn = Schema.declare((u: unknown): u is (...a: ReadonlyArray<any>) => any => typeof u === "function", {
  message: () => "expected a function"
})

const AlgorithmSchema = Schema.Struct({ _tag: Schema.String, options: Schema.Unknown })

const LimitFields = {
  limiter: Schema.optional(Schema.Object),
  algorithm: Schema.optional(Schema.Union(AlgorithmSchema, Schema.Array(AlgorithmSchema))),
  limiters: Schema.optional(Schema.Array(Schema.Object)),
  key: Schema.optional(Fn),
  onStoreError: Schema.optional(Schema.Literal("allow", "reject")),
  trustProxy: Schema.optional(Schema.Boolean),
  onExceeded: Schema.optional(Schema.Literal("reject", "wait")),
  maxWait: Schema.optional(options_.NonNegativeDuration)
}

/**
 * The schema of `Options`.
 *
 * @since 0.3.0
 * @category schemas
 */
export const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  ...LimitFields,
  routes: Schema.optional(Schema.Record({
    key: Schema.String,
    value: Schema.Union(Schema.Boolean, Schema.Struct(LimitFields))
  }))
})

const decode = options_.decodeOptions("ResilientHttpServer.rateLimit", OptionsSchema, { exact: true })

interface Limit {
  /** the limiter, or the first of several */
  readonly limiter: RateLimiter.RateLimiter
  readonly take: (key: string) => Effect.Effect<RateLimiter.Decision, StoreError | RateLimitedError>
  readonly key: (request: HttpServerRequest.HttpServerRequest) => string | Effect.Effect<string>
  readonly onStoreError: "allow" | "reject"
  /** millis a request may wait for its turn; undefined: never waits */
  readonly maxWait: Duration.Duration | undefined
  /** the limiter's synchronous step, when its store decides in this process and the limit never waits */
  readonly sync: SyncAdmission.Limiter | undefined
}

/**
 * The `RateLimit-*` headers of an admitted request: written on its Node response at once (the
 * platform's `writeHead` merges them; rebuilding the response per request costs far more), or kept
 * for `respond` where there is no Node response.
 */
const keepHeaders = (record: RequestRecord, headers: Record<string, string>): void => {
  const response = record.response
  if (response === undefined || response.headersSent) {
    record.headers = headers
    return
  }
  for (const name in headers) response.setHeader(name, headers[name])
}

const clientIp = (trustProxy: boolean) => (request: HttpServerRequest.HttpServerRequest): string => {
  if (trustProxy) {
    const forwarded = request.headers["x-forwarded-for"]
    if (forwarded !== undefined && forwarded.length > 0) return forwarded.split(",")[0].trim()
  }
  return Option.getOrElse(request.remoteAddress, () => "unknown")
}

/** The store in context, or a memory store living in the current scope. */
const storeOf = Effect.flatMap(
  Effect.serviceOption(RateLimiterStore.RateLimiterStore),
  (found) =>
    Option.isSome(found)
      ? Effect.succeed(found.value)
      : Effect.map(Layer.build(RateLimiterStore.layerMemory()), (ctx) =>
        Context.get(ctx, RateLimiterStore.RateLimiterStore))
)

const buildLimit = (
  name: string,
  option: string,
  options: LimitOptions
): Effect.Effect<Limit, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const several = yield* severalOf(name, option, options)
    if (several !== undefined) {
      if (options.onExceeded === "wait") {
        return yield* new InvalidOptionsError({
          module: "ResilientHttpServer.rateLimit",
          option: `${option === "rateLimit" ? "" : `${option}.`}onExceeded`,
          value: "wait",
          reason: "several limits answer at once; waiting needs a single token bucket or GCRA"
        })
      }
      return {
        limiter: several.limiters[0],
        take: several.take,
        key: options.key ?? clientIp(options.trustProxy ?? false),
        onStoreError: options.onStoreError ?? "allow",
        maxWait: undefined,
        sync: undefined
      }
    }
    let limiter = options.limiter
    if (limiter === undefined) {
      if (options.algorithm === undefined || Array.isArray(options.algorithm)) {
        return yield* new InvalidOptionsError({
          module: "ResilientHttpServer.rateLimit",
          option,
          value: undefined,
          reason: "expected a limiter or an algorithm"
        })
      }
      const store = yield* storeOf
      limiter = yield* RateLimiter.make({ name, algorithm: options.algorithm as RateLimiter.Algorithm }).pipe(
        Effect.provideService(RateLimiterStore.RateLimiterStore, store)
      )
    }
    const wait = options.onExceeded === "wait"
    if (wait && limiter.algorithm._tag !== "TokenBucket" && limiter.algorithm._tag !== "Gcra") {
      return yield* new InvalidOptionsError({
        module: "ResilientHttpServer.rateLimit",
        option: `${option === "rateLimit" ? "" : `${option}.`}onExceeded`,
        value: "wait",
        reason: "only the token bucket and GCRA can wait for a turn"
      })
    }
    const single = limiter
    return {
      limiter,
      take: (key: string) => single.take(key),
      key: options.key ?? clientIp(options.trustProxy ?? false),
      onStoreError: options.onStoreError ?? "allow",
      maxWait: wait ? Duration.decode(options.maxWait ?? "1 second") : undefined,
      sync: wait ? undefined : SyncAdmission.limiterOf(limiter)
    }
  })

/** Several limits (`limiters`, or an array of algorithms built as `<name>.<i>`) as one group. */
const severalOf = (
  name: string,
  option: string,
  options: LimitOptions
): Effect.Effect<RateLimiter.All | undefined, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    if (options.limiters !== undefined) {
      return yield* RateLimiter.all(options.limiters).pipe(
        Effect.mapError((e) =>
          new InvalidOptionsError({ module: "ResilientHttpServer.rateLimit", option, value: e.value, reason: e.reason })
        )
      )
    }
    const algorithms = options.algorithm
    if (!Array.isArray(algorithms)) return undefined
    const store = yield* storeOf
    const limiters = yield* Effect.forEach(
      algorithms as ReadonlyArray<RateLimiter.Algorithm>,
      (algorithm, i) => RateLimiter.make({ name: `${name}.${i}`, algorithm })
    ).pipe(Effect.provideService(RateLimiterStore.RateLimiterStore, store))
    return yield* RateLimiter.all(limiters)
  })

/**
 * A rate-limit stage, with its shared limiter.
 *
 * @since 0.3.0
 * @category models
 */
export interface RateLimit extends Stage {
  readonly kind: "rateLimit"
  readonly limiter: Option.Option<RateLimiter.RateLimiter>
}

/**
 * Builds the stage; limiters it builds live in the current scope. Without `limiter` or
 * `algorithm` only routes with their own limit are limited.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<RateLimit, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* decode(options)
    const name = options.name ?? "http"
    const shared = options.limiter === undefined && options.algorithm === undefined
      ? undefined
      : yield* buildLimit(name, "rateLimit", options)
    const routes = new Map<string, Limit | undefined>()
    for (const [pattern, route] of Object.entries(options.routes ?? {})) {
      routes.set(
        pattern,
        route === true
          ? shared
          : route === false
          ? undefined
          : yield* buildLimit(`${name} ${pattern}`, `routes.${pattern}`, route)
      )
    }
    const rejected = reject.rejecter(name)
    const limitOf = (record: RequestRecord): Limit | undefined =>
      record.pattern !== undefined && routes.has(record.pattern) ? routes.get(record.pattern) : shared

    const limited = (record: RequestRecord, e: RateLimitedError) => {
      const retryAfter = e.retryAfter ?? Duration.seconds(1)
      return rejected(
        "rate_limited",
        429,
        e.message,
        record.route,
        Option.some(retryAfter),
        http.rateLimitHeaders({ limit: e.limit, remaining: e.remaining, resetAfter: e.resetAfter ?? retryAfter })
      )
    }

    const storeFailed = (record: RequestRecord, limit: Limit, e: StoreError | InvalidOptionsError) =>
      limit.onStoreError === "allow"
        ? Effect.logWarning("rate limiter store failed; admitting the request").pipe(
          Effect.annotateLogs({ route: record.route, limiter: limit.limiter.name, error: e.message })
        )
        : Effect.fail(
          rejected("limiter_unavailable", 503, "the rate limiter is unavailable", record.route, Option.none())
        )

    const take = (record: RequestRecord, limit: Limit, key: string) =>
      Effect.matchEffect(limit.take(key), {
        onFailure: (e) =>
          e._tag === "RateLimitedError" ? Effect.fail(limited(record, e)) : storeFailed(record, limit, e),
        onSuccess: (decision) => {
          const headers = http.rateLimitHeaders(decision)
          if (!decision.allowed) {
            return Effect.fail(
              rejected(
                "rate_limited",
                429,
                `rate limit exceeded (limit ${decision.limit})`,
                record.route,
                Option.some(decision.retryAfter),
                headers
              )
            )
          }
          keepHeaders(record, headers)
          return Effect.void
        }
      })

    // waits for a reserved turn; the wait is interruptible so a client that goes away leaves at once
    const wait = (record: RequestRecord, limit: Limit, key: string, maxWait: Duration.Duration) =>
      Effect.matchEffect(limit.limiter.reserve(key, 1, maxWait), {
        onFailure: (e) =>
          e._tag === "RateLimitedError" ? Effect.fail(limited(record, e)) : storeFailed(record, limit, e),
        onSuccess: (reservation) => {
          keepHeaders(record, http.rateLimitHeaders(reservation.decision))
          if (Duration.toMillis(reservation.delay) <= 0) return Effect.void
          record.reservation = reservation
          return Effect.zipRight(
            Effect.interruptible(Effect.sleep(reservation.delay)),
            Effect.sync(() => {
              record.reservation = undefined
            })
          )
        }
      })

    // a limit is the same request after request: its text is made when it changes
    let lastLimit = NaN
    let lastLimitText = ""
    const limitText = (limit: number): string => {
      if (limit !== lastLimit) {
        lastLimit = limit
        lastLimitText = http.intText(limit)
      }
      return lastLimitText
    }

    // one synchronous step; the headers go on the Node response, or the decision is kept for `respond`
    const takeNow = (record: RequestRecord, sync: SyncAdmission.Limiter, key: string) => {
      const raw = sync.take(key)
      if (raw.allowed) {
        const response = record.response
        if (response !== undefined && !response.headersSent) {
          response.setHeader("ratelimit-limit", limitText(raw.limit))
          response.setHeader("ratelimit-remaining", http.intText(Math.max(0, Math.floor(raw.remaining))))
          response.setHeader("ratelimit-reset", http.intText(Math.max(0, Math.ceil(raw.resetAfterMs / 1000))))
        } else {
          record.limitDecision = raw
        }
        return undefined
      }
      const headers = http.rateLimitHeadersOf(raw.limit, raw.remaining, raw.resetAfterMs)
      const retryAfter = toDuration(raw.retryAfterMs)
      return Effect.fail(
        rejected(
          "rate_limited",
          429,
          `rate limit exceeded (limit ${raw.limit})`,
          record.route,
          Option.some(retryAfter),
          headers
        )
      )
    }

    return {
      kind: "rateLimit",
      limiter: Option.map(Option.fromNullable(shared), (l) => l.limiter),
      admit: (record: RequestRecord) => {
        const limit = limitOf(record)
        if (limit === undefined) return undefined
        const k = limit.key(record.request)
        const sync = limit.sync
        if (sync !== undefined && typeof k === "string") return takeNow(record, sync, k)
        const run = (key: string) =>
          limit.maxWait === undefined ? take(record, limit, key) : wait(record, limit, key, limit.maxWait)
        return typeof k === "string" ? run(k) : Effect.flatMap(k, run)
      },
      // only where the headers could not be written on the Node response at admission
      respond: (record, response) => {
        const raw = record.limitDecision
        const headers = raw === undefined
          ? record.headers
          : http.rateLimitHeadersOf(raw.limit, raw.remaining, raw.resetAfterMs)
        return headers === undefined ? response : HttpServerResponse.setHeaders(response, headers)
      },
      release: (record: RequestRecord) => {
        const reservation = record.reservation
        if (reservation === undefined) return undefined
        record.reservation = undefined
        // the turn was not used: give it back (x/time/rate's Cancel)
        return Effect.catchAllCause(
          reservation.cancel,
          (cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logDebug("reservation cancel failed", cause)
        )
      }
    }
  })
