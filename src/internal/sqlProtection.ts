/**
 * The protection of one database: an operation is retry(breaker(timeout(work))), counted once;
 * statements inside a transaction or inside another operation are only timed. The pure decisions
 * (what a failure is, what may be repeated) are in `./sql.js`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Backoff from "../Backoff.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { CircuitOpenError, TimeoutError } from "../Errors.js"
import * as Retry from "../Retry.js"
import * as Timeout from "../Timeout.js"
import * as classification from "./sql.js"
import type { Hooks, SqlModules } from "./sqlClient.js"

export const operationsTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_sql_operations_total", {
  description: "SQL statements and transactions run through a protected client, by outcome",
  incremental: true
})

/** The `CircuitOpenError` or `TimeoutError` an error is, or carries as the `cause` of an `SqlError`. */
export const rejection = (error: unknown): Option.Option<CircuitOpenError | TimeoutError> => {
  const isRejection = (u: unknown): u is CircuitOpenError | TimeoutError =>
    Predicate.isTagged(u, "CircuitOpenError") || Predicate.isTagged(u, "TimeoutError")
  if (isRejection(error)) return Option.some(error)
  if (Predicate.isTagged(error, "SqlError") && Predicate.hasProperty(error, "cause") && isRejection(error.cause)) {
    return Option.some(error.cause)
  }
  return Option.none()
}

type Outcome = classification.Kind | "success" | "defect" | "interrupted"
type OperationType = "statement" | "transaction"

const counterFor = (name: string) => {
  const cache = new Map<string, Metric.Metric.Counter<number>>()
  return (type: OperationType, outcome: Outcome) => {
    const key = `${type} ${outcome}`
    let counter = cache.get(key)
    if (counter === undefined) {
      counter = operationsTotal.pipe(
        Metric.tagged("name", name),
        Metric.tagged("type", type),
        Metric.tagged("outcome", outcome)
      )
      cache.set(key, counter)
    }
    return counter
  }
}

const outcomeOf = <A, E>(exit: Exit.Exit<A, E>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  if (Exit.isInterrupted(exit)) return "interrupted"
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  return failure === undefined ? "defect" : classification.classify(failure)
}

/**
 * Runs the first attempt plainly (the success path builds no schedule driver); after a failure,
 * `policyFor(failure)` decides whether and how to go on.
 */
const retryAfterFailure = <A, E, R>(
  attempt: Effect.Effect<A, E, R>,
  policyFor: (failure: E) => Schedule.Schedule<unknown, E> | undefined
): Effect.Effect<A, E, R> =>
  Effect.catchAll(attempt, (first) => {
    const policy = policyFor(first)
    if (policy === undefined) return Effect.fail(first)
    return Effect.flatMap(Schedule.driver(policy), (driver) => {
      const loop = (error: E): Effect.Effect<A, E, R> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(attempt, loop)
        })
      return loop(first)
    })
  })

/** The decoded options of one protected database. */
export interface Settings {
  readonly name: string
  readonly breaker: CircuitBreaker.CircuitBreaker | undefined
  readonly timeout: Duration.Duration | undefined
  readonly retry:
    | {
      readonly times: number
      readonly schedule: Schedule.Schedule<unknown, unknown> | undefined
      readonly idempotent: (sql: string) => boolean
      readonly transactions: boolean
    }
    | undefined
}

type Policy = Schedule.Schedule<unknown, unknown>

/** The three retry policies, built once: writes, idempotent statements, transactions. */
const retryPolicies = (name: string, retry: NonNullable<Settings["retry"]>) => {
  const base = (retry.schedule ?? Backoff.exponential({ base: "50 millis", cap: "1 second", jitter: "full" }))
    .pipe(Schedule.intersect(Schedule.recurs(retry.times)))
  const policy = (retryable: (kind: classification.Kind) => boolean): Policy =>
    Retry.policy({ name, schedule: base, while: (e: unknown) => retryable(classification.classify(e)) })
  return {
    safe: policy((kind) => classification.isStatementRetryable(kind, () => false)),
    idempotent: policy((kind) => classification.isStatementRetryable(kind, () => true)),
    transaction: retry.transactions ? policy(classification.isTransactionRetryable) : undefined
  }
}

type Rejections = CircuitOpenError | TimeoutError

/** The client's own rejections travel as `SqlError`s, the only error its statements declare. */
const sqlErrorsOf = (modules: SqlModules) =>
<A, E, R>(
  effect: Effect.Effect<A, E | Rejections, R>
): Effect.Effect<A, Exclude<E, Rejections> | SqlError, R> =>
  Effect.mapError(effect, (error) => {
    const inner = rejection(error)
    return Option.isSome(inner) && inner.value === error
      ? new modules.SqlError({ cause: error, message: inner.value.message })
      : error as Exclude<E, Rejections>
  })

/**
 * The policy after a statement failed: one that may have applied (a lost connection, a timeout)
 * is sent again only when `idempotent` says so.
 */
const statementPolicy = (
  policies: ReturnType<typeof retryPolicies> | undefined,
  idempotent: () => boolean
) =>
(failure: unknown): Policy | undefined => {
  if (policies === undefined) return undefined
  const kind = classification.classify(failure)
  if (kind !== "connection-lost" && kind !== "timeout") return policies.safe
  return idempotent() ? policies.idempotent : policies.safe
}

type Within = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>

const isFailure = (e: unknown) => classification.isBreakerFailure(classification.classify(e))

/**
 * One protected operation: retry(breaker(timeout(effect))). `nested` marks the work as inside
 * it, for effects that may run protected statements or transactions of their own.
 */
const operationFor = (parts: {
  readonly breaker: Settings["breaker"]
  readonly timeout: Within | undefined
  readonly policies: ReturnType<typeof retryPolicies> | undefined
  readonly counter: ReturnType<typeof counterFor>
  readonly insideOperation: FiberRef.FiberRef<boolean>
}) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>,
  type: OperationType,
  options: { readonly timed: boolean; readonly nested: boolean },
  policyFor: (failure: E | Rejections) => Policy | undefined
): Effect.Effect<A, E | Rejections, R> => {
  const { breaker, counter, insideOperation, policies, timeout } = parts
  let attempt: Effect.Effect<A, E | Rejections, R> = options.nested
    ? Effect.locally(effect, insideOperation, true)
    : effect
  if (options.timed && timeout !== undefined) attempt = timeout(attempt)
  if (breaker !== undefined) attempt = breaker.protect(attempt, { isFailure })
  const retried = policies === undefined ? attempt : retryAfterFailure(attempt, policyFor)
  return Effect.onExit(retried, (exit) => Metric.increment(counter(type, outcomeOf(exit))))
}

/** The protection of one database, for `wrapClient` and for the explicit operations. */
export const make = (modules: SqlModules, settings: Settings) => {
  const { breaker, name } = settings
  const timeout: Within | undefined = settings.timeout === undefined
    ? undefined
    : Timeout.within({ duration: settings.timeout, operation: name })
  const policies = settings.retry === undefined ? undefined : retryPolicies(name, settings.retry)
  const idempotent = settings.retry?.idempotent ?? classification.isReadOnly

  /** Set while a protected operation runs: statements inside it are timed, not counted or retried again. */
  const insideOperation = FiberRef.unsafeMake(false)
  const operation = operationFor({ breaker, timeout, policies, counter: counterFor(name), insideOperation })

  const inTransaction = (context: Context.Context<never>) =>
    Option.isSome(Context.getOption(context, modules.SqlClient.TransactionConnection))

  const asSqlErrors = sqlErrorsOf(modules)

  const statement: Hooks["statement"] = (effect, inner) =>
    Effect.withFiberRuntime((fiber) => {
      // inside a transaction or another protected operation: timed only, never retried alone
      if (fiber.getFiberRef(insideOperation) || inTransaction(fiber.currentContext)) {
        return timeout === undefined ? effect : asSqlErrors(timeout(effect))
      }
      const run = operation(
        effect,
        "statement",
        { timed: true, nested: false },
        statementPolicy(policies, () => idempotent(inner.compile()[0]))
      )
      return asSqlErrors(run)
    })

  /** Transactions are not timed as a whole (their statements are), nor retried when nested. */
  const transaction = <A, E, R>(original: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>) =>
    Effect.withFiberRuntime<A, E | SqlError | CircuitOpenError, R>((fiber) =>
      fiber.getFiberRef(insideOperation) || inTransaction(fiber.currentContext)
        ? original.withTransaction(effect) // part of an operation already protected (a savepoint when nested)
        : operation(
          original.withTransaction(effect),
          "transaction",
          { timed: false, nested: true },
          () => policies?.transaction
        ) as Effect.Effect<A, E | SqlError | CircuitOpenError, R>
    )

  const protect = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: { readonly idempotent?: boolean | undefined }
  ): Effect.Effect<A, E | Rejections, R> =>
    operation(
      effect,
      "statement",
      { timed: true, nested: true },
      () => policies === undefined ? undefined : options?.idempotent === true ? policies.idempotent : policies.safe
    )

  const hooks: Hooks = {
    statement,
    transaction: (original, effect) => asSqlErrors(transaction(original, effect))
  }
  return { hooks, protect, transaction }
}
