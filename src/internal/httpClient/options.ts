/**
 * `ResilientHttpClient` options: the schema, and what a client builds from them once — the
 * per-attempt timeout, the deadline budget, the learned host limits, the per-host breakers and
 * bulkheads.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type { InvalidOptionsError, TimeoutError } from "../../Errors.js"
import type { Options } from "../../ResilientHttpClient.js"
import * as Timeout from "../../Timeout.js"
import type { BulkheadImpl } from "../bulkhead.js"
import * as BulkheadRegistry from "../bulkheadRegistry.js"
import * as DeadlineBudget from "../deadlineBudget.js"
import * as HostLimitGate from "../hostLimitGate.js"
import * as options_ from "../options.js"

const OptionsSchema = () =>
  Schema.Struct({
    name: Schema.optional(options_.Name),
    maxHosts: Schema.optional(options_.PositiveInt),
    timeout: Schema.optional(Schema.Union(options_.PositiveDuration, Schema.Literal(false))),
    learnLimits: Schema.optional(Schema.Struct({
      onLimited: Schema.optional(Schema.Literal("wait", "fail")),
      maxWait: Schema.optional(options_.NonNegativeDuration),
      blockFor: Schema.optional(options_.PositiveDuration),
      share: Schema.optional(Schema.Struct({
        client: Schema.Unknown,
        interval: Schema.optionalWith(options_.PositiveDuration, { default: () => Duration.millis(500) }),
        timeout: Schema.optionalWith(options_.PositiveDuration, { default: () => Duration.millis(100) }),
        prefix: Schema.optionalWith(Schema.String, { default: () => "resilience:learned:" }),
        instance: Schema.optional(options_.Name)
      }))
    })),
    propagateDeadline: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        header: Schema.optional(options_.Name),
        format: Schema.optional(Schema.Literal("millis", "grpc")),
        margin: Schema.optional(options_.NonNegativeDuration)
      })
    )),
    bulkhead: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        maxConcurrent: Schema.optional(options_.PositiveInt),
        maxQueue: Schema.optional(options_.NonNegativeInt),
        queueTimeout: Schema.optional(options_.NonNegativeDuration),
        idleTimeToLive: Schema.optional(options_.PositiveDuration)
      })
    )),
    retry: Schema.optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        times: Schema.optional(options_.NonNegativeInt),
        maxRetryAfter: Schema.optional(options_.NonNegativeDuration)
      })
    ))
  })

/** The options as decoded: durations as `Duration`, every value checked. */
export type Decoded = Schema.Schema.Type<ReturnType<typeof OptionsSchema>>

export const decode = options_.decodeOptions("ResilientHttpClient", OptionsSchema)

/** What one attempt runs through, each part absent when switched off. */
export interface Guards {
  readonly name: string
  readonly timeout:
    | (<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>)
    | undefined
  readonly budget: DeadlineBudget.Budget | undefined
  readonly gate: HostLimitGate.Gate | undefined
  readonly registry: Context.Tag.Service<CircuitBreaker.Registry> | undefined
  readonly bulkheadOf: ((host: string) => Effect.Effect<BulkheadImpl>) | undefined
}

const registryOf = (
  options: Options,
  maxHosts: number
): Effect.Effect<Context.Tag.Service<CircuitBreaker.Registry> | undefined, InvalidOptionsError, Scope.Scope> => {
  const breakerOptions = options.breaker === false ? undefined : options.breaker ?? {}
  if (breakerOptions === undefined) return Effect.succeed(undefined)
  if (breakerOptions.registry !== undefined) return Effect.succeed(breakerOptions.registry)
  return CircuitBreaker.makeRegistry({
    policy: breakerOptions.policy ?? ((n) => CircuitBreaker.sre({ name: n })),
    idleTimeToLive: "10 minutes",
    maxKeys: maxHosts
  })
}

// per-host bulkheads, dropped once idle like the per-host breakers (never while in use)
const bulkheadsOf = (
  decoded: Decoded,
  name: string,
  maxHosts: number
): Effect.Effect<((host: string) => Effect.Effect<BulkheadImpl>) | undefined, never, Scope.Scope> => {
  const bulkheadOptions = decoded.bulkhead === false ? undefined : decoded.bulkhead ?? {}
  if (bulkheadOptions === undefined) return Effect.succeed(undefined)
  return BulkheadRegistry.makePerKey({
    maxKeys: maxHosts,
    ttl: Duration.toMillis(bulkheadOptions.idleTimeToLive ?? Duration.minutes(10)),
    settingsOf: (host) => ({
      name: `${name} ${host}`,
      maxConcurrent: bulkheadOptions.maxConcurrent ?? 64,
      maxQueue: bulkheadOptions.maxQueue ?? 0,
      ...(bulkheadOptions.queueTimeout === undefined ? {} : { queueTimeout: bulkheadOptions.queueTimeout })
    }),
    onEvict: (host) => Effect.logDebug("dropped idle bulkhead").pipe(Effect.annotateLogs({ client: name, host }))
  })
}

/** Builds the guards of a client in the current scope. */
export const guards = (
  client: HttpClient.HttpClient.With<any, any>,
  decoded: Decoded,
  options: Options
): Effect.Effect<Guards, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = decoded.name ?? "http-client"
    const timeout = decoded.timeout === false
      ? undefined
      : Timeout.within({ duration: decoded.timeout ?? Duration.seconds(10), operation: name })
    const budget = decoded.propagateDeadline === false
      ? undefined
      : DeadlineBudget.make(client, name, decoded.propagateDeadline ?? {})
    const maxHosts = decoded.maxHosts ?? 10_000
    const gate = decoded.learnLimits === undefined
      ? undefined
      : yield* HostLimitGate.make(name, maxHosts, {
        ...decoded.learnLimits,
        share: HostLimitGate.shareSettings(decoded.learnLimits.share)
      })
    const registry = yield* registryOf(options, maxHosts)
    const bulkheadOf = yield* bulkheadsOf(decoded, name, maxHosts)
    return { name, timeout, budget, gate, registry, bulkheadOf }
  })
