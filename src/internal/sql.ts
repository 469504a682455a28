/**
 * What a failed SQL operation means for a breaker and a retry: the pure classification behind
 * `ResilientSql`. It reads SQLSTATE codes (PostgreSQL's `code`, MySQL's `sqlState`), Node
 * network error codes, and a few driver messages, through the `cause` chain of an `SqlError`.
 */
import * as Predicate from "effect/Predicate"

/**
 * - `rejected`: a circuit breaker refused the call; nothing was sent
 * - `timeout`: the statement ran out of time and was cancelled (or the server cancelled it)
 * - `not-sent`: no connection could be made; the statement never reached the database
 * - `connection-lost`: the connection broke while the statement ran; it may have been applied
 * - `unavailable`: the server is failing (out of disk or memory, shutting down, I/O errors)
 * - `contention`: a serialization failure, deadlock or lock timeout; the database rolled it back
 * - `error`: the database answered with an error of the statement itself (constraint, syntax, …)
 * - `other`: not a database failure (an error of the caller's own code)
 */
export type Kind =
  | "rejected"
  | "timeout"
  | "not-sent"
  | "connection-lost"
  | "unavailable"
  | "contention"
  | "error"
  | "other"

/** Network failures while connecting: nothing reached the server. */
const connectCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN"
])

/** Network failures of an open connection: what was sent may have run. */
const lostCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTCONN",
  "PROTOCOL_CONNECTION_LOST",
  "ERR_STREAM_DESTROYED"
])

/** SQLite's "try again": the statement did not run. */
const sqliteBusy: ReadonlySet<string> = new Set(["SQLITE_BUSY", "SQLITE_LOCKED"])

/** SQLSTATE codes that name a connection that could not be opened. */
const notSentStates: ReadonlySet<string> = new Set([
  "08001", // sqlclient_unable_to_establish_sqlconnection
  "08004", // sqlserver_rejected_establishment_of_sqlconnection
  "53300", // too_many_connections (raised while connecting)
  "57P03" // cannot_connect_now (starting up, or in recovery)
])

const contentionStates: ReadonlySet<string> = new Set([
  "40001", // serialization_failure (also MySQL's deadlock)
  "40P01", // deadlock_detected
  "55P03" // lock_not_available
])

const lostStates: ReadonlySet<string> = new Set([
  "57P01", // admin_shutdown: the server ended this session
  "57P02", // crash_shutdown
  "08007" // transaction_resolution_unknown
])

/** Driver messages of a connection that could not be opened, or broke. */
const notSentMessages = [
  /failed to acquire connection/i,
  /timeout exceeded when trying to connect/i,
  /connection terminated due to connection timeout/i,
  /not queryable/i
]
const lostMessages = [
  /connection terminated/i,
  /connection (was )?(lost|closed|reset)/i,
  /server closed the connection/i
]

const isSqlState = (u: unknown): u is string => typeof u === "string" && /^[0-9A-Z]{5}$/.test(u)

const stringProperty = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? u[key] : undefined

const tagOf = (u: unknown): string | undefined => stringProperty(u, "_tag")

/** The kind named by one error object alone, without looking at its causes. */
const ownKind = (u: unknown): Kind | undefined => {
  switch (tagOf(u)) {
    case "CircuitOpenError":
      return "rejected"
    case "TimeoutError":
    case "TimeoutException":
      return "timeout"
  }
  const code = stringProperty(u, "code")
  if (code !== undefined) {
    if (connectCodes.has(code)) return "not-sent"
    if (lostCodes.has(code)) return "connection-lost"
    if (sqliteBusy.has(code)) return "contention"
  }
  const state = isSqlState(stringProperty(u, "sqlState")) ? stringProperty(u, "sqlState") : code
  if (isSqlState(state)) return stateKind(state)
  return undefined
}

/** The kind of a SQLSTATE code (PostgreSQL appendix A; MySQL maps its errors onto the same classes). */
export const stateKind = (state: string): Kind => {
  if (notSentStates.has(state)) return "not-sent"
  if (contentionStates.has(state)) return "contention"
  if (lostStates.has(state)) return "connection-lost"
  if (state === "57014") return "timeout" // query_canceled: statement_timeout, or a cancel request
  const cls = state.slice(0, 2)
  if (cls === "08") return "connection-lost" // connection exception on an open connection
  if (cls === "53" || cls === "58" || cls === "57") return "unavailable" // resources, system, operator
  return "error"
}

const causes = (u: unknown): ReadonlyArray<unknown> => {
  const list: Array<unknown> = []
  if (Predicate.hasProperty(u, "cause") && u.cause !== undefined) list.push(u.cause)
  // a connection to several addresses (localhost: ::1 and 127.0.0.1) fails with an AggregateError
  if (Predicate.hasProperty(u, "errors") && Array.isArray(u.errors)) list.push(...u.errors)
  return list
}

/**
 * The kind of a failure: the first error in the `cause` chain that names one (a tag, a network
 * code, a SQLSTATE), then the driver's messages; `other` when nothing says "database".
 */
export const classify = (failure: unknown): Kind => {
  let sawSqlError = false
  const messages: Array<string> = []
  const visit = (u: unknown, depth: number): Kind | undefined => {
    if (depth > 6 || !Predicate.isObject(u)) return undefined
    if (tagOf(u) === "SqlError") sawSqlError = true
    const own = ownKind(u)
    if (own !== undefined) return own
    const message = stringProperty(u, "message")
    if (message !== undefined) messages.push(message)
    for (const cause of causes(u)) {
      const kind = visit(cause, depth + 1)
      if (kind !== undefined) return kind
    }
    return undefined
  }
  const found = visit(failure, 0)
  if (found !== undefined) return found
  if (!sawSqlError) return "other"
  if (messages.some((m) => notSentMessages.some((re) => re.test(m)))) return "not-sent"
  if (messages.some((m) => lostMessages.some((re) => re.test(m)))) return "connection-lost"
  return "error"
}

/** Whether a breaker should count the failure against the database (it did not answer well). */
export const isBreakerFailure = (kind: Kind): boolean =>
  kind === "not-sent" || kind === "connection-lost" || kind === "unavailable" || kind === "timeout"

/**
 * Whether one statement outside a transaction may be sent again: when it surely did not apply
 * (never sent, or rolled back by the database), or when it may have but repeating it is harmless.
 */
export const isStatementRetryable = (kind: Kind, idempotent: () => boolean): boolean => {
  switch (kind) {
    case "not-sent":
    case "contention":
      return true
    case "connection-lost":
    case "timeout":
      return idempotent()
    default:
      return false
  }
}

/**
 * Whether a whole transaction may be run again: a transaction that failed before its COMMIT was
 * rolled back (a lost connection ends it on the server too), so the transient kinds are safe. A
 * failed COMMIT surfaces as a defect, which is never retried.
 */
export const isTransactionRetryable = (kind: Kind): boolean =>
  kind === "not-sent" || kind === "contention" || kind === "connection-lost" || kind === "timeout"

/** Strips leading blanks, comments and opening parentheses. */
const leading = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*/

const writes = /\b(?:insert|update|delete|merge|into|nextval|setval|pg_advisory\w*)\b/i

/**
 * Whether a statement only reads, judged from its text: it starts with SELECT, WITH, SHOW,
 * VALUES, TABLE or EXPLAIN (not EXPLAIN ANALYZE) and names no writing keyword or function
 * (`INSERT`, `UPDATE` — so `SELECT … FOR UPDATE` too —, `DELETE`, `MERGE`, `INTO`, `nextval`,
 * `setval`, advisory locks).
 * Conservative: a read it cannot vouch for is treated as a write.
 */
export const isReadOnly = (sql: string): boolean => {
  const body = sql.replace(leading, "")
  const first = /^[A-Za-z]+/.exec(body)?.[0].toLowerCase()
  switch (first) {
    case "select":
    case "with":
    case "show":
    case "values":
    case "table":
      return !writes.test(body)
    case "explain":
      return !/^explain\s*(\(\s*)?analy[sz]e/i.test(body) && !writes.test(body)
    default:
      return false
  }
}
