/**
 * The simulated service's client for its downstream (retries, per-try timeout, a breaker and a
 * bulkhead for the host, as `ResilientHttpClient` has them) and per-user rate limits by tier.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Simulator from "../src/Simulator.js"

const runSync = (input: unknown) => Effect.runSync(Simulator.run(input))
const share = (p: Simulator.PhaseSummary, outcome: keyof Simulator.PhaseSummary["outcomes"]) =>
  p.outcomes[outcome] / p.offered

const base = {
  name: "client",
  seed: 5,
  stack: { Timeout: 1000, Middlewares: { Breaker: false, Shedding: false } },
  downstream: { latency: { distribution: "uniform", minMs: 15, maxMs: 25 } },
  traffic: { arrivals: "uniform" }
}

describe("Simulator: the service's client and rate-limit tiers", () => {
  it("retries turn most transient errors into successes", () => {
    const flaky = {
      ...base,
      phases: [{ name: "flaky", durationSeconds: 30, rps: 100, downstream: { errorRate: 0.3 } }]
    }
    const once = runSync(flaky).phases[0]
    const retried = runSync({ ...flaky, client: { retries: 2 } }).phases[0]
    expect(share(once, "ok")).toBeGreaterThan(0.65)
    expect(share(once, "ok")).toBeLessThan(0.75)
    // three tries all fail with 0.3³ = 2.7 %
    expect(share(retried, "failed")).toBeGreaterThan(0.01)
    expect(share(retried, "failed")).toBeLessThan(0.05)
  })

  it("a per-try timeout and a retry absorb hung calls that the request's deadline would not", () => {
    const hanging = {
      ...base,
      phases: [{ name: "hangs", durationSeconds: 30, rps: 100, downstream: { hangRate: 0.1, hangMs: 2000 } }]
    }
    const plain = runSync(hanging).phases[0]
    expect(share(plain, "timeout")).toBeGreaterThan(0.07)
    const client = runSync({ ...hanging, client: { timeoutMs: 300, retries: 2 } }).phases[0]
    expect(share(client, "ok")).toBeGreaterThan(0.98)
    expect(client.p99Ms!).toBeLessThan(1000)
  })

  it("the host's breaker opens in an outage: calls fail fast with breakerOpen and are not retried", () => {
    const report = runSync({
      ...base,
      stack: { ...base.stack, Breaker: { Window: "5 seconds", Buckets: 20 } },
      client: { breaker: true, retries: 2 },
      phases: [
        { name: "normal", durationSeconds: 10, rps: 100 },
        { name: "outage", durationSeconds: 10, rps: 100, downstream: { down: true } },
        { name: "recovery", durationSeconds: 20, rps: 100 }
      ]
    })
    const [normal, outage, recovery] = report.phases
    expect(share(normal, "ok")).toBeGreaterThan(0.99)
    expect(share(outage, "breakerOpen")).toBeGreaterThan(0.6)
    expect(outage.by.breaker).toBe(0)
    expect(share(recovery, "ok")).toBeGreaterThan(0.8)
    expect(report.stack).toContain("client: a breaker for the host, 2 retries (backoff 100–2000 ms, full jitter)")
  })

  it("a full bulkhead sheds the calls it cannot queue", () => {
    const report = runSync({
      ...base,
      // 100 ms calls at 100/s need 10 at once: 5 serve half of them
      downstream: { latency: { distribution: "constant", ms: 100 } },
      client: { bulkhead: { maxConcurrent: 5 } },
      phases: [{ name: "steady", durationSeconds: 30, rps: 100 }]
    }).phases[0]
    expect(share(report, "shed")).toBeGreaterThan(0.45)
    expect(share(report, "shed")).toBeLessThan(0.55)
    expect(report.by.connections).toBe(0)
  })

  it("users of a tier take from the tier's limit", () => {
    const report = runSync({
      ...base,
      stack: { ...base.stack, RateLimit: { Rate: 1000, Burst: 1000 } },
      tiers: { free: { rate: 10, burst: 10 }, pro: { rate: 60, burst: 60 } },
      traffic: {
        arrivals: "uniform",
        users: [
          { id: "alice", weight: 3, tier: "free" },
          ...Array.from({ length: 8 }, (_, i) => ({ id: `pro-${i + 1}`, weight: 1, tier: "pro" }))
        ]
      },
      phases: [{ name: "normal", durationSeconds: 60, rps: 100 }]
    })
    const [normal] = report.phases
    // alice sends 3/11 of 100/s, about 27/s, and gets 10/s: 17/s of 100/s are refused
    expect(share(normal, "rateLimited")).toBeGreaterThan(0.15)
    expect(share(normal, "rateLimited")).toBeLessThan(0.19)
    expect(report.stack).toContain("rate limit of tier free 10/s per user, burst 10")
    const unknown = Effect.runSync(Effect.flip(Simulator.run({
      ...base,
      traffic: { users: [{ id: "bob", weight: 1, tier: "gold" }] },
      phases: [{ name: "x", durationSeconds: 1, rps: 1 }]
    })))
    expect(unknown.message).toContain("gold")
  })
})
