/**
 * An open-loop load driver: it sends requests at a fixed rate whatever the answers, up to a cap on
 * requests in flight (a request that would exceed the cap is recorded as `skipped`, not queued),
 * and records every request's send time, status, latency and which protection rejected it.
 *
 * It talks HTTP through `node:http` with a keep-alive agent, so it measures the server under test
 * and not a client library of this project.
 */
import { Clock, Duration, Effect, FiberSet } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import { classify } from "./classify.js"
import type { RequestRecord } from "./model.js"

export interface Target {
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly user: string
}

export interface LoadOptions {
  readonly port: number
  readonly phase: string
  readonly rps: number
  readonly durationMs: number
  /** Requests in flight at most; beyond it a request is recorded as skipped. */
  readonly maxInFlight: number
  /** Client-side limit on one request, after which it is aborted and recorded as failed. */
  readonly requestTimeoutMs: number
  /** Chooses the next request. */
  readonly next: Effect.Effect<Target>
  /** Milliseconds since the start of the run (the recorder's clock). */
  readonly now: Effect.Effect<number>
  readonly record: (r: RequestRecord) => void
  /** Called as a request is sent (its record follows when it is answered). */
  readonly sent?: () => void
}

/** A closed-loop warm-up: `requests` requests, `concurrency` at a time, answers not recorded. */
export interface WarmupOptions {
  readonly port: number
  readonly requests: number
  readonly concurrency: number
  /** Gives up after this long, answered or not. */
  readonly maxMs: number
  readonly requestTimeoutMs: number
  /** The `i`-th request. */
  readonly target: (i: number) => Target
}

export interface Driver {
  /** Drives one phase; returns when its time is over (requests still in flight keep running). */
  readonly run: (options: LoadOptions) => Effect.Effect<void>
  /**
   * Sends the warm-up requests at most `concurrency` at a time (each waits for an answer, so a slow
   * server is never flooded) and returns how many were answered.
   */
  readonly warmup: (options: WarmupOptions) => Effect.Effect<number>
  /** Waits (at most `timeout`) for the requests still in flight. */
  readonly drain: (timeout: Duration.DurationInput) => Effect.Effect<void>
  readonly inFlight: () => number
}

interface Answer {
  readonly status: number
  readonly body: string
}

const MAX_BODY = 4096

const send = (agent: Http.Agent, port: number, target: Target, timeoutMs: number): Effect.Effect<Answer> =>
  Effect.async<Answer>((resume) => {
    let done = false
    const finish = (a: Answer) => {
      if (!done) {
        done = true
        resume(Effect.succeed(a))
      }
    }
    const req = Http.request(
      { host: "127.0.0.1", port, path: target.path, method: "GET", agent, headers: target.headers, timeout: timeoutMs },
      (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          if (body.length < MAX_BODY) body += chunk
        })
        res.on("end", () => finish({ status: res.statusCode ?? 0, body }))
        res.on("error", () => finish({ status: 0, body: "" }))
      }
    )
    req.on("timeout", () => req.destroy(new Error("client timeout")))
    req.on("error", () => finish({ status: 0, body: "" }))
    req.end()
    return Effect.sync(() => {
      done = true
      req.destroy()
    })
  })

/** Creates a driver whose sockets and request fibers belong to the current scope. */
export const make = (options: { readonly maxSockets: number }): Effect.Effect<Driver, never, Scope.Scope> =>
  Effect.gen(function*() {
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() => new Http.Agent({ keepAlive: true, maxSockets: options.maxSockets })),
      (a) => Effect.sync(() => a.destroy())
    )
    const fibers = yield* FiberSet.make<void>()
    let inFlight = 0

    const one = (o: LoadOptions, target: Target) =>
      Effect.gen(function*() {
        const sentAt = yield* o.now
        const start = yield* Clock.currentTimeNanos
        const answer = yield* send(agent, o.port, target, o.requestTimeoutMs)
        const end = yield* Clock.currentTimeNanos
        const c = classify(answer.status, answer.body)
        o.record({
          sentAt,
          phase: o.phase,
          user: target.user,
          status: answer.status,
          latencyMs: Number(end - start) / 1e6,
          outcome: c.outcome,
          by: c.by
        })
      }).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))

    const run = (o: LoadOptions) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        let sent = 0
        const total = Math.round((o.rps * o.durationMs) / 1000)
        while (sent < total) {
          const elapsed = (yield* Clock.currentTimeMillis) - start
          if (elapsed >= o.durationMs) break
          const due = Math.min(total, Math.floor((o.rps * elapsed) / 1000) + 1)
          while (sent < due) {
            sent++
            const target = yield* o.next
            if (inFlight >= o.maxInFlight) {
              o.record({
                sentAt: yield* o.now,
                phase: o.phase,
                user: target.user,
                status: 0,
                latencyMs: 0,
                outcome: "skipped",
                by: "driver-cap"
              })
              continue
            }
            inFlight++
            o.sent?.()
            yield* FiberSet.run(fibers, one(o, target))
          }
          yield* Effect.sleep("5 millis")
        }
        const left = o.durationMs - ((yield* Clock.currentTimeMillis) - start)
        if (left > 0) yield* Effect.sleep(left)
      })

    const drain = (timeout: Duration.DurationInput) =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
        while (inFlight > 0 && (yield* Clock.currentTimeMillis) < deadline) {
          yield* Effect.sleep("20 millis")
        }
        yield* FiberSet.clear(fibers)
      })

    const warmup = (o: WarmupOptions) =>
      Effect.gen(function*() {
        let answered = 0
        yield* Effect.forEach(
          Array.from({ length: o.requests }, (_, i) => i),
          (i) =>
            Effect.map(send(agent, o.port, o.target(i), o.requestTimeoutMs), (a) => {
              if (a.status !== 0) answered++
            }),
          { concurrency: o.concurrency, discard: true }
        ).pipe(Effect.timeoutOption(o.maxMs))
        return answered
      })

    return { run, warmup, drain, inFlight: () => inFlight } satisfies Driver
  })
