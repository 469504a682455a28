/**
 * Circuit breakers that coordinate across the instances of a service through Redis (the one the
 * rate limiters already use): no new infrastructure, and opt-in per breaker.
 *
 * - `local`: the breaker of one instance, as `CircuitBreaker.make` builds it.
 * - `shared`: one state for every instance (gobreaker v2's shared state): an instance that trips
 *   opens the breaker everywhere, one that closes it (by a probe) closes it everywhere. The state
 *   outlives restarts: an instance started while the shared state is Open starts Open.
 * - `quorum(n)`: the breaker opens everywhere once `n` instances tripped on their own (each
 *   reports while its own breaker is not Closed); each then closes by its own probes (open period,
 *   half-open calls, `probe`). The quorum opens everyone once per time it is reached.
 *
 * Calls never wait for Redis: each instance decides on its local state, and a fiber syncs it every
 * `interval` with one script call. When Redis is down or slow the breaker runs on its local
 * state — its own trips, open period and probes — so it is never stuck; the next good round
 * catches up. Cluster modes need a state-machine policy (`consecutive`, `countWindow`,
 * `timeWindow`, `custom`), which can be opened and closed from outside.
 *
 * @since 0.2.0
 */
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.js"
import { InvalidOptionsError } from "./Errors.js"
import * as BreakerBuild from "./internal/breaker/build.js"
import * as Cluster from "./internal/breaker/cluster.js"
import { decodeOptions, Name, PositiveDuration, PositiveInt } from "./internal/options.js"
import * as Shadow from "./internal/shadow.js"
import type { RedisClient } from "./RedisStore.js"

/**
 * How a breaker coordinates with the other instances.
 *
 * @since 0.2.0
 * @category models
 */
export type Mode = Cluster.Mode

/**
 * No coordination: the breaker of this instance alone.
 *
 * @since 0.2.0
 * @category modes
 */
export const local: Mode = { _tag: "Local" }

/**
 * One state for every instance: a trip anywhere opens it everywhere, a close anywhere closes it
 * everywhere, and the state survives restarts.
 *
 * @since 0.2.0
 * @category modes
 */
export const shared: Mode = { _tag: "Shared" }

/**
 * Opens everywhere once `n` instances (at least 1) tripped on their own; each closes by its own
 * probes.
 *
 * @since 0.2.0
 * @category modes
 */
export const quorum = (n: number): Mode => ({ _tag: "Quorum", n })

/**
 * Options of `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly mode: Mode
  /** the Redis connection (`RedisStore.connect`, or an adapted client of your own) */
  readonly client: RedisClient
  /** names this instance in the quorum's reports (default: a random UUID per breaker) */
  readonly instance?: string | undefined
  /** key prefix (default `"resilience:breaker:"`); the key is `<prefix>{<breaker name>}` */
  readonly prefix?: string | undefined
  /** how often the state is synced (default 200 millis) */
  readonly interval?: Duration.DurationInput | undefined
  /** a sync slower than this is dropped (default 100 millis) */
  readonly timeout?: Duration.DurationInput | undefined
  /** how long a quorum report lives without renewal, e.g. after a crash (default 10 × `interval`) */
  readonly reportTtl?: Duration.DurationInput | undefined
  /** the breaker's key expires when nobody syncs it for this long (default 1 day) */
  readonly keyTtl?: Duration.DurationInput | undefined
}

const ModeSchema = () =>
  Schema.Union(
    Schema.Struct({ _tag: Schema.Literal("Local") }),
    Schema.Struct({ _tag: Schema.Literal("Shared") }),
    Schema.Struct({ _tag: Schema.Literal("Quorum"), n: PositiveInt })
  )

const OptionsSchema = () =>
  Schema.Struct({
    mode: ModeSchema(),
    client: Schema.Unknown,
    instance: Schema.optional(Name),
    prefix: Schema.optionalWith(Schema.String, { default: () => "resilience:breaker:" }),
    interval: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(200) }),
    timeout: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(100) }),
    reportTtl: Schema.optional(PositiveDuration),
    keyTtl: Schema.optionalWith(PositiveDuration, { default: () => Duration.days(1) })
  })

const decode = decodeOptions("CircuitBreakerCluster", OptionsSchema)

/**
 * Builds a breaker from `policy` that follows the cluster as `options.mode` says. Scoped: the sync
 * fiber lives in the scope, and a quorum member withdraws its report when the scope closes.
 * Fails with `InvalidOptionsError` for a bad option, and for a cluster mode on the adaptive
 * (`sre`) policy.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitBreakerCluster, RedisStore } from "effect-resilience"
 * import { Effect } from "effect"
 *
 * const payments = Effect.gen(function*() {
 *   const client = yield* RedisStore.connect("redis://127.0.0.1:6379")
 *   return yield* CircuitBreakerCluster.make(
 *     CircuitBreaker.consecutive({ name: "payments", threshold: 5, openFor: "30 seconds" }),
 *     { mode: CircuitBreakerCluster.quorum(2), client }
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  policy: CircuitBreaker.Policy,
  options: Options
): Effect.Effect<CircuitBreaker.CircuitBreaker, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const o = yield* decode(options)
    const breaker = yield* BreakerBuild.build(policy)
    if (o.mode._tag === "Local") {
      return yield* Shadow.attach<CircuitBreaker.CircuitBreaker>(breaker, Shadow.circuitBreaker)
    }
    if (!Cluster.supports(breaker)) {
      return yield* new InvalidOptionsError({
        module: "CircuitBreakerCluster",
        option: "mode",
        value: o.mode._tag,
        reason: "a cluster mode needs a state-machine policy (consecutive, countWindow, timeWindow, custom)"
      })
    }
    const interval = Duration.toMillis(o.interval)
    yield* Cluster.start(breaker, {
      client: options.client,
      mode: o.mode,
      key: `${o.prefix}{${breaker.name}}`,
      instance: o.instance ?? crypto.randomUUID(),
      intervalMillis: interval,
      timeoutMillis: Duration.toMillis(o.timeout),
      reportTtlMillis: o.reportTtl === undefined ? 10 * interval : Duration.toMillis(o.reportTtl),
      keyTtlMillis: Duration.toMillis(o.keyTtl)
    })
    // in shadow mode the cluster still opens and closes the breaker: only admission is lifted
    return yield* Shadow.attach<CircuitBreaker.CircuitBreaker>(breaker, Shadow.circuitBreaker)
  })

/**
 * Provides a clustered breaker under your own tag.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, CircuitBreaker.CircuitBreaker>,
  policy: CircuitBreaker.Policy,
  options: Options
): Layer.Layer<I, InvalidOptionsError> => Layer.scoped(tag, make(policy, options))
