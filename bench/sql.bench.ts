/**
 * What ResilientSql adds to a statement: the same statement through a bare `SqlClient` and
 * through the protected one (breaker, timeout, retry policy, metrics), on a connection that
 * answers at once — the floor a real database round trip (≥ 100 µs on loopback) sits on.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as ResilientSql from "../src/ResilientSql.js"
import { effectCase, runSuite, scopedEffectCase } from "./harness.js"

const rows = Effect.succeed([{ id: 1 }])
const connection: SqlConnection.Connection = {
  execute: () => rows,
  executeRaw: () => rows,
  executeValues: () => Effect.succeed([[1]]),
  executeUnprepared: () => rows,
  executeStream: () => {
    throw new Error("not used")
  }
}
/** answers on the next macrotask, as a driver waiting on a socket does */
const asyncConnection: SqlConnection.Connection = {
  ...connection,
  execute: () => Effect.async((resume) => void setImmediate(() => resume(rows)))
}

const clientOn = (conn: SqlConnection.Connection) =>
  Effect.runSync(
    SqlClient.make({ acquirer: Effect.succeed(conn), compiler: Statement.makeCompilerSqlite(), spanAttributes: [] })
      .pipe(
        Effect.provide(Reactivity.layer)
      )
  )

const bare = clientOn(connection)
const bareAsync = clientOn(asyncConnection)
const query = (sql: SqlClient.SqlClient) => sql`SELECT * FROM users WHERE id = ${1}`

await runSuite({
  name: "sql",
  baseline: "bare statement",
  cases: [
    effectCase("bare statement", query(bare)),
    scopedEffectCase(
      "ResilientSql statement (defaults)",
      Effect.map(ResilientSql.wrap(bare), (db) => query(db.client))
    ),
    scopedEffectCase(
      "ResilientSql statement, no breaker, no retry",
      Effect.map(ResilientSql.wrap(bare, { breaker: false, retry: false }), (db) => query(db.client))
    ),
    effectCase("bare statement, async driver", query(bareAsync)),
    scopedEffectCase(
      "ResilientSql statement, async driver",
      Effect.map(ResilientSql.wrap(bareAsync), (db) => query(db.client))
    )
  ],
  note: "Each case builds the statement once and runs it n times on one fiber; the connection answers\n" +
    "synchronously (or on the next macrotask), so the numbers are the client's and the protection's own cost."
})
