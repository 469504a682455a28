/**
 * A `SqlClient` that is still a `SqlClient`: every statement it makes is a statement (usable as
 * a fragment of another, with `raw`, `values`, `unprepared`, `withoutTransform`, `compile`)
 * whose execution goes through `hooks.statement`, and `withTransaction` goes through
 * `hooks.transaction`. Everything else — helpers, `reserve`, `reactive`, driver extras such as
 * PgClient's `json` or `listen` — is the wrapped client's own.
 *
 * `@effect/sql` is an optional peer: its runtime values arrive in `modules`, loaded by the caller
 * only when a wrapper is made, so importing this package does not require it.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import { identity } from "effect/Function"

/** The runtime values of `@effect/sql` the wrapper needs. */
export interface SqlModules {
  readonly SqlClient: typeof SqlClient
  readonly SqlError: typeof SqlError
  readonly Statement: typeof Statement
}

/** Loads `@effect/sql` (an optional peer) on first use. */
export const load: Effect.Effect<SqlModules> = Effect.promise(async () => {
  const [client, error, statement] = await Promise.all([
    import("@effect/sql/SqlClient"),
    import("@effect/sql/SqlError"),
    import("@effect/sql/Statement")
  ])
  return { SqlClient: client, SqlError: error.SqlError, Statement: statement }
})

export interface Hooks {
  /** runs one execution of `statement` (`effect` is the statement, or its `raw`, `values`, …) */
  readonly statement: <A>(
    effect: Effect.Effect<A, SqlError>,
    statement: Statement.Statement<unknown>
  ) => Effect.Effect<A, SqlError>
  readonly transaction: <A, E, R>(
    original: SqlClient.SqlClient,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError, R>
}

/** Wraps `client` so that its statements and transactions run through `hooks`. */
export const wrapClient = (modules: SqlModules, client: SqlClient.SqlClient, hooks: Hooks): SqlClient.SqlClient => {
  const fragmentId = modules.Statement.FragmentId

  class ProtectedStatement<A> extends Effectable.Class<ReadonlyArray<A>, SqlError> {
    constructor(readonly inner: Statement.Statement<A>) {
      super()
    }
    get [fragmentId]() {
      return identity
    }
    get segments() {
      return this.inner.segments
    }
    commit(): Effect.Effect<ReadonlyArray<A>, SqlError> {
      return hooks.statement(this.inner, this.inner)
    }
    get raw() {
      return hooks.statement(this.inner.raw, this.inner)
    }
    get withoutTransform() {
      return hooks.statement(this.inner.withoutTransform, this.inner)
    }
    get values() {
      return hooks.statement(this.inner.values, this.inner)
    }
    get unprepared() {
      return hooks.statement(this.inner.unprepared, this.inner)
    }
    /** a stream's lifetime is its consumer's: it is not timed, and not counted by the breaker */
    get stream() {
      return this.inner.stream
    }
    compile(withoutTransform?: boolean | undefined) {
      return this.inner.compile(withoutTransform)
    }
    toJSON() {
      return (this.inner as unknown as { toJSON: () => unknown }).toJSON()
    }
  }

  const protect = (result: unknown): unknown =>
    Effect.isEffect(result) && modules.Statement.isFragment(result)
      ? new ProtectedStatement(result as Statement.Statement<unknown>)
      : result

  const wrap = (original: SqlClient.SqlClient): SqlClient.SqlClient => {
    const wrapped = Object.assign(
      (strings: TemplateStringsArray | string, ...args: Array<unknown>) =>
        protect((original as unknown as (...a: Array<unknown>) => unknown)(strings, ...args)),
      original
    ) as unknown as { -readonly [K in keyof SqlClient.SqlClient]: SqlClient.SqlClient[K] }
    let withoutTransforms: SqlClient.SqlClient | undefined
    wrapped.unsafe = (sql, params) => protect(original.unsafe(sql, params)) as any
    wrapped.withTransaction = (effect) => hooks.transaction(original, effect)
    wrapped.safe = wrapped as SqlClient.SqlClient
    wrapped.withoutTransforms = () => {
      if (withoutTransforms === undefined) {
        const plain = original.withoutTransforms()
        withoutTransforms = plain === original ? (wrapped as SqlClient.SqlClient) : wrap(plain)
      }
      return withoutTransforms
    }
    return wrapped as SqlClient.SqlClient
  }
  return wrap(client)
}
