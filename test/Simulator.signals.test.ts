/**
 * The simulated service's event loop and the overload signals the load shedder reads from it:
 * event-loop utilization (the default shedder), event-loop delay, queue delay and the CPU.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Simulator from "../src/Simulator.js"

/**
 * A service spending 4 ms of its loop per admitted request and 1 ms per rejection (the default, a
 * quarter), behind a 20 ms downstream: its loop serves 250 requests per second when it rejects none.
 */
const overload = {
  name: "loop overload",
  seed: 2,
  stack: { Timeout: 1000, Middlewares: { Breaker: false } },
  service: { cpuMsPerRequest: 4 },
  downstream: { latency: { distribution: "constant", ms: 20 } },
  phases: [
    { name: "normal", durationSeconds: 20, rps: 100 },
    { name: "overload", durationSeconds: 20, rps: 500 },
    { name: "after", durationSeconds: 20, rps: 100 }
  ]
}

/**
 * At 500/s, a loop that admits A requests per second is busy 4·A + 1·(500 − A) ms per second: at
 * most 1000, so A ≤ 167, a third of the offered load.
 */
const admittedAtMost = 167 / 500

const runSync = (input: unknown) => Effect.runSync(Simulator.run(input))
const share = (p: Simulator.PhaseSummary, outcome: keyof Simulator.PhaseSummary["outcomes"]) =>
  p.outcomes[outcome] / p.offered

describe("Simulator: the service's event loop and the overload signals", () => {
  it("the default shedder reads event-loop utilization: it sheds the excess only, and keeps latency bounded", () => {
    const report = runSync(overload)
    expect(report.signal).toEqual({ kind: "event-loop-utilization", threshold: 0.9 })
    expect(report.stack).toContain("load shedding on event-loop utilization at 0.9")
    const [normal, over, after] = report.phases
    expect(normal.outcomes.shed).toBe(0)
    expect(after.outcomes.shed).toBe(0)
    // the loop runs as fast as it can, and what it cannot serve is shed
    expect(share(over, "ok")).toBeGreaterThan(admittedAtMost - 0.08)
    expect(share(over, "ok")).toBeLessThanOrEqual(admittedAtMost + 0.01)
    expect(over.by.shedding).toBe(over.outcomes.shed)
    expect(over.p99Ms!).toBeLessThan(1000)
    // the utilization the shedder read: at 1 through the overload, under the threshold on average before it
    const signal = report.perSecond.signal
    expect(signal.slice(21, 40).every((v) => v === 1)).toBe(true)
    const normalMean = signal.slice(0, 20).reduce((a: number, v) => a + v!, 0) / 20
    expect(normalMean).toBeLessThan(0.9)
  })

  it("without shedding, the loop's queue grows: congestion collapse that outlasts the overload", () => {
    const [, over, after] =
      runSync({ ...overload, stack: { ...overload.stack, Middlewares: { Breaker: false, Shedding: false } } }).phases
    expect(over.outcomes.shed).toBe(0)
    // the deadline starts when the server reads the request: the wait in the loop's queue comes first
    expect(over.p50Ms!).toBeGreaterThan(5000)
    expect(after.p50Ms!).toBeGreaterThan(5000)
  })

  it("event-loop delay and queue delay shed the excess as well; the CPU signal only once its average is over 900‰", () => {
    for (const signal of ["eventLoopDelay", "queueDelay"]) {
      const [normal, over] = runSync({ ...overload, shedder: { signal } }).phases
      expect(normal.outcomes.shed).toBe(0)
      expect(share(over, "ok")).toBeGreaterThan(admittedAtMost - 0.1)
      expect(share(over, "ok")).toBeLessThanOrEqual(admittedAtMost + 0.01)
      expect(over.p99Ms!).toBeLessThan(1000)
    }
    const cpu = runSync({ ...overload, shedder: { signal: "cpu" } })
    expect(cpu.signal).toEqual({ kind: "cpu", threshold: 900 })
    // go-zero's moving average needs seconds of full load to cross 900: the queue builds up meanwhile
    expect(cpu.perSecond.signal[20]!).toBeLessThan(900)
    expect(cpu.phases[1].p50Ms!).toBeGreaterThan(1000)
  })

  it("the same stack with CpuThreshold reads the CPU, as Config does", () => {
    const report = runSync({ ...overload, stack: { ...overload.stack, CpuThreshold: 800 } })
    expect(report.signal).toEqual({ kind: "cpu", threshold: 800 })
  })

  it("a process that gets half a core (a busy neighbour) is overloaded by a load a whole core serves", () => {
    // 150/s × 4 ms: 60 % of a core, 120 % of half a core
    const steady = { ...overload, phases: [{ name: "steady", durationSeconds: 20, rps: 150 }] }
    const [full] = runSync(steady).phases
    const [half] = runSync({ ...steady, service: { ...steady.service, cpuShare: 0.5 } }).phases
    expect(full.outcomes.shed).toBe(0)
    expect(share(half, "shed")).toBeGreaterThan(0.2)
    expect(half.p99Ms!).toBeLessThan(1000)
  })

  it("a process preempted mid-callback reads busy for little CPU: utilization ≈ CPU / share", () => {
    // 100/s × 1.8 ms = 18 % of a core; with a quarter of a core in 4 ms slices, a callback that
    // outlasts its slice stays busy through the 12 ms the process is off the CPU
    const contended = {
      ...overload,
      service: { cpuMsPerRequest: 1.8, cpuShare: 0.25 },
      phases: [{ name: "steady", durationSeconds: 30, rps: 100 }]
    }
    const mean = (r: Simulator.Report) => r.perSecond.signal.reduce((a: number, v) => a + v!, 0) / 30
    const alone = runSync({ ...contended, service: { cpuMsPerRequest: 1.8 } })
    const shared = runSync(contended)
    // the per-second maxima of 50 ms windows: well over the mean, but apart by the share
    expect(mean(alone)).toBeLessThan(0.6)
    expect(mean(shared)).toBeGreaterThan(0.9)
    expect(shared.phases[0].p50Ms!).toBeGreaterThan(alone.phases[0].p50Ms!)
    // a period that is no exact binary fraction (4 / 0.3 ms) ends its slices where it should
    expect(mean(runSync({ ...contended, service: { cpuMsPerRequest: 1.8, cpuShare: 0.3 } }))).toBeGreaterThan(0.8)
  })

  it("a shedder that cannot be built fails with InvalidOptionsError", () => {
    const fails = (input: unknown) => Effect.runSync(Effect.flip(Simulator.run(input)))
    expect(fails({ ...overload, stack: { CpuThreshold: 900 }, shedder: { signal: "eventLoopDelay" } }).message)
      .toContain("CpuThreshold")
    expect(fails({ ...overload, shedder: { signal: "cpu", allowanceMs: 10 } }).message).toContain("allowanceMs")
    expect(fails({ ...overload, shedder: { signal: "eventLoopUtilization", threshold: 2 } }).message)
      .toContain("threshold")
    expect(fails({ ...overload, service: { cpuShare: 0 } }).message).toContain("cpuShare")
  })
})
