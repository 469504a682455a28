/**
 * A service configuration in the spirit of go-zero's YAML, read with `effect/Config` (so from the
 * environment, a JSON/YAML object via `ConfigProvider.fromJson`, or any provider) and validated
 * with `effect/Schema`. A bad value fails at start-up with a `ConfigError` naming the key.
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `Name` | required | service name: names metrics, logs, the shedder and the limiter |
 * | `Mode` | `pro` | `dev` \| `test` \| `rt` \| `pre` \| `pro`; load shedding runs only in `pro` |
 * | `Timeout` | `3000` | request deadline, milliseconds or a duration (`"3 seconds"`); `0` switches it off |
 * | `CpuThreshold` | unset | set: go-zero's CPU shedder at this per-mille of the CPU quota, `0`–`999` (`0` switches shedding off); unset: the default shedder, which protects from a cold start |
 * | `MaxConns` | `10000` | requests in flight before 503; `0` switches the limit off |
 * | `RateLimit.Rate` | unset | requests per second per key; rate limiting is on when set |
 * | `RateLimit.Burst` | `Rate` | bucket size |
 * | `RateLimit.KeyBy` | `ip` | `ip`, or `header:<name>` (e.g. `header:x-user-id`) |
 * | `Breaker.K` | `1.5` | SRE breaker multiplier: higher tolerates more failures |
 * | `Breaker.Protection` | `5` | requests always let through per window |
 * | `Breaker.Window` | `10 seconds` | rolling window |
 * | `Breaker.Buckets` | `40` | buckets in the window |
 * | `Middlewares.MaxConns` / `.Breaker` / `.Shedding` / `.Timeout` / `.RateLimit` | `true` | switch a layer off |
 *
 * @example
 * ```ts
 * import { ConfigProvider, Layer } from "effect"
 * import { Config } from "effect-resilience"
 *
 * // go-zero style YAML, parsed by your favourite YAML reader
 * const yaml = { Name: "user-api", Mode: "pro", Timeout: 30000, MaxConns: 1000, RateLimit: { Rate: 100, Burst: 100 } }
 * const ServerLive = Config.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(yaml))))
 * ```
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as EffectConfig from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { InvalidOptionsError } from "./Errors.js"
import { parseDurationInput } from "./internal/options.js"
import * as RateLimiter from "./RateLimiter.js"
import * as ResilientHttpServer from "./ResilientHttpServer.js"

/**
 * go-zero's service modes.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "dev" | "test" | "rt" | "pre" | "pro"

/**
 * How the rate-limit key of a request is found.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyBy = { readonly _tag: "ip" } | { readonly _tag: "header"; readonly header: string }

/**
 * The decoded configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServiceConfig {
  readonly name: string
  readonly mode: Mode
  readonly timeout: Option.Option<Duration.Duration>
  /** go-zero's CPU threshold when set; the server's default shedder when not */
  readonly cpuThreshold: Option.Option<number>
  readonly maxConns: number
  readonly rateLimit: Option.Option<{ readonly rate: number; readonly burst: number; readonly keyBy: KeyBy }>
  readonly breaker: {
    readonly k: number
    readonly protection: number
    readonly window: Duration.Duration
    readonly buckets: number
  }
  readonly middlewares: {
    readonly maxConns: boolean
    readonly breaker: boolean
    readonly shedding: boolean
    readonly timeout: boolean
    readonly rateLimit: boolean
  }
}

/**
 * The decoded configuration as a service, provided by `layerConfig` next to the middleware.
 *
 * @since 0.1.0
 * @category tags
 */
export class ServiceConfigTag
  extends Context.Tag("effect-resilience/ServiceConfig")<ServiceConfigTag, ServiceConfig>()
{}

// ---------------------------------------------------------------------------------------------
// value schemas: every value arrives as a string from the provider

const IntFromString = (message: string, predicate: (n: number) => boolean) =>
  Schema.NumberFromString.pipe(
    Schema.filter((n) => (Number.isSafeInteger(n) && predicate(n)) || message)
  )

const PositiveNumberFromString = Schema.NumberFromString.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0) || "expected a positive number")
)

/** Milliseconds (`"3000"`, go-zero's unit) or a duration (`"3 seconds"`). */
const DurationFromString = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (s, _, ast) => {
    const trimmed = s.trim()
    const input = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed
    const parsed = parseDurationInput(input)
    return Either.isRight(parsed)
      ? Either.right(parsed.right)
      : Either.left(new ParseResult.Type(ast, s, parsed.left))
  },
  encode: (d) => Either.right(`${Duration.toMillis(d)}`)
})

const PositiveDurationFromString = DurationFromString.pipe(
  Schema.filter((d) => Duration.toMillis(d) > 0 || "expected a positive duration")
)

const KeyByFromString = Schema.transformOrFail(Schema.String, Schema.Any as Schema.Schema<KeyBy>, {
  strict: true,
  decode: (s, _, ast) => {
    const trimmed = s.trim()
    if (trimmed === "ip") return Either.right({ _tag: "ip" } as const)
    const m = /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(trimmed)
    if (m !== null) return Either.right({ _tag: "header", header: m[1].toLowerCase() } as const)
    return Either.left(new ParseResult.Type(ast, s, `expected "ip" or "header:<name>"`))
  },
  encode: (k) => Either.right(k._tag === "ip" ? "ip" : `header:${k.header}`)
})

const setting = <A>(key: string, schema: Schema.Schema<A, string>, fallback: A) =>
  EffectConfig.withDefault(Schema.Config(key, schema), fallback)

/**
 * The configuration, read at the provider's root (wrap it in `Config.nested("Api")` to read a
 * section).
 *
 * @since 0.1.0
 * @category config
 */
export const serviceConfig: EffectConfig.Config<ServiceConfig> = EffectConfig.all({
  name: Schema.Config("Name", Schema.String.pipe(Schema.filter((s) => s.trim().length > 0 || "expected a name"))),
  mode: EffectConfig.withDefault(EffectConfig.literal("dev", "test", "rt", "pre", "pro")("Mode"), "pro" as Mode),
  timeout: setting("Timeout", DurationFromString, Duration.seconds(3)).pipe(
    EffectConfig.map((d) => Duration.toMillis(d) === 0 ? Option.none() : Option.some(d))
  ),
  cpuThreshold: EffectConfig.option(
    Schema.Config("CpuThreshold", IntFromString("expected an integer from 0 to 999", (n) => n >= 0 && n < 1000))
  ),
  maxConns: setting("MaxConns", IntFromString("expected a non-negative integer", (n) => n >= 0), 10_000),
  rateLimit: EffectConfig.nested(
    EffectConfig.all({
      rate: EffectConfig.option(Schema.Config("Rate", PositiveNumberFromString)),
      burst: EffectConfig.option(Schema.Config("Burst", IntFromString("expected a positive integer", (n) => n >= 1))),
      keyBy: setting("KeyBy", KeyByFromString, { _tag: "ip" } as KeyBy)
    }),
    "RateLimit"
  ).pipe(
    EffectConfig.map(({ burst, keyBy, rate }) =>
      Option.map(rate, (rate) => ({ rate, burst: Option.getOrElse(burst, () => Math.max(1, Math.ceil(rate))), keyBy }))
    )
  ),
  breaker: EffectConfig.nested(
    EffectConfig.all({
      k: setting(
        "K",
        Schema.NumberFromString.pipe(Schema.filter((n) => (Number.isFinite(n) && n > 1) || "expected a number > 1")),
        1.5
      ),
      protection: setting("Protection", IntFromString("expected a non-negative integer", (n) => n >= 0), 5),
      window: setting("Window", PositiveDurationFromString, Duration.seconds(10)),
      buckets: setting("Buckets", IntFromString("expected a positive integer", (n) => n >= 1), 40)
    }),
    "Breaker"
  ),
  middlewares: EffectConfig.nested(
    EffectConfig.all({
      maxConns: EffectConfig.withDefault(EffectConfig.boolean("MaxConns"), true),
      breaker: EffectConfig.withDefault(EffectConfig.boolean("Breaker"), true),
      shedding: EffectConfig.withDefault(EffectConfig.boolean("Shedding"), true),
      timeout: EffectConfig.withDefault(EffectConfig.boolean("Timeout"), true),
      rateLimit: EffectConfig.withDefault(EffectConfig.boolean("RateLimit"), true)
    }),
    "Middlewares"
  )
})

/**
 * Middleware options equivalent to a configuration. Load shedding runs only in `pro` mode and
 * unless `CpuThreshold` is `0`: go-zero's CPU shedder when `CpuThreshold` is set, the server's
 * default shedder (event-loop utilization, protective from a cold start) when it is not.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toOptions = (config: ServiceConfig): ResilientHttpServer.Options => {
  const { breaker, middlewares } = config
  const cpuThreshold = Option.getOrUndefined(config.cpuThreshold)
  const shedding = middlewares.shedding && config.mode === "pro" && cpuThreshold !== 0
  const rateLimit = middlewares.rateLimit ? Option.getOrUndefined(config.rateLimit) : undefined
  return {
    name: config.name,
    maxConns: middlewares.maxConns && config.maxConns > 0 ? config.maxConns : false,
    timeout: middlewares.timeout ? Option.getOrElse(config.timeout, () => false as const) : false,
    shedding: !shedding ? false : cpuThreshold === undefined ? {} : { cpuThreshold },
    breaker: middlewares.breaker
      ? {
        policy: (route) =>
          CircuitBreaker.sre({
            name: route,
            k: breaker.k,
            protection: breaker.protection,
            window: breaker.window,
            buckets: breaker.buckets
          })
      }
      : false,
    rateLimit: rateLimit === undefined ? false : {
      algorithm: RateLimiter.tokenBucket({ rate: rateLimit.rate, burst: rateLimit.burst }),
      ...(rateLimit.keyBy._tag === "header"
        ? { key: keyFromHeader(rateLimit.keyBy.header) }
        : {})
    }
  }
}

const keyFromHeader = (header: string) => (request: HttpServerRequest.HttpServerRequest): string =>
  request.headers[header] ?? Option.getOrElse(request.remoteAddress, () => "unknown")

/**
 * Reads the configuration, builds the whole middleware from it, and provides both.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: EffectConfig.Config<ServiceConfig> = serviceConfig,
  /** what a configuration cannot say: the `router` served (one breaker per route), `routes` */
  extra: Pick<ResilientHttpServer.Options, "router" | "routes" | "routeName"> = {}
): Layer.Layer<ResilientHttpServer.Server | ServiceConfigTag, ConfigError.ConfigError | InvalidOptionsError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const decoded = yield* config
    const server = yield* ResilientHttpServer.make({ ...toOptions(decoded), ...extra })
    yield* Effect.logInfo("resilient HTTP middleware configured").pipe(
      Effect.annotateLogs({ service: decoded.name, mode: decoded.mode })
    )
    return Context.make(ServiceConfigTag, decoded).pipe(Context.add(ResilientHttpServer.Server, server))
  }))

/**
 * Reads the configuration once (without building anything).
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  config: EffectConfig.Config<ServiceConfig> = serviceConfig
): Effect.Effect<ServiceConfig, ConfigError.ConfigError> => config
