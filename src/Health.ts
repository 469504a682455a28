/**
 * A health checker: named checks (a database ping, a Redis ping, a downstream's `/health`), each
 * run through its own circuit breaker and timeout, reported as `healthy`, `unhealthy` or
 * `circuit_open`, together with the state of every registered breaker, bulkhead and limiter —
 * as an Effect (`check`) and as an HTTP route (`httpApp`, 200 or 503).
 *
 * A check whose breaker is open is not run: a dependency that is known to be down is not hammered
 * by health probes, and the probe answers at once.
 *
 * The overall `status` is `unhealthy` (HTTP 503) when any check is not `healthy`, `degraded`
 * (HTTP 200) when every check passes but a registered breaker is not `Closed`, else `healthy`.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import { Effect } from "effect"
 * import { Health } from "effect-resilience"
 *
 * declare const redis: { readonly ping: () => Promise<string> }
 * declare const db: { readonly query: (sql: string) => Promise<unknown> }
 *
 * const HealthLive = Health.layer({
 *   checks: { redis: Effect.tryPromise(() => redis.ping()), database: Effect.tryPromise(() => db.query("SELECT 1")) }
 * })
 * const router = HttpRouter.empty.pipe(HttpRouter.get("/health", Health.httpApp))
 * ```
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { InvalidOptionsError, TimeoutError } from "./Errors.js"
import * as options_ from "./internal/options.js"
import * as Timeout from "./Timeout.js"

/**
 * The outcome of one check.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckStatus = "healthy" | "unhealthy" | "circuit_open"

/**
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  readonly status: CheckStatus
  readonly durationMs: number
  /** why the check failed */
  readonly error?: string
}

/**
 * The report `check` returns and `httpApp` serves as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export interface Report {
  readonly status: "healthy" | "degraded" | "unhealthy"
  readonly checks: Readonly<Record<string, CheckResult>>
  readonly breakers: Readonly<Record<string, CircuitBreaker.State>>
  readonly bulkheads: Readonly<Record<string, unknown>>
  readonly limiters: Readonly<Record<string, unknown>>
}

/**
 * A check and how to run it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckOptions {
  readonly check: Effect.Effect<unknown, unknown>
  /** per-run timeout (default: the checker's, 5 seconds) */
  readonly timeout?: Duration.DurationInput
  /** the check's breaker (default: opens after 3 consecutive failures, probes again after 30 s) */
  readonly policy?: CircuitBreaker.Policy
}

/**
 * What the checker can show the state of: anything with a `name` and a `state` (breakers), or a
 * `name` and `stats` (bulkheads, load shedders, limiters).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stateful {
  readonly name: string
  readonly state: Effect.Effect<CircuitBreaker.State>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WithStats {
  readonly name: string
  readonly stats: Effect.Effect<unknown>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HealthChecker {
  readonly addCheck: (
    name: string,
    check: Effect.Effect<unknown, unknown> | CheckOptions
  ) => Effect.Effect<void, InvalidOptionsError>
  readonly registerBreaker: (breaker: Stateful) => Effect.Effect<void>
  /** reports every breaker a registry holds at check time (e.g. the middleware's route breakers) */
  readonly registerRegistry: (registry: CircuitBreaker.RegistryService) => Effect.Effect<void>
  readonly registerBulkhead: (bulkhead: WithStats) => Effect.Effect<void>
  readonly registerLimiter: (limiter: WithStats) => Effect.Effect<void>
  /** runs every check concurrently and reads every registered state */
  readonly check: Effect.Effect<Report>
  /** `check` as a JSON response: 200 unless `unhealthy`, then 503 */
  readonly httpApp: Effect.Effect<HttpServerResponse.HttpServerResponse>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Health extends Context.Tag("effect-resilience/Health")<Health, HealthChecker>() {}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly checks?: Readonly<Record<string, Effect.Effect<unknown, unknown> | CheckOptions>>
  /** default per-check timeout (5 seconds) */
  readonly timeout?: Duration.DurationInput
  readonly breakers?: ReadonlyArray<Stateful>
  readonly registries?: ReadonlyArray<CircuitBreaker.RegistryService>
  readonly bulkheads?: ReadonlyArray<WithStats>
  readonly limiters?: ReadonlyArray<WithStats>
}

const decodeTimeout = options_.decodeOptions(
  "Health",
  Schema.Struct({ timeout: Schema.optional(options_.PositiveDuration), name: Schema.optional(options_.Name) })
)

const describe = (u: unknown): string => {
  if (Predicate.hasProperty(u, "message") && typeof u.message === "string" && u.message.length > 0) return u.message
  if (Predicate.hasProperty(u, "_tag") && typeof u._tag === "string") return u._tag
  return String(u)
}

interface Registered {
  readonly name: string
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly run: Effect.Effect<unknown, unknown>
  readonly within: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
}

/** What a checker reads: its checks, and the breakers, bulkheads and limiters registered with it. */
interface Sources {
  readonly checks: ReadonlyMap<string, Registered>
  readonly breakers: ReadonlyMap<string, Stateful>
  readonly bulkheads: ReadonlyMap<string, WithStats>
  readonly limiters: ReadonlyMap<string, WithStats>
  readonly registries: ReadonlySet<CircuitBreaker.RegistryService>
}

// the breakers a registry holds now, read without marking them used (a health probe must not
// keep idle breakers alive) nor creating one for a name evicted meanwhile
const registryStates = (registries: ReadonlySet<CircuitBreaker.RegistryService>) =>
  Effect.map(
    Effect.forEach(
      registries,
      (registry) =>
        Effect.flatMap(
          registry.breakers,
          (breakers) => Effect.forEach(breakers, (b) => Effect.map(b.state, (state) => [b.name, state] as const))
        )
    ),
    (nested) => nested.flat()
  )

const runOne = (c: Registered): Effect.Effect<readonly [string, CheckResult]> =>
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeMillis()
    const elapsed = () => clock.unsafeCurrentTimeMillis() - start
    return c.run.pipe(
      c.within,
      c.breaker.protect,
      Effect.match({
        onSuccess: (): CheckResult => ({ status: "healthy", durationMs: elapsed() }),
        onFailure: (e): CheckResult =>
          Predicate.hasProperty(e, "_tag") && e._tag === "CircuitOpenError"
            ? { status: "circuit_open", durationMs: elapsed(), error: describe(e) }
            : { status: "unhealthy", durationMs: elapsed(), error: describe(e) }
      }),
      Effect.catchAllDefect((defect) =>
        Effect.succeed<CheckResult>({ status: "unhealthy", durationMs: elapsed(), error: describe(defect) })
      ),
      Effect.map((result) => [c.name, result] as const)
    )
  })

const readAll = <A>(entries: Iterable<readonly [string, Effect.Effect<A>]>) =>
  Effect.map(
    Effect.forEach(entries, ([name, read]) => Effect.map(read, (a) => [name, a] as const)),
    (pairs) => Object.fromEntries(pairs)
  )

/** Runs every check and reads every state, as one report. */
const checkAll = ({ breakers, bulkheads, checks, limiters, registries }: Sources): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const [results, breakerStates, fromRegistries, bulkheadStats, limiterStats] = yield* Effect.all([
      Effect.forEach(checks.values(), runOne, { concurrency: "unbounded" }),
      readAll([
        ...[...checks.values()].map((c) => [c.breaker.name, c.breaker.state] as const),
        ...[...breakers.values()].map((b) => [b.name, b.state] as const)
      ]),
      registryStates(registries),
      readAll([...bulkheads.values()].map((b) => [b.name, b.stats] as const)),
      readAll([...limiters.values()].map((l) => [l.name, l.stats] as const))
    ])
    const checksReport = Object.fromEntries(results)
    for (const [name, state] of fromRegistries) breakerStates[name] = state
    const anyFailing = results.some(([, r]) => r.status !== "healthy")
    const anyOpen = Object.values(breakerStates).some((s) => s !== "Closed")
    return {
      status: anyFailing ? "unhealthy" : anyOpen ? "degraded" : "healthy",
      checks: checksReport,
      breakers: breakerStates,
      bulkheads: bulkheadStats,
      limiters: limiterStats
    } satisfies Report
  })

/**
 * The default breaker of a check.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultPolicy = (name: string): CircuitBreaker.Policy =>
  CircuitBreaker.consecutive({ name: `health ${name}`, threshold: 3, openFor: "30 seconds" })

/**
 * Builds a checker; the checks' breakers live in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<HealthChecker, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const defaults = yield* decodeTimeout({ timeout: options.timeout })
    const defaultTimeout = defaults.timeout ?? Duration.seconds(5)
    const checks = new Map<string, Registered>()
    const breakers = new Map<string, Stateful>()
    const bulkheads = new Map<string, WithStats>()
    const limiters = new Map<string, WithStats>()
    const registries = new Set<CircuitBreaker.RegistryService>()

    const addCheck = (name: string, input: Effect.Effect<unknown, unknown> | CheckOptions) =>
      Effect.gen(function*() {
        const spec: CheckOptions = Effect.isEffect(input) ? { check: input } : input
        const decoded = yield* decodeTimeout({ name, timeout: spec.timeout })
        const breaker = yield* Scope.extend(CircuitBreaker.make(spec.policy ?? defaultPolicy(name)), scope)
        checks.set(name, {
          name,
          breaker,
          run: spec.check,
          within: Timeout.within({ duration: decoded.timeout ?? defaultTimeout, operation: `health ${name}` })
        })
      })

    for (const [name, check] of Object.entries(options.checks ?? {})) yield* addCheck(name, check)
    for (const b of options.breakers ?? []) breakers.set(b.name, b)
    for (const b of options.bulkheads ?? []) bulkheads.set(b.name, b)
    for (const l of options.limiters ?? []) limiters.set(l.name, l)
    for (const r of options.registries ?? []) registries.add(r)

    const check = checkAll({ checks, breakers, bulkheads, limiters, registries })

    const httpApp = Effect.map(check, (report) =>
      HttpServerResponse.unsafeJson(report, {
        status: report.status === "unhealthy" ? 503 : 200,
        headers: { "cache-control": "no-store" } as any
      }))

    return {
      addCheck,
      registerBreaker: (b) => Effect.sync(() => void breakers.set(b.name, b)),
      registerRegistry: (r) => Effect.sync(() => void registries.add(r)),
      registerBulkhead: (b) => Effect.sync(() => void bulkheads.set(b.name, b)),
      registerLimiter: (l) => Effect.sync(() => void limiters.set(l.name, l)),
      check,
      httpApp
    } satisfies HealthChecker
  })

/**
 * Provides `Health`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Health, InvalidOptionsError> =>
  Layer.scoped(Health, make(options))

/**
 * Runs the checks of the `Health` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const check: Effect.Effect<Report, never, Health> = Effect.flatMap(Health, (h) => h.check)

/**
 * The `/health` route of the `Health` in context: JSON `Report`, 200 or 503.
 *
 * @since 0.1.0
 * @category http
 */
export const httpApp: Effect.Effect<HttpServerResponse.HttpServerResponse, never, Health> = Effect.flatMap(
  Health,
  (h) => h.httpApp
)
