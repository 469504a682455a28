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
import type * as Calls from "./calls.js"
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
  /** the tiers' limits, when the scenario has tiers */
  readonly tiers: Readonly<Record<string, { readonly rate: number; readonly burst: number }>> | undefined
  /** per user (by index): its id and the limiter its requests take from */
  readonly users: ReadonlyArray<string>
  readonly limiters: ReadonlyArray<Memory.Table | undefined>
  readonly breaker: BreakerCore.Core | undefined
  readonly client: Calls.Client
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
  scenario: Scenario.Scenario,
  now: number
): Effect.Effect<Stack, InvalidOptionsError> =>
  Effect.gen(function*() {
    const choice = scenario.shedder
    const config = yield* readConfig(scenario.stack)
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
    const on = config.middlewares.rateLimit
    const rateLimit = on ? Option.getOrUndefined(config.rateLimit) : undefined
    const limiter = rateLimit === undefined ? undefined : yield* tokenBucket(rateLimit.rate, rateLimit.burst)
    const tiers: Record<string, Memory.Table> = {}
    for (const [tier, { burst, rate }] of on ? Object.entries(scenario.tiers) : []) {
      tiers[tier] = yield* tokenBucket(rate, burst)
    }
    const users = allUsers(scenario)
    const limiters: Array<Memory.Table | undefined> = []
    for (const u of users) {
      if (u.tier !== undefined && on && !(u.tier in tiers)) return yield* invalid(`user ${u.id}: no tier ${u.tier}`)
      limiters.push(u.tier === undefined ? limiter : tiers[u.tier])
    }
    const { spec } = yield* BreakerPolicy.decode(
      CircuitBreaker.sre({
        name: config.name,
        k: config.breaker.k,
        protection: config.breaker.protection,
        window: config.breaker.window,
        buckets: config.breaker.buckets
      })
    )
    const breaker = config.middlewares.breaker ? spec.makeCore(now) : undefined
    const c = scenario.client
    const client: Calls.Client = {
      timeoutMs: c.timeoutMs ?? Infinity,
      retries: c.retries,
      backoffBaseMs: c.backoff.baseMs,
      backoffCapMs: c.backoff.capMs,
      breaker: c.breaker ? spec.makeCore(now) : undefined,
      bulkhead: c.bulkhead ?? { maxConcurrent: Infinity, maxQueue: 0, queueTimeoutMs: 0 }
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
      tiers: Object.keys(tiers).length > 0 ? scenario.tiers : undefined,
      users: users.map((u) => u.id),
      limiters,
      breaker,
      client
    }
  })

const tokenBucket = (rate: number, burst: number) =>
  Effect.map(
    Algorithms.definition(RateLimiter.tokenBucket({ rate, burst })),
    (definition) => Memory.makeTable(definition, { maxKeys: RATE_LIMIT_MAX_KEYS, idleTimeToLive: Infinity })
  )

/** Every user of the scenario: `traffic.users`, then each phase's own, in order (an index is a user). */
export const allUsers = (
  scenario: Scenario.Scenario
): ReadonlyArray<{ readonly id: string; readonly weight: number; readonly tier?: string | undefined }> => [
  ...usersOf(scenario.traffic.users),
  ...scenario.phases.flatMap((p) => p.users ?? [])
]

/** The scenario's users: a number of equally busy ones, or the list. */
export const usersOf = (
  users: Scenario.Scenario["traffic"]["users"]
): ReadonlyArray<{ readonly id: string; readonly weight: number; readonly tier?: string | undefined }> =>
  typeof users === "number" ? Array.from({ length: users }, (_, i) => ({ id: `user-${i + 1}`, weight: 1 })) : users

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
  for (const [tier, { burst, rate }] of Object.entries(stack.tiers ?? {})) {
    lines.push(`rate limit of tier ${tier} ${rate}/s per user, burst ${burst}`)
  }
  if (stack.breaker !== undefined) {
    lines.push(
      `SRE breaker k=${c.breaker.k}, protection ${c.breaker.protection}, window ${
        Duration.format(c.breaker.window)
      } in ${c.breaker.buckets} buckets`
    )
  }
  if (stack.timeoutMs !== Infinity) lines.push(`timeout ${stack.timeoutMs} ms`)
  const client = stack.client
  const parts: Array<string> = []
  if (client.breaker !== undefined) parts.push("a breaker for the host")
  if (client.bulkhead.maxConcurrent !== Infinity) {
    const b = client.bulkhead
    parts.push(`a bulkhead of ${b.maxConcurrent} (${b.maxQueue} queued for ${b.queueTimeoutMs} ms)`)
  }
  if (client.timeoutMs !== Infinity) parts.push(`${client.timeoutMs} ms per try`)
  if (client.retries > 0) {
    parts.push(`${client.retries} retries (backoff ${client.backoffBaseMs}–${client.backoffCapMs} ms, full jitter)`)
  }
  if (parts.length > 0) lines.push(`client: ${parts.join(", ")}`)
  return lines
}
