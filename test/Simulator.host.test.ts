/**
 * The simulated service on a host it shares, as a real run measures it: a CPU share that changes
 * over time (a trace), the client's CPU per try, the server's deadline as a timer that runs
 * between rounds of I/O, and phases with users of their own.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Host from "../src/internal/simulate/host.js"
import * as Simulator from "../src/Simulator.js"

const runSync = (input: unknown) => Effect.runSync(Simulator.run(input))
const mean = (xs: ReadonlyArray<number | null>) => xs.reduce((a: number, v) => a + (v ?? 0), 0) / xs.length

const base = {
  name: "host",
  seed: 3,
  stack: { Timeout: 1000, Middlewares: { Breaker: false } },
  service: { cpuMsPerRequest: 1.8 },
  downstream: { latency: { distribution: "constant", ms: 20 } },
  phases: [{ name: "steady", durationSeconds: 20, rps: 100 }]
}

describe("Simulator: a shared host", () => {
  it("a constant share and a one-step trace are the same host; a trace switches share at its steps", () => {
    const constant = Host.constant(0.25, 4)
    const trace = Host.trace([0.25], 100, 4)
    for (const t of [0, 3.9, 4, 15.99, 16, 17, 100.5, 1234.567]) {
      expect(trace.onAt(t)).toBeCloseTo(constant.onAt(t), 9)
      expect(trace.finish(t, 7)).toBeCloseTo(constant.finish(t, 7), 9)
    }
    // a quarter of a core for 100 ms, then all of it: 4 ms slices every 16 ms, then no wait
    const stepped = Host.trace([0.25, 1], 100, 4)
    expect(stepped.onAt(5)).toBe(16)
    expect(stepped.finish(0, 10)).toBe(34) // 4 + 4 in [0, 4) and [16, 20), the last 2 in [32, 34)
    expect(stepped.onAt(101)).toBe(101)
    expect(stepped.finish(98, 10)).toBe(108) // [96, 100) holds it until 100, then the core is free
  })

  it("a trace of the CPU share: the loop reads busy, and sheds, only where the process was starved", () => {
    // 100/s × 1.8 ms: 18 % of a core; starved to 0.1 of a core from the 5th to the 15th second
    const shares = Array.from({ length: 200 }, (_, i) => (i >= 50 && i < 150 ? 0.1 : 1))
    const report = runSync({ ...base, service: { ...base.service, cpuShare: { everyMs: 100, shares } } })
    const signal = report.perSecond.signal
    expect(mean(signal.slice(1, 5))).toBeLessThan(0.6)
    expect(mean(signal.slice(6, 15))).toBeGreaterThan(0.95)
    expect(mean(signal.slice(16, 20))).toBeLessThan(0.6)
    const shed = report.perSecond.outcomes.shed
    expect(shed.slice(0, 5).every((n) => n === 0)).toBe(true)
    expect(shed.slice(5, 15).reduce((a, b) => a + b, 0)).toBeGreaterThan(100)
  })

  it("a share that is not a number in (0, 1] fails naming cpuShare", () => {
    const fails = (cpuShare: unknown) =>
      Effect.runSync(Effect.flip(Simulator.run({ ...base, service: { ...base.service, cpuShare } }))).message
    expect(fails({ everyMs: 100, shares: [0.5, 0] })).toContain("cpuShare")
    expect(fails({ everyMs: 0, shares: [0.5] })).toContain("cpuShare")
    expect(fails({ everyMs: 100, shares: [] })).toContain("cpuShare")
  })

  it("the client's CPU per try: retries of an outage keep the loop busier than the requests alone", () => {
    const outage = {
      ...base,
      stack: { Timeout: 1000, Middlewares: { Breaker: false } },
      service: { cpuMsPerRequest: 1, cpuShare: 0.5 },
      client: { retries: 2 },
      phases: [{ name: "outage", durationSeconds: 10, rps: 100, downstream: { down: true } }]
    }
    const without = mean(runSync(outage).perSecond.signal)
    const withTries = mean(runSync({ ...outage, service: { ...outage.service, cpuMsPerTry: 1 } }).perSecond.signal)
    expect(withTries).toBeGreaterThan(without + 0.15)
  })

  it("the server's deadline is a timer: an answer still queued on a starved loop at the deadline is a timeout", () => {
    // 100/s × 8 ms on 0.5 of a core: 1.6 times what the loop can do, without a shedder
    const starved = {
      ...base,
      stack: { Timeout: 300, Middlewares: { Breaker: false, Shedding: false } },
      service: { cpuMsPerRequest: 8, cpuShare: 0.5 },
      phases: [{ name: "starved", durationSeconds: 10, rps: 100 }]
    }
    const [phase] = runSync(starved).phases
    expect(phase.outcomes.timeout / phase.offered).toBeGreaterThan(0.3)
  })

  it("a phase's own users: a warm-up from other users leaves the phases' rate limits untouched", () => {
    const limited = {
      ...base,
      service: { cpuMsPerRequest: 0 },
      tiers: { free: { rate: 10, burst: 10 } },
      traffic: { arrivals: "uniform", users: [{ id: "alice", weight: 1, tier: "free" }] },
      phases: [
        { name: "warm-up", durationSeconds: 1, rps: 50, users: [{ id: "warm", weight: 1 }] },
        { name: "normal", durationSeconds: 1, rps: 10 }
      ]
    }
    const [warmup, normal] = runSync(limited).phases
    expect(warmup.outcomes.rateLimited).toBe(0)
    expect(normal.outcomes.rateLimited).toBe(0)
    // the same warm-up from alice spends her bucket
    const [, after] = runSync({
      ...limited,
      phases: [{ ...limited.phases[0], users: [{ id: "alice", weight: 1, tier: "free" }] }, limited.phases[1]]
    }).phases
    expect(after.outcomes.rateLimited).toBeGreaterThan(0)
  })
})
