/**
 * ResilientSql against a scripted driver (a real `SqlClient` over a fake connection), under
 * TestClock: what is retried, what the breaker counts, timeouts within the deadline,
 * transactions retried as a whole. The real PostgreSQL tests are in integration/ResilientSql.test.ts.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Metric, Option, Schedule, Stream, TestClock } from "effect"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { InvalidOptionsError } from "../src/Errors.js"
import * as ResilientSql from "../src/ResilientSql.js"
import * as Timeout from "../src/Timeout.js"
import { failureOf } from "./support.js"

// ---------------------------------------------------------------------------------------------
// a scripted driver

const pgError = (code: string, message: string) =>
  new SqlError({
    cause: Object.assign(new Error(message), { code, severity: "ERROR" }),
    message: "Failed to execute statement"
  })
const networkError = (code: string) =>
  new SqlError({ cause: Object.assign(new Error(`connect ${code}`), { code }), message: "Failed to execute statement" })

const uniqueViolation = () => pgError("23505", "duplicate key value violates unique constraint")
const serializationFailure = () => pgError("40001", "could not serialize access due to concurrent update")
const refused = () => networkError("ECONNREFUSED")
const reset = () => networkError("ECONNRESET")

type Reply = ReadonlyArray<unknown> | SqlError | "hang"

interface Driver {
  /** every SQL text executed, in order */
  readonly log: Array<string>
  /** statements interrupted while running */
  readonly cancelled: Array<string>
  /** replies for the next executions whose SQL contains the key, consumed in order; default `[]` rows */
  readonly script: Map<string, Array<Reply>>
  readonly client: SqlClient.SqlClient
}

const makeDriver = Effect.gen(function*() {
  const log: Array<string> = []
  const cancelled: Array<string> = []
  const script = new Map<string, Array<Reply>>()
  const run = (sql: string): Effect.Effect<ReadonlyArray<any>, SqlError> =>
    Effect.suspend(() => {
      log.push(sql)
      const key = [...script.keys()].find((k) => sql.includes(k))
      const reply = key === undefined ? undefined : script.get(key)!.shift()
      if (reply === undefined) return Effect.succeed([{ ok: 1 }])
      if (reply === "hang") return Effect.onInterrupt(Effect.never, () => Effect.sync(() => cancelled.push(sql)))
      if (reply instanceof SqlError) return Effect.fail(reply)
      return Effect.succeed(reply)
    })
  const connection: SqlConnection.Connection = {
    execute: (sql) => run(sql),
    executeRaw: (sql) => run(sql),
    executeValues: (sql) => Effect.map(run(sql), (rows) => rows.map((row) => Object.values(row as object))),
    executeUnprepared: (sql) => run(sql),
    executeStream: (sql) => Stream.fromIterableEffect(run(sql))
  }
  const client = yield* SqlClient.make({
    acquirer: Effect.succeed(connection),
    compiler: Statement.makeCompilerSqlite(),
    spanAttributes: []
  }).pipe(Effect.provide(Reactivity.layer))
  return { log, cancelled, script, client } satisfies Driver
})

const replies = (driver: Driver, key: string, ...list: Array<Reply>) => driver.script.set(key, list)

const protectedDb = (options: ResilientSql.Options = {}) =>
  Effect.gen(function*() {
    const driver = yield* makeDriver
    const db = yield* ResilientSql.wrap(driver.client, {
      retry: { schedule: Schedule.spaced("100 millis") },
      breaker: false,
      ...options
    })
    return { driver, db, sql: db.client }
  })

/** Runs `effect` on a fiber and moves the TestClock until it is done. */
const settled = <A, E>(effect: Effect.Effect<A, E>, step: Duration.DurationInput = "100 millis", max = 200) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < max && fiber.unsafePoll() === null; i++) yield* TestClock.adjust(step)
    return yield* Fiber.await(fiber)
  })

const operations = (name: string, type: string, outcome: string) =>
  Effect.map(
    Metric.value(
      ResilientSql.operationsTotal.pipe(
        Metric.tagged("name", name),
        Metric.tagged("type", type),
        Metric.tagged("outcome", outcome)
      )
    ),
    (state) => state.count
  )

// ---------------------------------------------------------------------------------------------

describe("ResilientSql.classify", () => {
  it("reads SQLSTATE codes, network codes, driver messages and rejections through the cause chain", () => {
    const cases: Array<[unknown, ResilientSql.FailureKind]> = [
      [uniqueViolation(), "error"],
      [pgError("42601", "syntax error at or near"), "error"],
      [pgError("22P02", "invalid input syntax for type integer"), "error"],
      [serializationFailure(), "contention"],
      [pgError("40P01", "deadlock detected"), "contention"],
      [pgError("55P03", "could not obtain lock"), "contention"],
      [pgError("57P01", "terminating connection due to administrator command"), "connection-lost"],
      [pgError("57P03", "the database system is starting up"), "not-sent"],
      [pgError("53300", "too many connections"), "not-sent"],
      [pgError("53100", "could not extend file: No space left on device"), "unavailable"],
      [pgError("57014", "canceling statement due to statement timeout"), "timeout"],
      [refused(), "not-sent"],
      [reset(), "connection-lost"],
      [networkError("EPIPE"), "connection-lost"],
      [new SqlError({ cause: new AggregateError([refused().cause, refused().cause]), message: "x" }), "not-sent"],
      [
        new SqlError({
          cause: new Error("Connection terminated unexpectedly"),
          message: "Failed to execute statement"
        }),
        "connection-lost"
      ],
      [new SqlError({ cause: new Error("timeout exceeded when trying to connect"), message: "x" }), "not-sent"],
      [new SqlError({ cause: new Error("boom"), message: "Failed to acquire connection" }), "not-sent"],
      [
        new SqlError({
          cause: Object.assign(new Error("Deadlock"), { code: "ER_LOCK_DEADLOCK", sqlState: "40001" }),
          message: "x"
        }),
        "contention"
      ],
      [
        new SqlError({
          cause: Object.assign(new Error("dup"), { code: "ER_DUP_ENTRY", sqlState: "23000" }),
          message: "x"
        }),
        "error"
      ],
      [new SqlError({ cause: Object.assign(new Error("busy"), { code: "SQLITE_BUSY" }), message: "x" }), "contention"],
      [new SqlError({ cause: new Error("something odd"), message: "x" }), "error"],
      [new Error("the caller's own failure"), "other"],
      ["not even an object", "other"]
    ]
    for (const [failure, kind] of cases) expect([failure, ResilientSql.classify(failure)]).toEqual([failure, kind])
  })

  it("judges statements that only read from their text, conservatively", () => {
    const reads = [
      "SELECT * FROM users WHERE id = $1",
      "  -- a comment\n select 1",
      "/* hint */ (SELECT 1) UNION (SELECT 2)",
      "WITH recent AS (SELECT * FROM orders) SELECT count(*) FROM recent",
      "SHOW statement_timeout",
      "VALUES (1), (2)",
      "TABLE users",
      "EXPLAIN SELECT 1"
    ]
    const writes = [
      "INSERT INTO users (name) VALUES ($1)",
      "UPDATE users SET name = $1",
      "DELETE FROM users",
      "WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved",
      "SELECT * INTO backup FROM users",
      "SELECT * FROM jobs FOR UPDATE SKIP LOCKED",
      "SELECT nextval('orders_id_seq')",
      "SELECT pg_advisory_lock(1)",
      "EXPLAIN ANALYZE SELECT 1",
      "CALL refresh()",
      "CREATE TABLE t (id int)",
      ""
    ]
    for (const sql of reads) expect([sql, ResilientSql.isReadOnly(sql)]).toEqual([sql, true])
    for (const sql of writes) expect([sql, ResilientSql.isReadOnly(sql)]).toEqual([sql, false])
  })
})

describe("ResilientSql options", () => {
  const invalid = (options: unknown) =>
    Effect.gen(function*() {
      const driver = yield* makeDriver
      const error = failureOf(yield* Effect.exit(ResilientSql.wrap(driver.client, options as ResilientSql.Options)))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      return error as InvalidOptionsError
    })

  it.scoped("a bad option or an unknown key names the option and the value", () =>
    Effect.gen(function*() {
      expect(yield* invalid({ timeout: -1 })).toMatchObject({ option: "timeout", value: -1 })
      expect(yield* invalid({ retry: { times: 1.5 } })).toMatchObject({ option: "retry.times", value: 1.5 })
      expect(yield* invalid({ breaker: "sre" })).toMatchObject({ option: "breaker", value: "sre" })
      expect(yield* invalid({ name: "" })).toMatchObject({ option: "name" })
      expect(yield* invalid({ timeOut: "1 second" })).toMatchObject({ option: "timeOut", value: "1 second" })
      expect(yield* invalid({ retry: { time: 3 } })).toMatchObject({ option: "retry.time", value: 3 })
      expect(yield* invalid({ retry: true })).toMatchObject({ option: "retry", value: true })
    }))
})

describe("ResilientSql statements", () => {
  it.scoped("a healthy statement, its raw / values / unprepared forms, and a statement used as a fragment", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "healthy" })
      replies(driver, "FROM users", [{ id: 1, name: "ada" }], [{ id: 1, name: "ada" }])
      expect(yield* sql`SELECT * FROM users WHERE id = ${1}`).toEqual([{ id: 1, name: "ada" }])
      expect(yield* sql`SELECT * FROM users`.values).toEqual([[1, "ada"]])
      yield* sql`SELECT 2`.raw
      yield* sql.unsafe("SELECT 3").unprepared
      const inner = sql`SELECT id FROM admins`
      yield* sql`SELECT * FROM t WHERE id IN (${inner})`
      expect(driver.log.at(-1)).toBe("SELECT * FROM t WHERE id IN (SELECT id FROM admins)")
      expect(yield* operations("healthy", "statement", "success")).toBe(5)
    }))

  it.scoped("a constraint violation is returned at once: not retried, not a breaker failure", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "constraint", threshold: 1 }))
      const { driver, sql } = yield* protectedDb({ name: "constraint", breaker })
      replies(driver, "INSERT", uniqueViolation())
      const exit = yield* settled(sql`INSERT INTO users ${sql.insert({ name: "ada" })}`)
      expect(failureOf(exit)).toMatchObject({ _tag: "SqlError", cause: { code: "23505" } })
      expect(driver.log).toEqual([`INSERT INTO users ("name") VALUES (?)`])
      expect(yield* breaker.stats).toMatchObject({ state: "Closed", failures: 0, successes: 1 })
      expect(yield* operations("constraint", "statement", "error")).toBe(1)
    }))

  it.scoped("a serialization failure outside a transaction is retried, even for a write", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "serialization" })
      replies(driver, "UPDATE", serializationFailure(), serializationFailure())
      const exit = yield* settled(sql`UPDATE accounts SET balance = balance - 1`)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(driver.log.length).toBe(3)
      expect(yield* operations("serialization", "statement", "success")).toBe(1)
    }))

  it.scoped("a refused connection is retried; retries stop after `times`", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({
        name: "refused",
        retry: { schedule: Schedule.spaced("100 millis") }
      })
      replies(driver, "INSERT", refused(), refused(), refused(), refused())
      const exit = yield* settled(sql`INSERT INTO t VALUES (1)`)
      expect(ResilientSql.classify(failureOf(exit))).toBe("not-sent")
      expect(driver.log.length).toBe(3) // the first attempt and 2 retries (the default)
      expect(yield* operations("refused", "statement", "not-sent")).toBe(1)
    }))

  it.scoped("a lost connection is retried for a read, not for a write (it may have applied)", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "lost" })
      replies(driver, "SELECT", reset())
      replies(driver, "INSERT", reset())
      expect(Exit.isSuccess(yield* settled(sql`SELECT * FROM t`))).toBe(true)
      expect(ResilientSql.classify(failureOf(yield* settled(sql`INSERT INTO t VALUES (1)`)))).toBe("connection-lost")
      expect(driver.log).toEqual(["SELECT * FROM t", "SELECT * FROM t", "INSERT INTO t VALUES (1)"])
    }))

  it.scoped("retry.idempotent decides for ambiguous failures", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({
        name: "idempotent",
        retry: {
          schedule: Schedule.spaced("100 millis"),
          idempotent: (text) => text.includes("ON CONFLICT DO NOTHING")
        }
      })
      replies(driver, "INSERT", reset())
      expect(Exit.isSuccess(yield* settled(sql`INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING`))).toBe(true)
      expect(driver.log.length).toBe(2)
    }))

  it.scoped("a slow statement times out, is interrupted (cancelled), and the error says so", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "slow", timeout: "1 second", retry: false })
      replies(driver, "pg_sleep", "hang")
      const fiber = yield* Effect.fork(sql`SELECT pg_sleep(60)`)
      yield* TestClock.adjust("999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(SqlError)
      expect(ResilientSql.rejection(error)).toEqual(Option.some(expect.objectContaining({ _tag: "TimeoutError" })))
      expect(driver.cancelled).toEqual(["SELECT pg_sleep(60)"])
      expect(yield* operations("slow", "statement", "timeout")).toBe(1)
    }))

  it.scoped("the statement timeout is clamped to the caller's deadline", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "deadline", timeout: "10 seconds", retry: false })
      replies(driver, "pg_sleep", "hang")
      const fiber = yield* Effect.fork(sql`SELECT pg_sleep(60)`.pipe(Timeout.deadline("300 millis")))
      yield* TestClock.adjust("300 millis")
      const error = failureOf(yield* Fiber.await(fiber))
      expect(Option.map(ResilientSql.rejection(error), (e) => e._tag)).toEqual(Option.some("TimeoutError"))
      expect(driver.cancelled.length).toBe(1)
    }))

  it.scoped("a timed-out read is retried, a timed-out write is not", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "timeout-retry", timeout: "1 second" })
      replies(driver, "SELECT", "hang")
      replies(driver, "UPDATE", "hang")
      expect(Exit.isSuccess(yield* settled(sql`SELECT 1`))).toBe(true)
      expect(Exit.isFailure(yield* settled(sql`UPDATE t SET x = 1`))).toBe(true)
      expect(driver.log).toEqual(["SELECT 1", "SELECT 1", "UPDATE t SET x = 1"])
    }))

  it.scoped("an open breaker fails fast without touching the database; the rejection is an SqlError's cause", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "orders-db", threshold: 3, openFor: "1 minute" })
      )
      const { driver, sql } = yield* protectedDb({ name: "breaker", breaker, retry: false })
      replies(driver, "SELECT", refused(), refused(), refused())
      for (let i = 0; i < 3; i++) yield* Effect.exit(sql`SELECT 1`)
      expect(yield* breaker.state).toBe("Open")
      const error = failureOf(yield* Effect.exit(sql`SELECT 1`))
      expect(error).toBeInstanceOf(SqlError)
      expect(Option.map(ResilientSql.rejection(error), (e) => e._tag)).toEqual(Option.some("CircuitOpenError"))
      expect(ResilientSql.classify(error)).toBe("rejected")
      expect(driver.log.length).toBe(3)
      expect(yield* operations("breaker", "statement", "rejected")).toBe(1)
    }))

  it.scoped("streams pass through untimed and uncounted", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "stream" })
      replies(driver, "FROM big", [{ n: 1 }, { n: 2 }])
      const rows = yield* Stream.runCollect(sql`SELECT n FROM big`.stream)
      expect([...rows]).toEqual([{ n: 1 }, { n: 2 }])
      expect(yield* operations("stream", "statement", "success")).toBe(0)
    }))
})

describe("ResilientSql transactions", () => {
  it.scoped("a serialization failure retries the whole transaction from BEGIN", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "tx-retry" })
      replies(driver, "UPDATE b", serializationFailure())
      const transfer = sql.withTransaction(Effect.gen(function*() {
        yield* sql`UPDATE a SET x = x - 1`
        yield* sql`UPDATE b SET x = x + 1`
      }))
      expect(Exit.isSuccess(yield* settled(transfer))).toBe(true)
      expect(driver.log).toEqual([
        "BEGIN",
        "UPDATE a SET x = x - 1",
        "UPDATE b SET x = x + 1",
        "ROLLBACK",
        "BEGIN",
        "UPDATE a SET x = x - 1",
        "UPDATE b SET x = x + 1",
        "COMMIT"
      ])
      expect(yield* operations("tx-retry", "transaction", "success")).toBe(1)
      // the statements inside the transaction are not operations of their own
      expect(yield* operations("tx-retry", "statement", "contention")).toBe(0)
    }))

  it.scoped("a write cut off by a lost connection inside a transaction retries the transaction", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "tx-lost" })
      replies(driver, "INSERT", reset())
      const exit = yield* settled(sql.withTransaction(sql`INSERT INTO t VALUES (1)`))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(driver.log.filter((s) => s === "BEGIN").length).toBe(2)
    }))

  it.scoped("a constraint violation rolls back once and is not retried", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "tx-constraint" })
      replies(driver, "INSERT", uniqueViolation())
      const exit = yield* settled(sql.withTransaction(sql`INSERT INTO t VALUES (1)`))
      expect(failureOf(exit)).toMatchObject({ cause: { code: "23505" } })
      expect(driver.log).toEqual(["BEGIN", "INSERT INTO t VALUES (1)", "ROLLBACK"])
    }))

  it.scoped("a nested transaction is a savepoint of the outer one and is not retried on its own", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "tx-nested" })
      replies(driver, "UPDATE inner", serializationFailure())
      const exit = yield* settled(sql.withTransaction(Effect.gen(function*() {
        yield* sql`UPDATE outer_t SET x = 1`
        yield* sql.withTransaction(sql`UPDATE inner_t SET x = 1`)
      })))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(driver.log.filter((s) => s === "BEGIN").length).toBe(2)
      expect(driver.log.filter((s) => s.startsWith("SAVEPOINT")).length).toBe(2)
    }))

  it.scoped("retry.transactions: false leaves a failed transaction failed", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({
        name: "tx-off",
        retry: { schedule: Schedule.spaced("100 millis"), transactions: false }
      })
      replies(driver, "UPDATE", serializationFailure())
      expect(Exit.isFailure(yield* settled(sql.withTransaction(sql`UPDATE t SET x = 1`)))).toBe(true)
      expect(driver.log).toEqual(["BEGIN", "UPDATE t SET x = 1", "ROLLBACK"])
    }))

  it.scoped("a statement timing out inside a transaction rolls it back; the transaction is retried", () =>
    Effect.gen(function*() {
      const { driver, sql } = yield* protectedDb({ name: "tx-timeout", timeout: "1 second" })
      replies(driver, "UPDATE", "hang")
      const exit = yield* settled(sql.withTransaction(sql`UPDATE t SET x = 1`))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(driver.cancelled).toEqual(["UPDATE t SET x = 1"])
      expect(driver.log).toEqual(["BEGIN", "UPDATE t SET x = 1", "ROLLBACK", "BEGIN", "UPDATE t SET x = 1", "COMMIT"])
    }))
})

describe("ResilientSql explicit operations and the layer", () => {
  it.scoped("protect runs a unit of work with typed rejections; statements inside count once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "unit", threshold: 1 }))
      const { db, driver, sql } = yield* protectedDb({ name: "unit", breaker, retry: false })
      const unit = db.protect(Effect.zip(sql`SELECT 1`, sql`SELECT 2`))
      expect(Exit.isSuccess(yield* Effect.exit(unit))).toBe(true)
      expect(yield* operations("unit", "statement", "success")).toBe(1)
      replies(driver, "SELECT 1", refused())
      yield* Effect.exit(unit)
      const rejected = failureOf(yield* Effect.exit(unit))
      expect(rejected).toMatchObject({ _tag: "CircuitOpenError", breaker: "unit" })
    }))

  it.scoped("the layer replaces SqlClient in context and provides Database", () =>
    Effect.gen(function*() {
      const driver = yield* makeDriver
      const DriverLive = Layer.succeed(SqlClient.SqlClient, driver.client)
      replies(driver, "INSERT", serializationFailure())
      const program = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const db = yield* ResilientSql.Database
        yield* sql`INSERT INTO t VALUES (1)`
        return db.name
      })
      const exit = yield* settled(
        program.pipe(Effect.provide(ResilientSql.layer({ name: "layered" }).pipe(Layer.provide(DriverLive))))
      )
      expect(exit).toEqual(Exit.succeed("layered"))
      expect(driver.log.length).toBe(2)
      expect(yield* operations("layered", "statement", "success")).toBe(1)
    }))
})

describe("ResilientSql packaging", () => {
  it("importing the package does not need @effect/sql (an optional peer)", () => {
    const root = fileURLToPath(new URL("..", import.meta.url))
    const deny = "data:text/javascript," + encodeURIComponent(
      `export async function resolve(specifier, context, next) {
        if (specifier.startsWith("@effect/sql")) throw new Error("@effect/sql must not load: " + specifier)
        return next(specifier, context)
      }`
    )
    const register = "data:text/javascript," + encodeURIComponent(
      `import { register } from "node:module"; register(${JSON.stringify(deny)})`
    )
    const child = spawnSync(
      process.execPath,
      ["--import", "tsx", "--import", register, "--input-type=module", "-e", `await import("./src/index.ts")`],
      { cwd: root, encoding: "utf8", timeout: 60_000 }
    )
    expect(child.stderr).toBe("")
    expect(child.status).toBe(0)
  })
})
