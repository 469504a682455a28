/**
 * The demo as a simulator scenario: the same phases, users and tiers (`phases.ts`), and the user
 * API's policies as `api.ts` sets them — max 40 connections, an SRE breaker per route and per
 * downstream host (5 s window in 20 buckets), the server's default load shedder, per-user token
 * buckets (free 10/s, pro 60/s), a 1 s deadline; the client's 300 ms per try, two retries, a
 * bulkhead of 48 with 16 queued for 250 ms.
 *
 * What the simulator cannot know is what a request costs the API's event loop on this machine:
 * `service` says it (CPU per request, and the share of a core the API process gets).
 */
import type { Behaviour } from "../shared/flakyServer.js"
import * as Flaky from "../shared/flakyServer.js"
import type { Phase, User } from "./phases.js"

export interface Service {
  /** CPU time of the API's event loop per request, ms */
  readonly cpuMsPerRequest: number
  /** CPU time of a rejection, ms */
  readonly cpuMsPerRejection: number
  /** CPU time of the client's handling of one downstream try, ms */
  readonly cpuMsPerTry?: number
  /** the share of one core the API process gets while it has work, (0, 1]: one, or one per step of `everyMs` */
  readonly cpuShare: number | { readonly everyMs: number; readonly shares: ReadonlyArray<number> }
}

/** A phase of the simulation: one of the demo's, or one with users of its own (the warm-up). */
export interface SimulatedPhase extends Phase {
  readonly users?: ReadonlyArray<User>
}

/** The flaky downstream's behaviour as the simulator models it. */
export const downstreamOf = (patch: Partial<Behaviour>) => {
  const b = { ...Flaky.healthy, ...patch }
  return {
    latency: { distribution: "uniform" as const, minMs: b.latencyMs, maxMs: b.latencyMs + b.jitterMs },
    errorRate: b.errorRate,
    hangRate: b.hangRate,
    hangMs: b.hangMs,
    down: b.down,
    downLatencyMs: 1
  }
}

/** The demo's run as a simulator scenario (input to `Simulator.run`). */
export const scenario = (
  phases: ReadonlyArray<SimulatedPhase>,
  users: ReadonlyArray<User>,
  service: Service,
  seed = 1
) => ({
  name: "the demo, simulated",
  seed,
  stack: {
    Name: "user-api",
    Timeout: 1000,
    MaxConns: 40,
    Breaker: { Window: "5 seconds", Buckets: 20 }
  },
  service: { ...service, cores: 1 },
  tiers: { free: { rate: 10, burst: 10 }, pro: { rate: 60, burst: 60 } },
  client: {
    timeoutMs: 300,
    retries: 2,
    breaker: true,
    bulkhead: { maxConcurrent: 48, maxQueue: 16, queueTimeoutMs: 250 }
  },
  traffic: { arrivals: "uniform" as const, users: users.map((u) => ({ id: u.id, weight: u.weight, tier: u.tier })) },
  // each phase changes some of the downstream's behaviour and keeps the rest, as the run does
  phases: phases.map((p, i) => ({
    name: p.name,
    durationSeconds: p.durationMs / 1000,
    rps: p.rps,
    downstream: downstreamOf(Object.assign({}, ...phases.slice(0, i + 1).map((q) => q.downstream))),
    ...(p.users === undefined ? {} : { users: p.users.map((u) => ({ id: u.id, weight: u.weight, tier: u.tier })) })
  }))
})
