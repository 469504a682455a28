/**
 * The data the demo records: one row per request, breaker-state samples, phase boundaries.
 */

/** What happened to one request, from the point of view of the caller. */
export type Outcome =
  | "ok" // 2xx: admitted and served
  | "rateLimited" // 429 from the rate limiter
  | "shed" // 503 from max connections, load shedding or a full bulkhead
  | "breakerOpen" // 503 because a circuit breaker refused the call
  | "timeout" // 503/504 because the request timeout fired
  | "failed" // any other 5xx, or a network error
  | "clientError" // any other 4xx
  | "skipped" // not sent: the load driver was at its concurrency cap

export const outcomes: ReadonlyArray<Outcome> = [
  "ok",
  "rateLimited",
  "shed",
  "breakerOpen",
  "timeout",
  "failed",
  "clientError",
  "skipped"
]

export interface RequestRecord {
  /** Milliseconds since the start of the run at which the request was sent. */
  readonly sentAt: number
  readonly phase: string
  readonly user: string
  /** HTTP status, 0 for a network error or a request that was not sent. */
  readonly status: number
  readonly latencyMs: number
  readonly outcome: Outcome
  /** Which protection answered: "rate-limit", "connections", "cpu", "bulkhead", "breaker:<name>", … */
  readonly by: string
}

export type BreakerState = "Closed" | "HalfOpen" | "Open" | "Isolated"

export interface BreakerSample {
  /** Milliseconds since the start of the run. */
  readonly t: number
  readonly name: string
  readonly state: BreakerState
  /** Adaptive breakers: the share of calls being dropped at random, 0–1. */
  readonly dropRatio?: number
}

export interface PhaseSpec {
  readonly name: string
  readonly title: string
  readonly description: string
  readonly durationMs: number
  /** Offered load, requests per second (open loop). */
  readonly rps: number
}

export interface PhaseWindow extends PhaseSpec {
  readonly startMs: number
  readonly endMs: number
  /** CPU time each process of the demo used during the phase, in milliseconds, by process name. */
  readonly cpuMs?: Readonly<Record<string, number>>
}

/** The server's load shedder at one instant: its overload signal against its threshold. */
export interface OverloadSample {
  /** Milliseconds since the start of the run. */
  readonly t: number
  /** which signal the shedder reads, e.g. "cpu" */
  readonly signal: string
  /** the signal's reading (per-mille for the CPU, ms for delays) */
  readonly value: number
  readonly threshold: number
  /** requests the shedder has let in and is still waiting on */
  readonly flying: number
  /** requests it has dropped since the start */
  readonly dropped: number
}
