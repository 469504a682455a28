/**
 * A `RateLimiterStore` on Redis (one server or a Cluster), so that every instance of a service
 * shares the same limits.
 *
 * Each algorithm runs as one Lua script that mirrors its TypeScript step function in integer
 * microseconds: it reads the time from Redis `TIME` (one clock for every instance), reads and
 * writes one key per identity (`<prefix><limiter>:{<key>}`, the identity wrapped in a Cluster hash
 * tag) and keeps that key's expiry in the same script. The limiter's parameters are part of the
 * script, so a plain take sends only the key. Scripts are loaded once and called by SHA; after a
 * `SCRIPT FLUSH`, a restart or on a new Cluster node the `NOSCRIPT` reply makes the store send the
 * script whole, once. On a single server, the plain takes of one limiter issued while another of
 * its calls is in flight go together as one script call over all their keys (see `batchMaxKeys`).
 *
 * Every call has a timeout (default 100 ms) that counts only Redis's lateness, not a busy Node
 * process's: see `timeout`. After `failureThreshold` consecutive failures, or a failed health
 * ping, the store's circuit breaker opens and the store is in failure mode until the first good
 * probe (every `healthCheckInterval`). What happens then is the `onError` option:
 *
 * - `"fail-closed"`: calls fail with `StoreError` (never `RateLimitedError`: a broken store is
 *   not a client over its limit); `protect` does not run the effect.
 * - `"fail-open"`: the request is admitted (the decision reports the full limit remaining).
 * - `"local-fallback"` (default, as go-zero): decisions move to an in-memory limiter holding this
 *   instance's share of the quota (the limit divided by the live instances, counted from their
 *   heartbeats while Redis was up).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { InvalidOptionsError, StoreError } from "./Errors.js"
import { decodeOptions, NonNegativeInt, PositiveDuration, PositiveInt } from "./internal/options.js"
import { connectCluster, connectWithin } from "./internal/ratelimit/redisConnect.js"
import { makeEngine } from "./internal/ratelimit/redisStore.js"
import { RateLimiterStore } from "./RateLimiterStore.js"

/**
 * The few Redis operations the store needs. Adapt any client to it: `fromNodeRedis` for `redis`
 * (node-redis), `fromNodeRedisCluster` for its Cluster client, `fromIoredis` for ioredis.
 * `evalsha` must reject with an error whose message contains `NOSCRIPT` when the script is not
 * loaded (all of them do). `eval`, when present, sends a script whole; it is routed by key, which
 * is what a Cluster needs to load a script on the right node.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisClient {
  readonly evalsha: (sha: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => Promise<unknown>
  readonly scriptLoad: (script: string) => Promise<unknown>
  readonly ping: () => Promise<unknown>
  readonly quit: () => Promise<unknown>
  /** @since 0.2.0 */
  readonly eval?:
    | ((script: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => Promise<unknown>)
    | undefined
  /**
   * true when the client talks to one server (not a Cluster): the store may then send the takes
   * issued together as one script call over all their keys (see `batchMaxKeys`). Unset: no
   * batches, which is right for any client.
   *
   * @since 0.4.0
   */
  readonly singleNode?: boolean | undefined
}

/**
 * The part of a node-redis (v5/v6) client the adapter uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeRedisLike {
  evalSha(sha: string, options: { keys: Array<string>; arguments: Array<string> }): Promise<unknown>
  scriptLoad(script: string): Promise<unknown>
  ping(): Promise<unknown>
  close(): Promise<unknown>
  /** used when present: a raw command skips the client's argument parsing */
  sendCommand?(args: Array<string>): Promise<unknown>
}

/**
 * Adapts a connected node-redis client (`createClient` from `redis`), a single server: takes may
 * be batched. Concurrent calls issued in the same tick are written to the socket together
 * (node-redis pipelines them). Create it with
 * `disableOfflineQueue: true` so that calls fail at once while it is disconnected instead of
 * queueing until the timeout, and with `commandOptions: { timeout: 0 }`: node-redis v6 otherwise
 * arms a 5 s timer per command, which the store does not need (it has its own) and which costs
 * more than the rest of the call.
 *
 * @since 0.1.0
 * @category adapters
 */
export const fromNodeRedis = (client: NodeRedisLike): RedisClient => {
  const send = client.sendCommand?.bind(client)
  return {
    evalsha: send !== undefined
      ? (sha, keys, args) =>
        send(
          keys.length === 1 && args.length === 0
            ? ["EVALSHA", sha, "1", keys[0]]
            : ["EVALSHA", sha, String(keys.length), ...keys, ...args]
        )
      : (sha, keys, args) => client.evalSha(sha, { keys: keys as Array<string>, arguments: args as Array<string> }),
    ...(send !== undefined ?
      {
        eval: (script: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) =>
          send(["EVAL", script, String(keys.length), ...keys, ...args])
      } :
      {}),
    scriptLoad: (script) => client.scriptLoad(script),
    ping: () => client.ping(),
    quit: () => client.close(),
    singleNode: true
  }
}

/**
 * The part of a node-redis Cluster client (`createCluster`) the adapter uses.
 *
 * @since 0.2.0
 * @category models
 */
export interface NodeRedisClusterLike {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: Array<string>): Promise<unknown>
  close(): Promise<unknown>
}

/**
 * Adapts a connected node-redis Cluster client. Every script call names one key, so it goes to
 * the node owning that key's slot (following `MOVED` / `ASK` through a resharding or a failover);
 * a node that does not have the script yet gets it whole once (`NOSCRIPT`, then `EVAL`).
 *
 * @since 0.2.0
 * @category adapters
 */
export const fromNodeRedisCluster = (cluster: NodeRedisClusterLike): RedisClient => ({
  evalsha: (sha, keys, args) =>
    cluster.sendCommand(keys[0], false, ["EVALSHA", sha, String(keys.length), ...keys, ...args]),
  eval: (script, keys, args) =>
    cluster.sendCommand(keys[0], false, ["EVAL", script, String(keys.length), ...keys, ...args]),
  // scripts reach each node on first use (`eval` above); there is no one node to load them on
  scriptLoad: () => Promise.resolve(undefined),
  ping: () => cluster.sendCommand(undefined, true, ["PING"]),
  quit: () => cluster.close()
})

/**
 * The part of an ioredis client the adapter uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface IoredisLike {
  /** false on a `Redis` client, true on a `Cluster` */
  readonly isCluster?: boolean | undefined
  evalsha(sha: string, numKeys: number, ...keysAndArgs: Array<string>): Promise<unknown>
  script(subcommand: "LOAD", script: string): Promise<unknown>
  ping(): Promise<unknown>
  quit(): Promise<unknown>
}

/**
 * Adapts an ioredis client (`new Redis(...)`, or a `Cluster`: its `isCluster` keeps takes out of
 * batches). Consider `enableOfflineQueue: false` and
 * `enableAutoPipelining: true` for the same behaviour as the node-redis adapter.
 *
 * @since 0.1.0
 * @category adapters
 */
export const fromIoredis = (client: IoredisLike): RedisClient => ({
  evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
  scriptLoad: (script) => client.script("LOAD", script),
  ping: () => client.ping(),
  quit: () => client.quit(),
  singleNode: client.isCluster === false
})

/**
 * What the store does while Redis fails or does not answer within `timeout`.
 *
 * @since 0.1.0
 * @category models
 */
export type OnError = "fail-open" | "fail-closed" | "local-fallback"

/**
 * Options of the Redis store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** connect to this URL (`redis://127.0.0.1:6379`); the layer owns and closes the client */
  readonly url?: string | undefined
  /** or use this client; the layer does not close it */
  readonly client?: RedisClient | undefined
  /** prefix of every key (default `"rl:"`) */
  readonly prefix?: string | undefined
  /** default `"local-fallback"` */
  readonly onError?: OnError | undefined
  /**
   * How long Redis may take to answer a call (default 100 ms). Event-loop lag during the call is
   * not counted (a reply that arrived while the process was busy is read before the call is
   * judged late).
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** keys per limiter in the local fallback (default 100,000) */
  readonly fallbackMaxKeys?: number | undefined
  /** how often the store probes Redis while in failure mode (default 100 ms) */
  readonly healthCheckInterval?: Duration.DurationInput | undefined
  /**
   * how often an instance renews its heartbeat, which counts the live instances and doubles as a
   * health ping while Redis is up (default 1 second; an instance counts for 3 intervals)
   *
   * @since 0.2.0
   */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /**
   * consecutive failed calls that put the store in failure mode (default 3)
   *
   * @since 0.2.0
   */
  readonly failureThreshold?: number | undefined
  /**
   * remember up to this many refused keys and refuse them locally until their `retryAfter` (default
   * 0: off). Never more permissive than Redis; saves the round trips of a client that keeps
   * knocking.
   *
   * @since 0.2.0
   */
  readonly deniedCacheMaxKeys?: number | undefined
  /**
   * On a single-node client (`RedisClient.singleNode`), the plain takes of one limiter issued in
   * the same tick go to Redis as one script call over all their keys, at most this many (default
   * 32; 1: each take is its own call). The batch decides as the same takes one after another at
   * one instant would, each take keeps its own timeout, and a failed batch fails each of its
   * takes. Reservations and waits are never batched.
   *
   * @since 0.4.0
   */
  readonly batchMaxKeys?: number | undefined
}

const OptionsSchema = Schema.Struct({
  prefix: Schema.optionalWith(Schema.String, { default: () => "rl:" }),
  onError: Schema.optionalWith(Schema.Literal("fail-open", "fail-closed", "local-fallback"), {
    default: () => "local-fallback" as const
  }),
  timeout: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(100) }),
  fallbackMaxKeys: Schema.optionalWith(PositiveInt, { default: () => 100_000 }),
  healthCheckInterval: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(100) }),
  heartbeatInterval: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(1) }),
  failureThreshold: Schema.optionalWith(PositiveInt, { default: () => 3 }),
  deniedCacheMaxKeys: Schema.optionalWith(NonNegativeInt, { default: () => 0 }),
  batchMaxKeys: Schema.optionalWith(PositiveInt, { default: () => 32 })
})

/**
 * The store over a `RedisClient`. Needs a `Scope`: the health and heartbeat fiber and the timeout
 * timer live in it, and closing it withdraws this instance's heartbeat.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  client: RedisClient,
  options: Omit<Options, "url" | "client"> = {}
): Effect.Effect<RateLimiterStore["Type"], InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const o = yield* decodeOptions("RedisStore", OptionsSchema)(options)
    const engine = yield* makeEngine(client, {
      prefix: o.prefix,
      onError: o.onError,
      timeoutMs: Duration.toMillis(o.timeout),
      fallbackMaxKeys: o.fallbackMaxKeys,
      healthCheckInterval: o.healthCheckInterval,
      heartbeatInterval: o.heartbeatInterval,
      failureThreshold: o.failureThreshold,
      deniedCacheMaxKeys: o.deniedCacheMaxKeys,
      batchMaxKeys: o.batchMaxKeys
    })
    return RateLimiterStore.of({
      name: "redis",
      prepare: engine.prepare,
      prepareAll: engine.prepareAll,
      prepareView: engine.prepareView
    })
  })

const ConnectOptionsSchema = Schema.Struct({
  connectTimeout: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(2) })
})

const decodeConnectOptions = decodeOptions("RedisStore", ConnectOptionsSchema)

/**
 * Connects a node-redis client for `url`, configured for a rate-limit store: no offline queue
 * (calls fail at once while disconnected), no per-command timer of its own (the store's timeout
 * covers every call) and quick reconnects. Closed with the scope. `connectTimeout` (default
 * 2 seconds) must be positive, else `InvalidOptionsError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  url: string,
  options: { readonly connectTimeout?: Duration.DurationInput | undefined } = {}
): Effect.Effect<RedisClient, StoreError | InvalidOptionsError, Scope.Scope> =>
  Effect.flatMap(decodeConnectOptions(options), (o) =>
    Effect.map(
      connectWithin(url, Duration.toMillis(o.connectTimeout)),
      (client) => fromNodeRedis(client as unknown as NodeRedisLike)
    ))

const noAddress = new InvalidOptionsError({
  module: "RedisStore",
  option: "url",
  value: undefined,
  reason: "expected a url or a client"
})

/**
 * The Redis store as a layer, from a `url` (the layer owns the connection) or a `client`.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Context, Layer } from "effect"
 * import { RateLimiter, RedisStore } from "effect-resilience"
 *
 * class ApiLimiter extends Context.Tag("app/ApiLimiter")<ApiLimiter, RateLimiter.RateLimiter>() {}
 * const Limits = RateLimiter.layer(ApiLimiter, {
 *   name: "api",
 *   algorithm: RateLimiter.tokenBucket({ rate: 100, burst: 200 })
 * }).pipe(Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379", onError: "local-fallback" })))
 * ```
 */
export const layer = (options: Options): Layer.Layer<RateLimiterStore, InvalidOptionsError | StoreError> =>
  Layer.scoped(
    RateLimiterStore,
    Effect.gen(function*() {
      const { client: given, url, ...rest } = options
      if (given !== undefined) return yield* make(given, rest)
      if (url === undefined) return yield* noAddress
      const client = yield* connect(url)
      return yield* make(client, rest)
    })
  )

/**
 * Options of `layerCluster`: the store's options, and the URLs of some of the Cluster's nodes
 * (the rest is discovered).
 *
 * @since 0.2.0
 * @category models
 */
export interface ClusterOptions extends Omit<Options, "url" | "client"> {
  readonly urls: ReadonlyArray<string>
  /** default 2 seconds */
  readonly connectTimeout?: Duration.DurationInput | undefined
}

/**
 * The Redis store on a Redis Cluster, through node-redis `createCluster`. Every key of a
 * limiter's identity lives in one slot (the identity is a hash tag), so each decision is one
 * script on one node; the instances' heartbeats share one slot too. When a node fails its slots'
 * calls fail (and the failure mode applies) until the Cluster has a master for them again.
 *
 * @since 0.2.0
 * @category layers
 * @example
 * ```ts
 * import { RedisStore } from "effect-resilience"
 *
 * const Store = RedisStore.layerCluster({
 *   urls: ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"]
 * })
 * ```
 */
export const layerCluster = (
  options: ClusterOptions
): Layer.Layer<RateLimiterStore, InvalidOptionsError | StoreError> =>
  Layer.scoped(
    RateLimiterStore,
    Effect.gen(function*() {
      const { connectTimeout, urls, ...rest } = options
      if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === "string")) {
        return yield* new InvalidOptionsError({
          module: "RedisStore",
          option: "urls",
          value: urls,
          reason: "expected one or more redis:// URLs"
        })
      }
      const o = yield* decodeConnectOptions({ connectTimeout })
      const cluster = yield* connectCluster(urls, Duration.toMillis(o.connectTimeout))
      return yield* make(fromNodeRedisCluster(cluster as unknown as NodeRedisClusterLike), rest)
    })
  )

/**
 * The Redis store configured from `effect/Config`: `url` (required), `prefix`, `onError`,
 * `timeout`, read under the given config (default: `RATE_LIMIT_REDIS_URL`,
 * `RATE_LIMIT_REDIS_PREFIX`, `RATE_LIMIT_REDIS_ON_ERROR`, `RATE_LIMIT_REDIS_TIMEOUT`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<Omit<Options, "client">> = Config.all({
    url: Config.string("RATE_LIMIT_REDIS_URL"),
    prefix: Config.withDefault(Config.string("RATE_LIMIT_REDIS_PREFIX"), "rl:"),
    onError: Config.withDefault(
      Config.literal("fail-open", "fail-closed", "local-fallback")("RATE_LIMIT_REDIS_ON_ERROR"),
      "local-fallback" as const
    ),
    timeout: Config.withDefault(Config.duration("RATE_LIMIT_REDIS_TIMEOUT"), Duration.millis(100))
  })
): Layer.Layer<RateLimiterStore, InvalidOptionsError | StoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config, (options) => layer(options)))
