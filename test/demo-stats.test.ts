import { describe, expect, it } from "@effect/vitest"
import { classify } from "../examples/demo/classify.js"
import type { PhaseWindow, RequestRecord } from "../examples/demo/model.js"
import {
  emptyCounts,
  emptyTally,
  percentile,
  perSecond,
  summarize,
  summaryText,
  tallyOf
} from "../examples/demo/stats.js"

const rejection = (code: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ error: { code, status: 503, message: "m", route: "GET /api/users/:id", ...extra } })

describe("demo classification", () => {
  it("names the protection from the status and the JSON rejection body", () => {
    expect(classify(200, "{}")).toEqual({ outcome: "ok", by: "ok" })
    expect(classify(429, rejection("rate_limited"))).toEqual({ outcome: "rateLimited", by: "rate-limit" })
    expect(classify(503, rejection("circuit_open"))).toEqual({
      outcome: "breakerOpen",
      by: "breaker:GET /api/users/:id"
    })
    expect(classify(503, rejection("circuit_open", { breaker: "downstream" }))).toEqual({
      outcome: "breakerOpen",
      by: "breaker:downstream"
    })
    expect(classify(503, rejection("max_connections"))).toEqual({ outcome: "shed", by: "max_connections" })
    expect(classify(503, rejection("overloaded"))).toEqual({ outcome: "shed", by: "overloaded" })
    expect(classify(503, rejection("bulkhead_full"))).toEqual({ outcome: "shed", by: "bulkhead_full" })
    expect(classify(503, rejection("timeout"))).toEqual({ outcome: "timeout", by: "timeout" })
    expect(classify(504, rejection("upstream_timeout"))).toEqual({ outcome: "timeout", by: "timeout" })
    expect(classify(502, rejection("downstream_error"))).toEqual({ outcome: "failed", by: "downstream_error" })
    expect(classify(503, "not json")).toEqual({ outcome: "failed", by: "http-503" })
    expect(classify(404, "")).toEqual({ outcome: "clientError", by: "http-404" })
    expect(classify(0, "")).toEqual({ outcome: "failed", by: "network" })
  })
})

describe("demo aggregation", () => {
  it("nearest-rank percentiles", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentile(xs, 0.5)).toBe(50)
    expect(percentile(xs, 0.99)).toBe(99)
    expect(percentile([7], 0.99)).toBe(7)
    expect(percentile([], 0.5)).toBeNaN()
  })

  it("buckets by send second and summarises per phase", () => {
    const phases: Array<PhaseWindow> = [
      { name: "a", title: "A", description: "", durationMs: 2000, rps: 10, startMs: 0, endMs: 2000 },
      { name: "b", title: "B", description: "", durationMs: 1000, rps: 10, startMs: 2000, endMs: 3000 }
    ]
    const r = (sentAt: number, phase: string, outcome: RequestRecord["outcome"], latencyMs: number): RequestRecord => ({
      sentAt,
      phase,
      user: "u",
      status: outcome === "ok" ? 200 : outcome === "skipped" ? 0 : 503,
      latencyMs,
      outcome,
      by: outcome === "ok" ? "ok" : outcome
    })
    const records = [
      r(100, "a", "ok", 10),
      r(900, "a", "ok", 30),
      r(1500, "a", "shed", 1),
      r(2100, "b", "breakerOpen", 2),
      r(2200, "b", "skipped", 0)
    ]
    const seconds = perSecond(records, phases, 3000)
    expect(seconds.map((s) => s.sent)).toEqual([2, 1, 2])
    expect(seconds.map((s) => s.phase)).toEqual(["a", "a", "b"])
    expect(seconds[0].p50).toBe(10)
    expect(seconds[0].p99).toBe(30)
    expect(seconds[2].p99).toBe(2) // the skipped request has no latency
    const summary = summarize(records, phases, [
      { t: 0, name: "br", state: "Closed" },
      { t: 2100, name: "br", state: "Open" },
      { t: 2500, name: "br", state: "HalfOpen" }
    ])
    expect(summary[0].sent).toBe(3)
    expect(summary[0].counts.ok).toBe(2)
    expect(summary[0].admittedPct).toBeCloseTo(66.7, 1)
    expect(summary[1].sent).toBe(1)
    expect(summary[1].counts.skipped).toBe(1)
    expect(summary[1].breakers.br).toEqual(["Open", "HalfOpen"])
    expect(summary[1].by).toEqual({ breakerOpen: 1, skipped: 1 })
    const text = summaryText(summary)
    expect(text).toContain("Open→HalfOpen")
    expect(text.split("\n")[0]).toMatch(/^phase\s+secs\s+rps\s+offered\s+sent\s+admitted\s+ok/)
    expect(summary[0].offered).toBe(3)
    expect(summary[0].admitted).toBe(2) // the shed request was not let through
    expect(summary[1].offered).toBe(2) // one sent, one skipped by the driver's cap
    expect(summary[1].admitted).toBe(0)
    expect(seconds.map((s) => s.admitted)).toEqual([2, 0, 0])
  })

  it("the summary counts from the live tallies: a request still in flight is sent, not yet answered", () => {
    const phases: Array<PhaseWindow> = [
      { name: "a", title: "A", description: "", durationMs: 1000, rps: 10, startMs: 0, endMs: 1000 }
    ]
    const answered: RequestRecord = {
      sentAt: 10,
      phase: "a",
      user: "u",
      status: 200,
      latencyMs: 5,
      outcome: "ok",
      by: "ok"
    }
    const tally = emptyTally()
    tally.sent = 2 // one answered, one never answered before the run ended
    tally.counts.ok = 1
    const [row] = summarize([answered], phases, [], new Map([["a", tally]]))
    expect(row.sent).toBe(2)
    expect(row.counts.ok).toBe(1)
    expect(row.admittedPct).toBe(50)
    // without tallies the records are the source, and give the same counts for answered requests
    expect(summarize([answered], phases, [])[0].sent).toBe(1)
    expect(tallyOf([answered], "a")).toEqual({ sent: 1, counts: { ...emptyCounts(), ok: 1 } })
  })

  it("the CPU each process used in a phase, as a share of one core", () => {
    const phases: Array<PhaseWindow> = [
      {
        name: "a",
        title: "A",
        description: "",
        durationMs: 2000,
        rps: 10,
        startMs: 0,
        endMs: 2000,
        cpuMs: { driver: 100, api: 500 }
      },
      { name: "b", title: "B", description: "", durationMs: 1000, rps: 10, startMs: 2000, endMs: 3000 }
    ]
    const summary = summarize([], phases, [])
    expect(summary[0].cpuPct).toEqual({ driver: 5, api: 25 })
    expect(summary[1].cpuPct).toBeUndefined()
    const text = summaryText(summary)
    expect(text).toMatch(/^cpu, % of one core\s+a\s+b$/m)
    expect(text).toMatch(/^api\s+25\.0\s+-$/m)
    expect(summaryText(summarize([], [phases[1]], []))).not.toContain("cpu")
  })
})
