/**
 * The demo's scenario in one place: the four phases (offered load and the downstream's behaviour
 * in each), the users and their tiers, the warm-up and the driver's limits. The demo runs it; a
 * simulation of the same phases can import it to compare with a real run.
 */
import * as Flaky from "../shared/flakyServer.js"
import type { Behaviour } from "../shared/flakyServer.js"
import type { PhaseSpec } from "./model.js"

export interface Phase extends PhaseSpec {
  /** What the downstream does during the phase. */
  readonly downstream: Partial<Behaviour>
}

export interface User {
  readonly id: string
  readonly tier: "free" | "pro"
  /** Relative share of the traffic this user sends. */
  readonly weight: number
}

/** Requests the load driver keeps in flight at most; one more is recorded as skipped. */
export const MAX_IN_FLIGHT = 256

/** The driver's own limit on one request, after which it is aborted and counted as failed. */
export const REQUEST_TIMEOUT_MS = 5000

/** The downstream in the healthy phases: 15–25 ms and 1 % errors. */
export const healthyDownstream: Partial<Behaviour> = { ...Flaky.healthy, errorRate: 0.01 }

/**
 * The phases at `scale` (in (0, 1]): 1 is the full run of 37 s; durations shrink with the scale
 * but never below 0.6 s, and the rates stay the same.
 */
export const phases = (scale = 1): ReadonlyArray<Phase> => {
  const seconds = (s: number) => Math.max(600, Math.round(s * 1000 * scale))
  return [
    {
      name: "normal",
      title: "Normal traffic",
      description:
        "healthy downstream (15–25 ms, 1 % errors); one free-tier user sends a quarter of the traffic and meets its rate limit",
      durationMs: seconds(8),
      rps: 100,
      downstream: healthyDownstream
    },
    {
      name: "outage",
      title: "Downstream outage",
      description:
        "the downstream answers 503 to everything; the client retries, then its per-host breaker and the route breaker open and calls fail fast",
      durationMs: seconds(10),
      rps: 100,
      downstream: { down: true }
    },
    {
      name: "overload",
      title: "Overload",
      description:
        "four times the traffic while the downstream slows down (150–250 ms, 2 % of calls hang for 2 s): more requests would be in flight than the API allows, so max connections (and load shedding, once the API's event loop is busy more than 90 % of the time) answer the excess with an immediate 503 instead of queueing it; the per-try timeout and retries absorb the hung calls",
      durationMs: seconds(9),
      rps: 400,
      downstream: { down: false, latencyMs: 150, jitterMs: 100, errorRate: 0.01, hangRate: 0.02, hangMs: 2000 }
    },
    {
      name: "recovery",
      title: "Recovery",
      description: "normal traffic on a healthy downstream: breakers close again and almost everything is admitted",
      durationMs: seconds(10),
      rps: 100,
      downstream: healthyDownstream
    }
  ]
}

/** Alice, on the free tier, sends 3/11 of the traffic; eight pro users share the rest. */
export const users: ReadonlyArray<User> = [
  { id: "alice", tier: "free", weight: 3 },
  ...Array.from({ length: 8 }, (_, i) => ({ id: `pro-${i + 1}`, tier: "pro" as const, weight: 1 }))
]

/**
 * Before the first phase, not recorded: requests from users of their own, a few at a time, each
 * waiting for its answer, so that every process has compiled its hot paths (and opened its
 * connections) before the load starts, however slowly a busy machine runs them.
 */
export const warmup = (scale = 1): Warmup => ({
  requests: Math.max(100, Math.round(600 * scale)),
  concurrency: 8,
  users: Array.from({ length: 8 }, (_, i) => ({ id: `warmup-${i + 1}`, tier: "pro" as const, weight: 1 }))
})

export interface Warmup {
  readonly requests: number
  /** Requests in flight at once. */
  readonly concurrency: number
  /** Taken in turn; they are not the users of the phases, whose rate limits stay untouched. */
  readonly users: ReadonlyArray<User>
}
