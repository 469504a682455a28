/**
 * The circuit-breaker stage: one breaker per route (`"GET /users/:id"`, never one per URL), from
 * `policy(route)` in a `CircuitBreaker.Registry`. A response with a failure status (default ≥ 500)
 * or a handler's error is a failure, any other response a success; a request answered by an inner
 * stage, or whose client went away, counts as neither — a half-open probe whose client aborts gives
 * its slot back, so the breaker never stays HalfOpen for want of an outcome. Open → `503
 * circuit_open` with `Retry-After`.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { InvalidOptionsError } from "../Errors.js"
import * as Classify from "../internal/breaker/classify.js"
import * as Engine from "../internal/breaker/engine.js"
import * as options_ from "../internal/options.js"
import type { Outcome, RequestRecord, Stage } from "../internal/server/record.js"
import * as reject from "../internal/server/reject.js"

/**
 * Options of `make`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** the server's name, for `resilience_http_rejected_total{name}` (default `"http"`) */
  readonly name?: string
  /** default: `CircuitBreaker.sre({ name: route })`, go-zero's adaptive breaker */
  readonly policy?: (route: string) => CircuitBreaker.Policy
  /** the registry to hold the route breakers (pass the one `Health` reports) */
  readonly registry?: CircuitBreaker.RegistryService
  /** which statuses count as failures (default: ≥ 500) */
  readonly isFailure?: (status: number) => boolean
  /** `false` switches the breaker off for requests matching a configured route pattern */
  readonly routes?: Readonly<Record<string, boolean>>
}

const isFunction = (u: unknown): u is (...args: ReadonlyArray<any>) => any => typeof u === "function"
const FunctionSchema = Schema.declare(isFunction, { message: () => "expected a function" })
const RegistrySchema = Schema.declare(
  (u: unknown): u is CircuitBreaker.RegistryService =>
    typeof u === "object" && u !== null && Effect.isEffect((u as { names?: unknown }).names),
  { message: () => "expected a CircuitBreaker registry" }
)

/**
 * The schema of `Options`.
 *
 * @since 0.3.0
 * @category schemas
 */
export const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  policy: Schema.optional(FunctionSchema),
  registry: Schema.optional(RegistrySchema),
  isFailure: Schema.optional(FunctionSchema),
  routes: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Boolean }))
})

const decode = options_.decodeOptions("ResilientHttpServer.breaker", OptionsSchema, { exact: true })

/**
 * A breaker stage, with the registry of its route breakers.
 *
 * @since 0.3.0
 * @category models
 */
export interface Breaker extends Stage {
  readonly kind: "breaker"
  readonly registry: CircuitBreaker.RegistryService
}

const defaultPolicy = (route: string) => CircuitBreaker.sre({ name: route })

/** Builds one breaker from the policy so that a bad policy fails here, not as a 500 per request. */
const checkPolicy = (policy: (route: string) => CircuitBreaker.Policy) =>
  Effect.scoped(CircuitBreaker.make(policy("GET /"))).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new InvalidOptionsError({
          module: "ResilientHttpServer.breaker",
          option: "policy",
          value: undefined,
          reason: `the policy failed: ${String(defect)}`
        })
      )
    ),
    Effect.mapError((e) =>
      new InvalidOptionsError({
        module: "ResilientHttpServer.breaker",
        option: `policy.${e.option}`,
        value: e.value,
        reason: e.reason
      })
    )
  )

/**
 * Builds the stage; the breakers live in the current scope.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Breaker, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* decode(options)
    const policy = options.policy ?? defaultPolicy
    if (options.registry === undefined) yield* checkPolicy(policy)
    const registry = options.registry ??
      (yield* CircuitBreaker.makeRegistry({ policy, idleTimeToLive: "10 minutes" }))
    const isFailure = options.isFailure ?? ((status: number) => status >= 500)
    const off = new Set(Object.entries(options.routes ?? {}).filter(([, on]) => !on).map(([p]) => p))
    const rejected = reject.rejecter(options.name ?? "http")
    const admitted = (record: RequestRecord) => (permit: CircuitBreaker.Permit) => {
      record.permit = permit
    }
    const allowOf = (record: RequestRecord, breaker: CircuitBreaker.CircuitBreaker) =>
      Effect.mapBoth(breaker.allow, {
        onFailure: (e) => rejected("circuit_open", 503, e.message, record.route, Option.fromNullable(e.retryAfter)),
        onSuccess: admitted(record)
      })
    const breakers = new RouteBreakers(registry)
    return {
      kind: "breaker",
      registry,
      admit: (record: RequestRecord) => {
        if (record.pattern !== undefined && off.has(record.pattern)) return undefined
        const breaker = breakers.get(record.route, record.arrivedAt)
        if (breaker === undefined) {
          return Effect.flatMap(registry.get(record.route), (breaker) => {
            breakers.remember(record.route, breaker, record.arrivedAt)
            return allowOf(record, breaker)
          })
        }
        const permit = breaker.allowNow()
        if (permit instanceof Engine.PermitImpl) {
          record.permit = permit
          return undefined
        }
        return Effect.mapBoth(permit, {
          onFailure: (e) => rejected("circuit_open", 503, e.message, record.route, Option.fromNullable(e.retryAfter)),
          onSuccess: admitted(record)
        })
      },
      release: (record: RequestRecord, outcome: Outcome) => {
        const permit = record.permit
        if (permit === undefined) return undefined
        record.permit = undefined
        // abandoned, refused by an inner stage, or timed out by a deadline timer that fired late
        // because this process was busy: none of these says anything about the route
        const ignored = outcome.status === undefined || record.rejected || record.timedOutLate
        const failed = !ignored && isFailure(outcome.status!)
        const reason = failed
          ? (typeof outcome.reason === "number" ? `status ${outcome.reason}` : outcome.reason)
          : undefined
        if (permit instanceof Engine.PermitImpl) {
          return permit.settleNow(
            ignored ? Classify.IGNORE : failed ? Classify.classifyReported(reason) : Classify.SUCCESS,
            reason
          )
        }
        return ignored ? permit.ignore : failed ? permit.failure(reason) : permit.success
      }
    }
  })

/** Route breakers looked up again at most this often, so the registry sees them in use. */
const refreshMillis = 1000

/** Route keys held at once (they are bounded by the router's patterns; this bounds the rest). */
const maxRoutes = 1000

/**
 * The toolkit's own breakers of the registry by route, so that a request takes its permit in one
 * synchronous step. A breaker the registry evicted (disposed) is looked up again; so is every
 * breaker once a `refreshMillis`, which keeps the registry's idle order right. A breaker of another
 * kind (a shadow-mode view, a user's registry) is never held here: it is looked up per request.
 */
class RouteBreakers {
  private readonly map = new Map<string, { readonly breaker: Engine.Breaker; readonly at: number }>()
  constructor(readonly registry: CircuitBreaker.RegistryService) {}
  get(route: string, now: number): Engine.Breaker | undefined {
    const held = this.map.get(route)
    if (held === undefined || held.breaker.disposed || now - held.at >= refreshMillis) return undefined
    return held.breaker
  }
  remember(route: string, breaker: CircuitBreaker.CircuitBreaker, now: number): void {
    if (!(breaker instanceof Engine.Breaker)) return
    if (this.map.size >= maxRoutes && !this.map.has(route)) this.map.clear()
    this.map.set(route, { breaker, at: now })
  }
}
