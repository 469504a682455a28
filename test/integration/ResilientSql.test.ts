/**
 * ResilientSql against a real PostgreSQL (started by the test on a loopback port) through
 * `@effect/sql-pg`: a healthy query, a constraint violation, a serialization failure, a slow
 * query cut by the deadline and cancelled on the server, and the database stopped mid-run.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as ResilientSql from "../../src/ResilientSql.js"
import * as Retry from "../../src/Retry.js"
import * as Timeout from "../../src/Timeout.js"
import { failureOf } from "../support.js"
import { postgresMissing, type PostgresServer, startPostgres } from "./postgresServer.js"

const missing = postgresMissing()
if (missing !== undefined) console.log(`skipping the PostgreSQL tests: ${missing}`)

const retries = (name: string) =>
  Effect.map(Metric.value(Metric.tagged(Retry.retriesTotal, "name", name)), (state) => state.count)

describe.skipIf(missing !== undefined)("ResilientSql (real PostgreSQL)", () => {
  let server: PostgresServer

  beforeAll(async () => {
    server = await startPostgres()
  }, 120_000)

  afterAll(async () => {
    await server?.destroy()
  }, 60_000)

  /** Runs `body` with the protected `SqlClient` of a fresh pool and its `Database`. */
  const withDb = <A, E>(
    options: ResilientSql.Options,
    body: (sql: SqlClient.SqlClient, db: ResilientSql.ResilientSql) => Effect.Effect<A, E>
  ) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* ResilientSql.Database
      return yield* body(sql, db)
    }).pipe(
      Effect.provide(
        ResilientSql.layer(options).pipe(
          Layer.provide(PgClient.layer({ url: Redacted.make(server.url), maxConnections: 4, idleTimeout: "5 seconds" }))
        )
      )
    )

  it.live("a healthy query goes through and counts as a success", () =>
    withDb({ name: "pg-healthy" }, (sql, db) =>
      Effect.gen(function*() {
        expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
        const breaker = Option.getOrThrow(db.breaker)
        expect(yield* breaker.stats).toMatchObject({ state: "Closed", successes: 1, failures: 0 })
      })))

  it.live("a constraint violation is returned at once, not retried, and not a breaker failure", () =>
    withDb({ name: "pg-constraint" }, (sql, db) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)`
        yield* sql`INSERT INTO users ${sql.insert({ id: 1, name: "ada" })}`
        const error = failureOf(yield* Effect.exit(sql`INSERT INTO users ${sql.insert({ id: 1, name: "bob" })}`))
        expect(ResilientSql.classify(error)).toBe("error")
        expect(error).toMatchObject({ _tag: "SqlError", cause: { code: "23505" } })
        expect(yield* retries("pg-constraint")).toBe(0)
        const breaker = Option.getOrThrow(db.breaker)
        expect(yield* breaker.stats).toMatchObject({ failures: 0 })
        expect(yield* sql`SELECT name FROM users`).toEqual([{ name: "ada" }])
      })))

  it.live("a serialization failure rolls the transaction back and runs it again from the start", () =>
    withDb({ name: "pg-serialization" }, (sql) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)`
        yield* sql`INSERT INTO accounts VALUES (1, 100)`
        const snapshotTaken = yield* Deferred.make<void>()
        const concurrentCommitted = yield* Deferred.make<void>()
        let attempts = 0
        // repeatable read: the snapshot is taken by the first query; an update of a row another
        // transaction changed since then fails with 40001 "could not serialize access"
        const credit = sql.withTransaction(Effect.gen(function*() {
          attempts++
          yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
          yield* sql`SELECT balance FROM accounts WHERE id = 1`
          if (attempts === 1) {
            yield* Deferred.succeed(snapshotTaken, undefined)
            yield* Deferred.await(concurrentCommitted)
          }
          yield* sql`UPDATE accounts SET balance = balance + 10 WHERE id = 1`
        }))
        const fiber = yield* Effect.fork(credit)
        yield* Deferred.await(snapshotTaken)
        yield* sql`UPDATE accounts SET balance = balance + 1 WHERE id = 1`
        yield* Deferred.succeed(concurrentCommitted, undefined)
        expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
        expect(attempts).toBe(2)
        expect(yield* sql`SELECT balance FROM accounts WHERE id = 1`).toEqual([{ balance: 111 }])
        expect(yield* retries("pg-serialization")).toBe(1)
      })))

  it.live("a slow query hits the caller's deadline, fails with a TimeoutError and is cancelled on the server", () =>
    withDb({ name: "pg-slow", retry: false }, (sql) =>
      Effect.gen(function*() {
        const started = Date.now()
        const error = failureOf(yield* Effect.exit(sql`SELECT pg_sleep(30)`.pipe(Timeout.deadline("500 millis"))))
        const elapsed = Date.now() - started
        expect(Option.map(ResilientSql.rejection(error), (e) => e._tag)).toEqual(Option.some("TimeoutError"))
        expect(elapsed).toBeGreaterThanOrEqual(490)
        expect(elapsed).toBeLessThan(15_000)
        // the backend no longer runs it: the driver sent a cancel request when it was interrupted
        const running = sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'`
        let left = (yield* running)[0].n
        for (let i = 0; i < 200 && left > 0; i++) {
          yield* Effect.sleep("50 millis")
          left = (yield* running)[0].n
        }
        expect(left).toBe(0)
      })))

  it.live("a statement timed out mid-query, then the same fiber goes on querying, in and out of a transaction", () =>
    withDb({ name: "pg-timeout-then-on", retry: false, timeout: "300 millis" }, (sql) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE notes (id int PRIMARY KEY)`
        for (let i = 0; i < 3; i++) {
          // the statement's own timeout, nested in an explicit one and in a longer deadline
          const slow = sql`SELECT pg_sleep(30)`.pipe(Timeout.within("20 seconds"), Timeout.deadline("25 seconds"))
          const error = failureOf(yield* Effect.exit(slow))
          expect(Option.map(ResilientSql.rejection(error), (e) => e._tag)).toEqual(Option.some("TimeoutError"))
          // the fiber was not interrupted: it sleeps and queries as usual
          yield* Effect.sleep("20 millis")
          expect(yield* sql`SELECT ${i}::int AS n`).toEqual([{ n: i }])
          const inTransaction = sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO notes VALUES (${i})`
            return yield* sql`SELECT pg_sleep(30)`
          }))
          expect(Exit.isFailure(yield* Effect.exit(inTransaction))).toBe(true)
          expect(yield* sql`SELECT count(*)::int AS n FROM notes`).toEqual([{ n: 0 }])
        }
      })))

  it.live(
    "the database stopped mid-run: the breaker opens and fails fast, then closes after the restart",
    () =>
      withDb({
        name: "pg-outage",
        breaker: CircuitBreaker.consecutive({ name: "pg-outage", threshold: 3, openFor: "500 millis" })
      }, (sql, db) =>
        Effect.gen(function*() {
          const breaker = Option.getOrThrow(db.breaker)
          const kinds: Array<{ readonly kind: string; readonly millis: number }> = []
          const query = Effect.gen(function*() {
            const started = Date.now()
            const exit = yield* Effect.exit(sql`SELECT 1 AS one`)
            kinds.push({
              kind: Exit.isSuccess(exit) ? "success" : ResilientSql.classify(failureOf(exit)),
              millis: Date.now() - started
            })
          })
          const waitFor = (kind: string, from: number) =>
            Effect.gen(function*() {
              for (let i = 0; i < 1_200 && !kinds.slice(from).some((k) => k.kind === kind); i++) {
                yield* Effect.sleep("50 millis")
              }
              return kinds.slice(from).some((k) => k.kind === kind)
            })
          const loop = yield* Effect.fork(Effect.forever(Effect.zipRight(query, Effect.sleep("20 millis"))))
          expect(yield* waitFor("success", 0)).toBe(true)

          yield* Effect.promise(() => server.stop())
          const stoppedAt = kinds.length
          expect(yield* waitFor("rejected", stoppedAt)).toBe(true)
          const duringOutage = kinds.slice(stoppedAt)
          expect(duringOutage.some((k) => k.kind === "not-sent" || k.kind === "connection-lost")).toBe(true)
          // refusals are answered without a round trip to the database
          const rejections = duringOutage.filter((k) => k.kind === "rejected")
          expect(rejections.some((k) => k.millis < 50)).toBe(true)

          yield* Effect.promise(() => server.start())
          const restartedAt = kinds.length
          expect(yield* waitFor("success", restartedAt)).toBe(true)
          yield* Fiber.interrupt(loop)
          expect(yield* breaker.state).toBe("Closed")
          expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
        })),
    120_000
  )
})
