/**
 * One script call to Redis with a deadline that only counts Redis's lateness.
 *
 * Every call in flight sits in one doubly linked list (oldest first; a call unlinks itself when
 * it completes: no per-call timer, no hashing), swept by one timer every `timeout / 2`. Two things
 * keep a busy Node process from failing calls Redis answered in time:
 *
 * - The sweep measures how late it fires itself: that is event-loop lag, time in which no reply
 *   could have been read. Each call's deadline is extended by the lag observed while it was in
 *   flight, so a call is late only when `elapsed − lag > timeout`.
 * - A due call is failed only after one more turn of the event loop (`setImmediate`, which runs
 *   after the poll phase): replies already sitting in the socket are read first.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { StoreError } from "../../Errors.js"
import type { RawDecision } from "./core.js"

interface Pending {
  /** raw deadline (performance.now ms) */
  readonly at: number
  /** total lag when the call started */
  readonly lag: number
  done: boolean
  prev: Pending | undefined
  next: Pending | undefined
  fail(reason: string): void
}

export interface Deadlines {
  readonly track: (fail: (reason: string) => void) => Pending
  readonly start: (call: EvalCall) => void
  /** marks `p` answered; false when it had already timed out (or was interrupted) */
  readonly settle: (p: Pending) => boolean
  /** event-loop lag seen so far, ms (a busy process, not Redis) */
  readonly lag: () => number
  readonly close: () => void
}

export const makeDeadlines = (timeoutMs: number): Deadlines => {
  let head: Pending | undefined
  let tail: Pending | undefined
  let lag = 0
  const period = Math.max(1, Math.floor(timeoutMs / 2))
  let expected = performance.now() + period
  let checking = false
  const unlink = (p: Pending): void => {
    if (p.prev !== undefined) p.prev.next = p.next
    else head = p.next
    if (p.next !== undefined) p.next.prev = p.prev
    else tail = p.prev
    p.prev = undefined
    p.next = undefined
  }
  const add = (p: Pending): void => {
    p.prev = tail
    if (tail !== undefined) tail.next = p
    else head = p
    tail = p
  }
  const check = () => {
    checking = false
    const now = performance.now()
    let p = head
    // raw deadlines are in order; a call whose raw deadline passed is late only net of the lag
    while (p !== undefined && p.at <= now) {
      const next = p.next
      if (p.at + (lag - p.lag) <= now) {
        unlink(p)
        if (!p.done) {
          p.done = true
          p.fail(`no answer within ${timeoutMs} ms`)
        }
      }
      p = next
    }
  }
  const timer = setInterval(() => {
    const now = performance.now()
    if (now > expected) lag += now - expected
    expected = now + period
    if (!checking && head !== undefined && head.at <= now) {
      checking = true
      setImmediate(check)
    }
  }, period)
  timer.unref()
  const fresh = (fail: (reason: string) => void): Pending => ({
    at: performance.now() + timeoutMs,
    lag,
    done: false,
    prev: undefined,
    next: undefined,
    fail
  })
  return {
    track: (fail) => {
      const p = fresh(fail)
      add(p)
      return p
    },
    start: (call) => {
      call.at = performance.now() + timeoutMs
      call.lag = lag
      add(call)
    },
    settle: (p) => {
      if (p.done) return false
      p.done = true
      unlink(p)
      return true
    },
    lag: () => lag,
    close: () => clearInterval(timer)
  }
}

/** The part of a Redis client a call needs (see `RedisStore.RedisClient`). */
export interface ScriptClient {
  readonly evalsha: (sha: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => Promise<unknown>
  readonly scriptLoad: (script: string) => Promise<unknown>
  readonly eval?:
    | ((script: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => Promise<unknown>)
    | undefined
  /** every key on one server: takes may be batched (see `redisBatch.ts`) */
  readonly singleNode?: boolean | undefined
}

/** What a limiter's calls share. */
export interface CallContext {
  readonly client: ScriptClient
  readonly sha: string
  readonly script: string
  readonly deadlines: Deadlines
  readonly decode: (reply: unknown, cost: number) => RawDecision
  /** what to run before an answer is used: a report to the breaker after failures, else nothing */
  readonly succeeded: () => Effect.Effect<void> | undefined
  readonly failed: (
    key: string,
    cost: number,
    maxDelay: number,
    error: StoreError
  ) => Effect.Effect<RawDecision, StoreError>
}

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const isNoScript = (e: unknown): boolean => errorMessage(e).includes("NOSCRIPT")

/** Sends `script` whole: EVAL is routed by key (the right Cluster node) and caches the script there. */
export const evalWhole = (
  client: ScriptClient,
  sha: string,
  script: string,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string>
): Promise<unknown> =>
  client.eval !== undefined
    ? client.eval(script, keys, args)
    : client.scriptLoad(script).then(() => client.evalsha(sha, keys, args))

/** Runs `script` by SHA; on `NOSCRIPT` (a flush, a restart, a new Cluster node) sends it whole, once. */
export const evalScript = (
  client: ScriptClient,
  sha: string,
  script: string,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string>
): Promise<unknown> =>
  client.evalsha(sha, keys, args).catch((cause) => {
    if (!isNoScript(cause)) throw cause
    return evalWhole(client, sha, script, keys, args)
  })

/**
 * One EVALSHA in flight: its own deadline entry, settled by the reply, the error or the sweep,
 * whichever comes first. A class rather than closures, to keep the per-call garbage small.
 */
export class EvalCall implements Pending {
  at = 0
  lag = 0
  done = false
  prev: Pending | undefined = undefined
  next: Pending | undefined = undefined
  constructor(
    readonly context: CallContext,
    readonly key: string,
    /** the key in Redis */
    readonly redisKey: string,
    readonly args: ReadonlyArray<string>,
    readonly cost: number,
    readonly maxDelay: number,
    /** what the caller does with the decision, run before resuming it (undefined: nothing) */
    readonly then: ((raw: RawDecision) => Effect.Effect<any, any>) | undefined,
    readonly resume: (effect: Effect.Effect<any, any>) => void
  ) {}
  /** starts the call's deadline */
  track(): void {
    this.context.deadlines.start(this)
  }
  /** sends the call alone; `landed` runs when Redis answered or the command failed */
  send(landed?: () => void): void {
    const { client, sha } = this.context
    client.evalsha(sha, [this.redisKey], this.args).then(
      (reply) => {
        if (landed !== undefined) landed()
        this.reply(reply)
      },
      (cause) => {
        if (landed !== undefined) landed()
        this.retryOrFail(cause)
      }
    )
  }
  start(): void {
    this.track()
    this.send()
  }
  retryOrFail(cause: unknown): void {
    if (this.done || !isNoScript(cause)) return this.error(cause)
    const { client, script, sha } = this.context
    evalWhole(client, sha, script, [this.redisKey], this.args).then(
      (reply) => this.reply(reply),
      (e) => this.error(e)
    )
  }
  reply(reply: unknown): void {
    if (!this.context.deadlines.settle(this)) return
    const raw = this.context.decode(reply, this.cost)
    const decided = this.then === undefined ? Exit.succeed(raw) : this.then(raw)
    const report = this.context.succeeded()
    this.resume(report === undefined ? decided : Effect.zipRight(report, decided))
  }
  error(cause: unknown): void {
    if (!this.context.deadlines.settle(this)) return
    this.degrade(new StoreError({ store: "redis", operation: "evalsha", reason: errorMessage(cause), cause }, true))
  }
  fail(reason: string): void {
    this.degrade(new StoreError({ store: "redis", operation: "evalsha", reason }, true))
  }
  degrade(error: StoreError): void {
    const fallback = this.context.failed(this.key, this.cost, this.maxDelay, error)
    this.resume(this.then === undefined ? fallback : Effect.flatMap(fallback, this.then))
  }
}
