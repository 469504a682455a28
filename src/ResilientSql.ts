/**
 * Protection for `@effect/sql` (go-zero puts a breaker on every SQL call; this does that and
 * more). For one database:
 *
 * - a **circuit breaker** (`CircuitBreaker.sre` by default): connection failures, lost
 *   connections, timeouts and a failing server count as failures; a constraint violation, a
 *   syntax error or a serialization failure does not (the database answered);
 * - a **timeout per statement** through `Timeout.within`, so it is clamped to the caller's
 *   deadline (`Timeout.deadline`, or the one the resilient HTTP server starts); the statement is
 *   interrupted, which makes the driver cancel it on the server (`pg_cancel_backend` for
 *   `@effect/sql-pg`);
 * - **retries** with exponential backoff and full jitter, only when repeating is safe: a
 *   statement that never reached the database or that the database rolled back (serialization
 *   failure, deadlock, lock timeout) is retried; one cut off by a lost connection or a timeout
 *   only if it only reads; never a constraint violation, a syntax error or any other error.
 *   Statements inside a transaction are never retried alone: the transaction is retried as a
 *   whole, from its start, when it failed before its `COMMIT` for one of those reasons;
 * - **metrics**: `resilience_sql_operations_total{name,type,outcome}`, the breaker's, the
 *   timeouts' and `resilience_retries_total{name}`.
 *
 * `layer` replaces the `SqlClient` in context with the protected one, so code that uses `sql`
 * gets protection without changes; `make` / `wrap` give the same client and the explicit
 * `protect` and `transaction`.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer, Redacted } from "effect"
 * import { ResilientSql } from "effect-resilience"
 *
 * const SqlLive = ResilientSql.layer({ name: "orders-db", timeout: "2 seconds" }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 *
 * const findOrder = (id: number) =>
 *   Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM orders WHERE id = ${id}`)
 * ```
 *
 * @since 0.2.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { CircuitOpenError, InvalidOptionsError, TimeoutError } from "./Errors.js"
import { Name, NonNegativeInt, PositiveDuration, toInvalidOptions } from "./internal/options.js"
import * as classification from "./internal/sql.js"
import * as sqlClient from "./internal/sqlClient.js"
import * as protection from "./internal/sqlProtection.js"

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * Options of `make`, `wrap` and `layer`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** names the database in metrics, logs, the default breaker and timeouts (default `"sql"`) */
  readonly name?: string | undefined
  /**
   * a breaker policy (built in the current scope), a breaker of your own (shared with a health
   * check, say), or `false` for none (default `CircuitBreaker.sre({ name })`)
   */
  readonly breaker?: CircuitBreaker.Policy | CircuitBreaker.CircuitBreaker | false | undefined
  /** per-statement timeout, clamped to the caller's deadline (default 10 seconds); `false`: none */
  readonly timeout?: Duration.DurationInput | false | undefined
  /** default: up to 2 retries, exponential from 50 ms, capped at 1 s, full jitter; `false`: none */
  readonly retry?:
    | false
    | {
      /** retries after the first attempt (default 2) */
      readonly times?: number | undefined
      /** the backoff (see `Backoff`); `times` still applies */
      readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
      /**
       * whether a statement may run twice when it is unknown if its first run applied (a lost
       * connection, a timeout); default: statements that only read (`SELECT`, `WITH` without
       * writes, `SHOW`, `VALUES`, `TABLE`, `EXPLAIN`), judged from the SQL text
       */
      readonly idempotent?: ((sql: string) => boolean) | undefined
      /** retry a whole transaction that failed before `COMMIT` for a transient reason (default `true`) */
      readonly transactions?: boolean | undefined
    }
    | undefined
}

/**
 * A protected database.
 *
 * @since 0.2.0
 * @category models
 */
export interface ResilientSql {
  readonly name: string
  /**
   * the protected client: statements, `withTransaction`, helpers. Its rejections are
   * `SqlError`s whose `cause` is the `CircuitOpenError` or `TimeoutError` (see `rejection`), so
   * code typed against `SqlClient` keeps compiling and handling them
   */
  readonly client: SqlClient.SqlClient
  readonly breaker: Option.Option<CircuitBreaker.CircuitBreaker>
  /**
   * runs `effect` as one protected operation with typed rejections: through the breaker, within
   * the timeout, retried when it never reached the database or was rolled back (and, with
   * `idempotent: true`, when cut off by a lost connection or a timeout). Protected statements
   * inside it are timed but not counted or retried again
   */
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: { readonly idempotent?: boolean | undefined }
  ) => Effect.Effect<A, E | CircuitOpenError | TimeoutError, R>
  /**
   * runs `effect` in a transaction (a savepoint when already in one), with typed rejections; an
   * outermost transaction goes through the breaker and is retried as a whole as `client`'s are
   */
  readonly transaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError | CircuitOpenError, R>
}

/**
 * The protected database provided by `layer`, next to the protected `SqlClient`.
 *
 * @since 0.2.0
 * @category tags
 */
export class Database extends Context.Tag("effect-resilience/ResilientSql")<Database, ResilientSql>() {}

/**
 * `resilience_sql_operations_total{name,type,outcome}`: protected operations (`type` is
 * `statement` or `transaction`) by outcome: `success`, `error` (the database refused the
 * statement), `contention`, `not-sent`, `connection-lost`, `unavailable`, `timeout`,
 * `rejected` (the breaker was open), `other` (a failure of the caller's own code inside a
 * transaction), `defect`, `interrupted`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const operationsTotal: Metric.Metric.Counter<number> = protection.operationsTotal

/**
 * The `CircuitOpenError` or `TimeoutError` inside an `SqlError` of the protected client (or the
 * error itself, when it is one).
 *
 * @since 0.2.0
 * @category getters
 */
export const rejection: (error: unknown) => Option.Option<CircuitOpenError | TimeoutError> = protection.rejection

/**
 * How a failure of a database operation is read by the breaker and the retries (see
 * `classify`).
 *
 * @since 0.2.0
 * @category models
 */
export type FailureKind = classification.Kind

/**
 * Classifies a failure: `rejected`, `timeout`, `not-sent` (no connection; the statement never
 * reached the database), `connection-lost` (it may have applied), `unavailable` (the server is
 * failing: out of resources, shutting down), `contention` (serialization failure, deadlock, lock
 * timeout: rolled back), `error` (the database refused the statement: constraint, syntax, data,
 * permission) or `other` (not a database failure). Reads SQLSTATE codes (PostgreSQL, MySQL), Node
 * network codes and driver messages through the `cause` chain.
 *
 * @since 0.2.0
 * @category predicates
 */
export const classify: (failure: unknown) => FailureKind = classification.classify

/**
 * The default `retry.idempotent`: whether a statement only reads, judged from its text.
 *
 * @since 0.2.0
 * @category predicates
 */
export const isReadOnly: (sql: string) => boolean = classification.isReadOnly

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const isBreakerOrPolicy = (u: unknown): u is CircuitBreaker.Policy | CircuitBreaker.CircuitBreaker =>
  Predicate.isObject(u) &&
  ((Predicate.hasProperty(u, "protect") && typeof u.protect === "function") ||
    (Predicate.hasProperty(u, "_tag") && Predicate.hasProperty(u, "options")))

const BreakerSchema = Schema.declare(isBreakerOrPolicy, {
  identifier: "CircuitBreaker",
  message: () => "expected a CircuitBreaker policy, a CircuitBreaker or false"
})
const ScheduleSchema = Schema.declare(
  (u: unknown): u is Schedule.Schedule<unknown, unknown> => Schedule.isSchedule(u),
  { identifier: "Schedule", message: () => "expected a Schedule" }
)
const FunctionSchema = Schema.declare(
  (u: unknown): u is (sql: string) => boolean => typeof u === "function",
  { identifier: "Function", message: () => "expected a function" }
)

const OptionsSchema = Schema.Struct({
  name: Schema.optional(Name),
  breaker: Schema.optional(Schema.Union(Schema.Literal(false), BreakerSchema)),
  timeout: Schema.optional(Schema.Union(Schema.Literal(false), PositiveDuration)),
  // the struct first, so that a bad field inside it is the issue reported (`retry.times`)
  retry: Schema.optional(Schema.Union(
    Schema.Struct({
      times: Schema.optional(NonNegativeInt),
      schedule: Schema.optional(ScheduleSchema),
      idempotent: Schema.optional(FunctionSchema),
      transactions: Schema.optional(Schema.Boolean)
    }),
    Schema.Literal(false)
  ))
})

const decodeOptions = (input: unknown): Effect.Effect<typeof OptionsSchema.Type, InvalidOptionsError> => {
  const result = Schema.decodeUnknownEither(OptionsSchema, { errors: "first", onExcessProperty: "error" })(input)
  return Either.isRight(result)
    ? Effect.succeed(result.right)
    : Effect.fail(toInvalidOptions("ResilientSql", input, result.left))
}

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

const settingsOf = (
  o: typeof OptionsSchema.Type
): Effect.Effect<protection.Settings, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = o.name ?? "sql"
    const breaker = o.breaker === false
      ? undefined
      : o.breaker === undefined
      ? yield* CircuitBreaker.make(CircuitBreaker.sre({ name }))
      : "protect" in o.breaker
      ? o.breaker as CircuitBreaker.CircuitBreaker
      : yield* CircuitBreaker.make(o.breaker as CircuitBreaker.Policy)
    const retry = o.retry === false ? undefined : o.retry ?? {}
    return {
      name,
      breaker,
      timeout: o.timeout === false ? undefined : o.timeout ?? Duration.seconds(10),
      retry: retry === undefined ? undefined : {
        times: retry.times ?? 2,
        schedule: retry.schedule,
        idempotent: retry.idempotent ?? classification.isReadOnly,
        transactions: retry.transactions ?? true
      }
    }
  })

/**
 * Protects a given client (for a client under a tag of your own; `make` takes the one in
 * context). The breaker, when built from a policy, lives in the current scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const wrap = (
  client: SqlClient.SqlClient,
  options: Options = {}
): Effect.Effect<ResilientSql, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* Effect.flatMap(decodeOptions(options), settingsOf)
    const modules = yield* sqlClient.load
    const guard = protection.make(modules, settings)
    return {
      name: settings.name,
      client: sqlClient.wrapClient(modules, client, guard.hooks),
      breaker: Option.fromNullable(settings.breaker),
      protect: guard.protect,
      transaction: (effect) => guard.transaction(client, effect)
    } satisfies ResilientSql
  })

/**
 * Protects the `SqlClient` in context.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<ResilientSql, InvalidOptionsError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.flatMap(
    sqlClient.load,
    (modules) => Effect.flatMap(modules.SqlClient.SqlClient, (client) => wrap(client, options))
  )

/**
 * Replaces the `SqlClient` in context with the protected one, and provides `Database`. Provide
 * the driver's layer to it with `Layer.provide` (not `provideMerge`, which would offer both
 * clients); code that asks for a driver-specific tag (`PgClient`) still gets the unprotected one.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer, Redacted } from "effect"
 * import { CircuitBreaker, ResilientSql } from "effect-resilience"
 *
 * const SqlLive = ResilientSql.layer({
 *   name: "orders-db",
 *   breaker: CircuitBreaker.consecutive({ name: "orders-db", threshold: 5, openFor: "10 seconds" }),
 *   timeout: "2 seconds",
 *   retry: { times: 3 }
 * }).pipe(Layer.provide(PgClient.layer({ url: Redacted.make("postgres://localhost/orders") })))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SqlClient.SqlClient | Database, InvalidOptionsError, SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.flatMap(sqlClient.load, (modules) =>
      Effect.map(
        make(options),
        (db) => Context.make(modules.SqlClient.SqlClient, db.client).pipe(Context.add(Database, db))
      ))
  )

/**
 * Runs `effect` as one protected operation of the `Database` in context (see
 * `ResilientSql.protect`).
 *
 * @since 0.2.0
 * @category combinators
 */
export const protect = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: { readonly idempotent?: boolean | undefined }
): Effect.Effect<A, E | CircuitOpenError | TimeoutError, R | Database> =>
  Effect.flatMap(Database, (db) => db.protect(effect, options))

/**
 * Runs `effect` in a transaction of the `Database` in context, retried as a whole when it failed
 * before `COMMIT` for a transient reason (see `ResilientSql.transaction`).
 *
 * @since 0.2.0
 * @category combinators
 */
export const transaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError | CircuitOpenError, R | Database> =>
  Effect.flatMap(Database, (db) => db.transaction(effect))
