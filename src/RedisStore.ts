/**
 * A `RateLimiterStore` on Redis, so that every instance of a service shares the same limits.
 *
 * Each algorithm runs as one Lua script that mirrors its TypeScript step function: it reads the
 * time from Redis `TIME` (one clock for every instance), reads and writes one key per identity
 * (`<prefix><limiter>:{<key>}`, the identity wrapped in a Cluster hash tag) and sets that key's
 * expiry in the same script, never to 0. Scripts are loaded once (`SCRIPT LOAD`) and called by
 * SHA (`EVALSHA`); after a `SCRIPT FLUSH` or a restart the `NOSCRIPT` reply makes the store load
 * the script again and retry, once.
 *
 * Every call has a timeout (default 50 ms) so a dead or hung Redis costs milliseconds. What
 * happens when Redis fails is the `onError` option:
 *
 * - `"fail-closed"`: the call fails with `StoreError` (never `RateLimitedError`: a broken store
 *   is not a client over its limit); `protect` does not run the effect.
 * - `"fail-open"`: the request is admitted (the decision reports the full limit remaining).
 * - `"local-fallback"` (default, as go-zero): decisions move to an in-memory limiter with the
 *   same parameters, while a background fiber (in the layer's scope) pings Redis every 100 ms
 *   and moves decisions back once it answers.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import { createClient } from "redis"
import { InvalidOptionsError, StoreError } from "./Errors.js"
import { decodeOptions, PositiveDuration, PositiveInt } from "./internal/options.js"
import type { Definition, RawDecision } from "./internal/ratelimit/core.js"
import { fromReply, num } from "./internal/ratelimit/core.js"
import { makeTable } from "./internal/ratelimit/memory.js"
import type { Stepper } from "./RateLimiterStore.js"
import { RateLimiterStore } from "./RateLimiterStore.js"

/**
 * The few Redis operations the store needs. Adapt any client to it: `fromNodeRedis` for `redis`
 * (node-redis), `fromIoredis` for ioredis. `evalsha` must reject with an error whose message
 * starts with `NOSCRIPT` when the script is not loaded (both clients do).
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisClient {
  readonly evalsha: (sha: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => Promise<unknown>
  readonly scriptLoad: (script: string) => Promise<unknown>
  readonly ping: () => Promise<unknown>
  readonly quit: () => Promise<unknown>
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
}

/**
 * Adapts a connected node-redis client (`createClient` from `redis`). Concurrent calls are
 * pipelined by the client. Create it with `disableOfflineQueue: true` so that calls fail at once
 * while it is disconnected instead of queueing until the timeout, and with
 * `commandOptions: { timeout: 0 }`: node-redis v6 otherwise arms a 5 s timer per command, which
 * the store does not need (it has its own) and which costs more than the rest of the call.
 *
 * @since 0.1.0
 * @category adapters
 */
export const fromNodeRedis = (client: NodeRedisLike): RedisClient => ({
  evalsha: (sha, keys, args) => client.evalSha(sha, { keys: keys as Array<string>, arguments: args as Array<string> }),
  scriptLoad: (script) => client.scriptLoad(script),
  ping: () => client.ping(),
  quit: () => client.close()
})

/**
 * The part of an ioredis client the adapter uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...keysAndArgs: Array<string>): Promise<unknown>
  script(subcommand: "LOAD", script: string): Promise<unknown>
  ping(): Promise<unknown>
  quit(): Promise<unknown>
}

/**
 * Adapts an ioredis client (`new Redis(...)`). Consider `enableOfflineQueue: false` and
 * `enableAutoPipelining: true` for the same behaviour as the node-redis adapter.
 *
 * @since 0.1.0
 * @category adapters
 */
export const fromIoredis = (client: IoredisLike): RedisClient => ({
  evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
  scriptLoad: (script) => client.script("LOAD", script),
  ping: () => client.ping(),
  quit: () => client.quit()
})

/**
 * What the store does when Redis fails or does not answer within `timeout`.
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
  /** per-call timeout (default 50 ms) */
  readonly timeout?: Duration.DurationInput | undefined
  /** keys per limiter in the local fallback (default 100,000) */
  readonly fallbackMaxKeys?: number | undefined
  /** how often the local fallback pings Redis (default 100 ms) */
  readonly healthCheckInterval?: Duration.DurationInput | undefined
}

const OptionsSchema = Schema.Struct({
  url: Schema.optional(Schema.String),
  prefix: Schema.optionalWith(Schema.String, { default: () => "rl:" }),
  onError: Schema.optionalWith(Schema.Literal("fail-open", "fail-closed", "local-fallback"), {
    default: () => "local-fallback" as const
  }),
  timeout: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(50) }),
  fallbackMaxKeys: Schema.optionalWith(PositiveInt, { default: () => 100_000 }),
  healthCheckInterval: Schema.optionalWith(PositiveDuration, { default: () => Duration.millis(100) })
})

interface Pending {
  readonly at: number
  done: boolean
  prev: Pending | undefined
  next: Pending | undefined
  readonly fail: (reason: string) => void
}

/**
 * One timer for every in-flight call. The timeout is the same for all, so deadlines arrive in
 * insertion order: the in-flight calls form a doubly linked list (oldest first), a call unlinks
 * itself when it completes (nothing outlives its call, no hashing, no per-call timer), and a sweep
 * every `timeout / 2` fails the expired ones from the front.
 */
const makeDeadlines = (timeoutMs: number) => {
  let head: Pending | undefined
  let tail: Pending | undefined
  const unlink = (p: Pending): void => {
    if (p.prev !== undefined) p.prev.next = p.next
    else head = p.next
    if (p.next !== undefined) p.next.prev = p.prev
    else tail = p.prev
    p.prev = undefined
    p.next = undefined
  }
  const add = (p: Pending): void => {
    p.prev = tail
    if (tail !== undefined) tail.next = p
    else head = p
    tail = p
  }
  const sweep = () => {
    const now = performance.now()
    while (head !== undefined && head.at <= now) {
      const p = head
      unlink(p)
      if (!p.done) {
        p.done = true
        p.fail(`no answer within ${timeoutMs} ms`)
      }
    }
  }
  const timer = setInterval(sweep, Math.max(1, Math.floor(timeoutMs / 2)))
  timer.unref()
  return {
    track: (fail: (reason: string) => void): Pending => {
      const p: Pending = { at: performance.now() + timeoutMs, done: false, prev: undefined, next: undefined, fail }
      add(p)
      return p
    },
    deadline: (): number => performance.now() + timeoutMs,
    add,
    /** marks `p` answered; false when it had already timed out (or was interrupted) */
    settle: (p: Pending): boolean => {
      if (p.done) return false
      p.done = true
      unlink(p)
      return true
    },
    close: () => clearInterval(timer)
  }
}

interface CallContext {
  readonly client: RedisClient
  readonly sha: string
  readonly script: string
  readonly limit: number
  readonly deadlines: ReturnType<typeof makeDeadlines>
  readonly onFailure: (
    key: string,
    cost: number,
    maxDelayMs: number,
    error: StoreError
  ) => Effect.Effect<RawDecision, StoreError>
}

/**
 * One EVALSHA in flight: its own deadline entry, settled by the reply, the error or the sweep,
 * whichever comes first. A class rather than closures, to keep the per-call garbage small.
 */
class EvalCall implements Pending {
  readonly at: number
  done = false
  prev: Pending | undefined = undefined
  next: Pending | undefined = undefined
  constructor(
    readonly context: CallContext,
    readonly key: string,
    readonly keys: ReadonlyArray<string>,
    readonly args: ReadonlyArray<string>,
    readonly cost: number,
    readonly maxDelayMs: number,
    readonly resume: (effect: Effect.Effect<RawDecision, StoreError>) => void
  ) {
    this.at = context.deadlines.deadline()
  }
  start(): void {
    this.context.deadlines.add(this)
    this.context.client.evalsha(this.context.sha, this.keys, this.args).then(
      (reply) => this.reply(reply),
      (cause) => this.retryOrFail(cause)
    )
  }
  reply(reply: unknown): void {
    if (this.context.deadlines.settle(this)) this.resume(Effect.succeed(fromReply(reply, this.context.limit)))
  }
  error(cause: unknown): void {
    if (!this.context.deadlines.settle(this)) return
    this.resume(this.context.onFailure(
      this.key,
      this.cost,
      this.maxDelayMs,
      new StoreError({ store: "redis", operation: "evalsha", reason: errorMessage(cause), cause }, true)
    ))
  }
  retryOrFail(cause: unknown): void {
    // the script cache was flushed (SCRIPT FLUSH, restart): load it again and retry once
    if (this.done || !isNoScript(cause)) return this.error(cause)
    const { client, script, sha } = this.context
    client.scriptLoad(script).then(() => client.evalsha(sha, this.keys, this.args)).then(
      (reply) => this.reply(reply),
      (e) => this.error(e)
    )
  }
  fail(reason: string): void {
    this.resume(this.context.onFailure(
      this.key,
      this.cost,
      this.maxDelayMs,
      new StoreError({ store: "redis", operation: "evalsha", reason }, true)
    ))
  }
}

const isNoScript = (e: unknown): boolean => {
  const message = e instanceof Error ? e.message : String(e)
  return message.startsWith("NOSCRIPT") || message.includes("NOSCRIPT")
}

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * The store over a `RedisClient`. Needs a `Scope`: the health-check fiber of the local fallback
 * and the timeout timer live in it.
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
    const timeoutMs = Duration.toMillis(o.timeout)
    const deadlines = yield* Effect.acquireRelease(Effect.sync(() => makeDeadlines(timeoutMs)), (d) =>
      Effect.sync(d.close))
    const shas = new Map<string, string>()
    let healthy = true

    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
      Effect.async<A, StoreError>((resume) => {
        const pending = deadlines.track((reason) =>
          resume(Effect.fail(new StoreError({ store: "redis", operation, reason }, true)))
        )
        run().then(
          (value) => {
            if (deadlines.settle(pending)) {
              resume(Effect.succeed(value))
            }
          },
          (cause) => {
            if (!deadlines.settle(pending)) {
              return
            }
            resume(Effect.fail(new StoreError({ store: "redis", operation, reason: errorMessage(cause), cause }, true)))
          }
        )
        return Effect.sync(() => {
          deadlines.settle(pending)
        })
      })

    const ping: Effect.Effect<unknown, StoreError> = call("ping", () =>
      client.ping())
    if (o.onError === "local-fallback") {
      const check = Effect.suspend(() => {
        if (healthy) return Effect.void
        return ping.pipe(
          Effect.zipRight(Effect.sync(() => {
            healthy = true
          })),
          Effect.zipRight(Effect.logInfo("redis is back: rate limits are shared again")),
          Effect.ignore
        )
      })
      yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced(o.healthCheckInterval)))
    }

    const prepare = (limiter: string, def: Definition): Effect.Effect<Stepper> =>
      Effect.gen(function*() {
        const script = def.script
        let sha = shas.get(script)
        if (sha === undefined) {
          sha = createHash("sha1").update(script).digest("hex")
          shas.set(script, sha)
          // best effort: a failure here is repaired by the NOSCRIPT reload on first use
          yield* Effect.ignore(call("script load", () => client.scriptLoad(script)))
        }
        const theSha = sha
        const keyPrefix = `${o.prefix}${limiter}:{`
        const params = def.scriptArgs
        const unitArgs = ["", "1", "0", ...params]
        const argsFor = (cost: number, maxDelayMs: number): ReadonlyArray<string> =>
          cost === 1 && maxDelayMs === 0 ? unitArgs : ["", num(cost), num(maxDelayMs), ...params]
        const limit = def.limit
        const local = o.onError === "local-fallback"
          ? makeTable(def, { maxKeys: o.fallbackMaxKeys, idleTimeToLiveMs: Infinity })
          : undefined
        const localStep = (key: string, cost: number, maxDelayMs: number) =>
          Effect.clockWith((clock) =>
            Effect.succeed(local!.run(key, clock.unsafeCurrentTimeMillis(), cost, maxDelayMs))
          )
        const openDecision: RawDecision = {
          allowed: true,
          limit,
          remaining: limit,
          retryAfterMs: 0,
          resetAfterMs: 0,
          delayMs: 0,
          code: undefined
        }
        const onFailure = (key: string, cost: number, maxDelayMs: number, error: StoreError) => {
          switch (o.onError) {
            case "fail-open":
              return Effect.succeed(openDecision)
            case "fail-closed":
              return Effect.fail(error)
            case "local-fallback": {
              if (!healthy) return localStep(key, cost, maxDelayMs)
              healthy = false
              return Effect.zipRight(
                Effect.logWarning("redis failed: rate limits fall back to this process").pipe(
                  Effect.annotateLogs({ limiter, reason: error.reason })
                ),
                localStep(key, cost, maxDelayMs)
              )
            }
          }
        }
        const context: CallContext = {
          client,
          sha: theSha,
          script,
          limit,
          deadlines,
          onFailure
        }
        const stepper: Stepper = (key, cost, maxDelayMs) => {
          if (local !== undefined && !healthy) return localStep(key, cost, maxDelayMs)
          const keys = [keyPrefix + key + "}"]
          const args = argsFor(cost, maxDelayMs)
          return Effect.async<RawDecision, StoreError>((resume) => {
            new EvalCall(context, key, keys, args, cost, maxDelayMs, resume).start()
          })
        }
        return stepper
      })

    return RateLimiterStore.of({ name: "redis", prepare })
  })

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
  Effect.flatMap(decodeConnectOptions(options), (o) => connectWithin(url, Duration.toMillis(o.connectTimeout)))

const ConnectOptionsSchema = Schema.Struct({
  connectTimeout: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(2) })
})

const decodeConnectOptions = decodeOptions("RedisStore", ConnectOptionsSchema)

const connectWithin = (url: string, connectTimeout: number): Effect.Effect<RedisClient, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        let connected = false
        const client = createClient({
          url,
          disableOfflineQueue: true,
          // the store times calls out itself with one shared timer; node-redis's own default (5 s) arms an
          // AbortSignal timer per command, which costs more than the rest of the call
          commandOptions: { timeout: 0 },
          socket: {
            connectTimeout,
            // at start-up give up after a few attempts (the layer fails); later, keep reconnecting
            reconnectStrategy: (retries: number, cause: Error) =>
              !connected && retries >= 3 ? cause : Math.min(20 * (retries + 1), 200)
          }
        })
        client.on("ready", () => {
          connected = true
        })
        client.on("error", () => {
          // reconnects are automatic; failures surface on the calls
        })
        const connecting = client.connect()
        const timer = new Promise<never>((_, reject) => {
          const t = setTimeout(() => reject(new Error(`could not connect within ${connectTimeout} ms`)), connectTimeout)
          t.unref()
          connecting.then(() => clearTimeout(t), () => clearTimeout(t))
        })
        try {
          await Promise.race([connecting, timer])
        } catch (e) {
          client.destroy()
          throw e
        }
        return fromNodeRedis(client as unknown as NodeRedisLike)
      },
      catch: (cause) => new StoreError({ store: "redis", operation: "connect", reason: errorMessage(cause), cause })
    }),
    (client) => Effect.promise(() => client.quit().catch(() => undefined))
  )

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
      if (url === undefined) {
        return yield* new InvalidOptionsError({
          module: "RedisStore",
          option: "url",
          value: undefined,
          reason: "expected a url or a client"
        })
      }
      const client = yield* connect(url)
      return yield* make(client, rest)
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
    timeout: Config.withDefault(Config.duration("RATE_LIMIT_REDIS_TIMEOUT"), Duration.millis(50))
  })
): Layer.Layer<RateLimiterStore, InvalidOptionsError | StoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config, (options) => layer(options)))
