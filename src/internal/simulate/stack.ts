/**
 * The policy stack of a simulation, built from the same keys as `Config` and run on the library's
 * own cores — the breaker core behind `CircuitBreaker`, the rate-limit table behind
 * `RateLimiterStore.layerMemory`, the shedder state behind `LoadShedder` with the parameters of
 * its signal — stepped synchronously at virtual times, in the order of `ResilientHttpServer`:
 * max connections, breaker, load shedding, rate limit, timeout.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import * as Config from "../../Config.js"
import { InvalidOptionsError } from "../../Errors.js"
import * as LoadShedder from "../../LoadShedder.js"
import * as RateLimiter from "../../RateLimiter.js"
import * as BreakerCore from "../breaker/core.js"
import * as BreakerPolicy from "../breaker/policy.js"
import * as Algorithms from "../ratelimit/algorithms.js"
import * as Memory from "../ratelimit/memory.js"
import * as Shedder from "../shedder.js"
import * as Signal from "../shedderSignal.js"
import type * as Scenario from "./scenario.js"

/** The protection that answered a request it did not admit. */
export type Stage = "connections" | "breaker" | "shedding" | "rate-limit"
export const stages: ReadonlyArray<Stage> = ["connections", "breaker", "shedding", "rate-limit"]

export interface Stack {
  readonly config: Config.ServiceConfig
  /** requests in flight before a 503 (Infinity: off) */
  readonly maxConns: number
  /** request deadline, ms (Infinity: off) */
  readonly timeoutMs: number
  readonly shedder: Shedder.State | undefined
  /** the signal the shedder reads, and its threshold as the shedder compares it */
  readonly signal: { readonly kind: Signal.Kind; readonly threshold: number } | undefined
  readonly limiter: Memory.Table | undefined
  readonly breaker: BreakerCore.Core | undefined
}

/** `LoadShedder`'s default window: 5 s in 50 buckets. */
const SHEDDER_BUCKETS = LoadShedder.defaults.buckets
const SHEDDER_BUCKET_MILLIS = Duration.toMillis(LoadShedder.defaults.window) / SHEDDER_BUCKETS
const RATE_LIMIT_MAX_KEYS = 100_000

const invalid = (reason: string) =>
  new InvalidOptionsError({ module: "Simulator", option: "stack", value: undefined, reason })

/** The shedder's signal: go-zero's CPU signal at `CpuThreshold` when set, else `choice`, else the default. */
const signalOf = (
  shedding: { readonly cpuThreshold?: number },
  choice: Scenario.Shedder | undefined
): Effect.Effect<LoadShedder.OverloadSignal, InvalidOptionsError> => {
  if (shedding.cpuThreshold !== undefined) {
    return choice === undefined
      ? Effect.succeed(LoadShedder.cpu({ threshold: shedding.cpuThreshold }))
      : Effect.fail(invalid("shedder and stack.CpuThreshold cannot both be set"))
  }
  if (choice === undefined) return Effect.succeed(LoadShedder.defaults.signal)
  const { allowanceMs, signal, threshold } = choice
  const allowance = allowanceMs === undefined ? {} : { allowance: Duration.millis(allowanceMs) }
  switch (signal) {
    case "cpu":
      return allowanceMs === undefined
        ? Effect.succeed(LoadShedder.cpu(threshold === undefined ? {} : { threshold }))
        : Effect.fail(invalid("shedder.allowanceMs does not apply to the CPU signal"))
    case "eventLoopUtilization":
      return Effect.succeed(
        LoadShedder.eventLoopUtilization({ ...allowance, ...(threshold === undefined ? {} : { threshold }) })
      )
    case "eventLoopDelay":
    case "queueDelay": {
      const make = signal === "eventLoopDelay" ? LoadShedder.eventLoopDelay : LoadShedder.queueDelay
      return Effect.succeed(
        make({ ...allowance, ...(threshold === undefined ? {} : { threshold: Duration.millis(threshold) }) })
      )
    }
  }
}

/** Reads the stack's keys exactly as `Config.serviceConfig` reads a service's configuration. */
export const readConfig = (
  stack: Readonly<Record<string, unknown>>
): Effect.Effect<Config.ServiceConfig, InvalidOptionsError> =>
  Effect.withConfigProvider(Config.serviceConfig, ConfigProvider.fromJson({ Name: "simulated", ...stack })).pipe(
    Effect.mapError((error) => invalid(String(error)))
  )

/** Builds the stack at virtual time `now` (ms). */
export const build = (
  stack: Readonly<Record<string, unknown>>,
  choice: Scenario.Shedder | undefined,
  now: number
): Effect.Effect<Stack, InvalidOptionsError> =>
  Effect.gen(function*() {
    const config = yield* readConfig(stack)
    const options = Config.toOptions(config)
    let shedder: Shedder.State | undefined
    let signal: Stack["signal"]
    if (options.shedding !== false) {
      const decoded = yield* Signal.decode(yield* signalOf(options.shedding ?? {}, choice)).pipe(
        Effect.mapError((e) => invalid(`shedder: ${e.message}`))
      )
      shedder = Shedder.make(
        { ...decoded.params, buckets: SHEDDER_BUCKETS, bucketMillis: SHEDDER_BUCKET_MILLIS },
        now
      )
      signal = { kind: decoded.kind, threshold: decoded.params.threshold }
    }
    let limiter: Memory.Table | undefined
    const rateLimit = config.middlewares.rateLimit ? Option.getOrUndefined(config.rateLimit) : undefined
    if (rateLimit !== undefined) {
      const definition = yield* Algorithms.definition(
        RateLimiter.tokenBucket({ rate: rateLimit.rate, burst: rateLimit.burst })
      )
      limiter = Memory.makeTable(definition, { maxKeys: RATE_LIMIT_MAX_KEYS, idleTimeToLive: Infinity })
    }
    let breaker: BreakerCore.Core | undefined
    if (config.middlewares.breaker) {
      const { spec } = yield* BreakerPolicy.decode(
        CircuitBreaker.sre({
          name: config.name,
          k: config.breaker.k,
          protection: config.breaker.protection,
          window: config.breaker.window,
          buckets: config.breaker.buckets
        })
      )
      breaker = spec.makeCore(now)
    }
    return {
      config,
      maxConns: options.maxConns === false ? Infinity : options.maxConns ?? Infinity,
      timeoutMs: options.timeout === false || options.timeout === undefined
        ? Infinity
        : Duration.toMillis(options.timeout),
      shedder,
      signal,
      limiter,
      breaker
    }
  })

const signalText = (signal: NonNullable<Stack["signal"]>): string => {
  const t = signal.threshold
  switch (signal.kind) {
    case "cpu":
      return `CPU at ${t}‰`
    case "event-loop-utilization":
      return `event-loop utilization at ${t}`
    case "event-loop-delay":
      return `event-loop delay at ${t} ms`
    case "queue-delay":
      return `queue delay at ${t} ms`
  }
}

/** One line per active protection, for the report. */
export const describe = (stack: Stack): ReadonlyArray<string> => {
  const c = stack.config
  const lines: Array<string> = []
  if (stack.maxConns !== Infinity) lines.push(`max connections ${stack.maxConns}`)
  if (stack.signal !== undefined) lines.push(`load shedding on ${signalText(stack.signal)}`)
  const rl = Option.getOrUndefined(c.rateLimit)
  if (stack.limiter !== undefined && rl !== undefined) {
    lines.push(`rate limit ${rl.rate}/s per user, burst ${rl.burst}`)
  }
  if (stack.breaker !== undefined) {
    lines.push(
      `SRE breaker k=${c.breaker.k}, protection ${c.breaker.protection}, window ${
        Duration.format(c.breaker.window)
      } in ${c.breaker.buckets} buckets`
    )
  }
  if (stack.timeoutMs !== Infinity) lines.push(`timeout ${stack.timeoutMs} ms`)
  return lines
}
