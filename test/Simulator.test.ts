import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readdirSync, readFileSync } from "node:fs"
import * as Cli from "../src/internal/simulate/cli.js"
import * as Simulator from "../src/Simulator.js"

const examplesDir = new URL("../examples/simulate/", import.meta.url)
const example = (file: string): any => JSON.parse(readFileSync(new URL(file, examplesDir), "utf8"))

/** A scenario with every phase `factor` times as long. */
const scaled = (scenario: any, factor: number) => ({
  ...scenario,
  phases: scenario.phases.map((p: any) => ({ ...p, durationSeconds: p.durationSeconds * factor }))
})

const outage = {
  name: "outage",
  seed: 3,
  stack: { Timeout: 1000, Breaker: { K: 1.5, Window: "10 seconds" } },
  downstream: { latency: { distribution: "uniform", minMs: 10, maxMs: 30 }, errorRate: 0.01 },
  phases: [
    { name: "normal", durationSeconds: 60, rps: 200 },
    { name: "outage", durationSeconds: 60, rps: 200, downstream: { down: true } },
    { name: "recovery", durationSeconds: 60, rps: 200 }
  ]
}

const runSync = (input: unknown) => Effect.runSync(Simulator.run(input))

describe("Simulator", () => {
  it("one seed gives one report, byte for byte, JSON and HTML", () => {
    const a = runSync(outage)
    const b = runSync(outage)
    expect(JSON.stringify(a)).toBe(JSON.stringify(b))
    expect(Simulator.renderHtml([a])).toBe(Simulator.renderHtml([b]))
    const other = runSync({ ...outage, seed: 4 })
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(a))
  })

  it("a downstream outage opens the breaker, which fails fast and closes after recovery", () => {
    const [normal, down, recovery] = runSync(outage).phases
    expect(normal.okShare).toBeGreaterThan(0.97)
    expect(normal.breakerStates).toEqual(["Closed"])
    // the SRE breaker lets through about protection + requests/k: a few percent of 200/s
    expect(down.outcomes.breakerOpen / down.offered).toBeGreaterThan(0.85)
    expect(down.breakerStates).toContain("Open")
    expect(recovery.okShare).toBeGreaterThan(0.9)
    expect(recovery.outcomes.breakerOpen / recovery.offered).toBeLessThan(0.05)
  })

  it("without the breaker every call of the outage reaches the downstream and fails", () => {
    const report = runSync({ ...outage, stack: { ...outage.stack, Middlewares: { Breaker: false } } })
    const down = report.phases[1]
    expect(down.outcomes.breakerOpen).toBe(0)
    expect(down.outcomes.failed).toBe(down.offered)
    expect(report.stack.some((line) => line.includes("breaker"))).toBe(false)
  })

  it("shadow mode admits everything and counts what the breaker would have rejected", () => {
    const plain = runSync(outage).phases[1]
    const shadow = runSync({ ...outage, shadow: true })
    const down = shadow.phases[1]
    expect(down.outcomes.breakerOpen).toBe(0)
    expect(down.outcomes.failed).toBe(down.offered)
    expect(down.wouldReject.breaker).toBeGreaterThan(0.5 * plain.outcomes.breakerOpen)
    expect(shadow.perSecond.wouldReject.reduce((a, b) => a + b, 0)).toBe(
      shadow.phases.reduce((sum, p) => sum + p.wouldReject.breaker, 0)
    )
  })

  it("a per-user rate limit admits about rate × users per second", () => {
    const report = runSync({
      name: "rate",
      stack: { RateLimit: { Rate: 10, Burst: 10 } },
      traffic: { users: 5, arrivals: "uniform" },
      phases: [{ name: "steady", durationSeconds: 60, rps: 100 }]
    })
    const [steady] = report.phases
    // 5 users × 10/s = 50/s of the 100/s offered, plus the first bursts
    expect(steady.outcomes.ok / steady.offered).toBeGreaterThan(0.49)
    expect(steady.outcomes.ok / steady.offered).toBeLessThan(0.53)
    expect(steady.by["rate-limit"]).toBe(steady.outcomes.rateLimited)
  })

  it("a downstream over capacity: a FIFO queue times everything out; max connections sheds the excess instead", () => {
    const overloaded = (maxConns: number) =>
      runSync({
        name: "capacity",
        stack: { Timeout: 200, MaxConns: maxConns, Middlewares: { Breaker: false, Shedding: false } },
        downstream: { latency: { distribution: "constant", ms: 100 }, capacity: 10 },
        traffic: { arrivals: "uniform" },
        // capacity 10 / 0.1 s = 100 calls per second; 200/s offered
        phases: [{ name: "over", durationSeconds: 30, rps: 200 }]
      }).phases[0]
    const queued = overloaded(0)
    // a caller that waited long enough to be served would still time out: congestion collapse
    expect(queued.outcomes.ok / queued.offered).toBeLessThan(0.05)
    expect(queued.outcomes.timeout / queued.offered).toBeGreaterThan(0.9)
    const limited = overloaded(10)
    expect(limited.outcomes.ok / limited.offered).toBeGreaterThan(0.45)
    expect(limited.outcomes.ok / limited.offered).toBeLessThan(0.55)
    expect(limited.by.connections).toBe(limited.outcomes.shed)
    expect(limited.outcomes.timeout).toBe(0)
  })

  it("CPU load shedding sheds the excess of a spike once the service's CPU passes the threshold", () => {
    const report = runSync(scaled(example("traffic-spike.json"), 0.2))
    const [normal, , peak] = report.phases
    expect(normal.outcomes.shed).toBe(0)
    expect(peak.outcomes.shed).toBeGreaterThan(0.2 * peak.offered)
    expect(peak.by.shedding).toBeGreaterThan(0)
  })

  it("a bad scenario fails with InvalidOptionsError naming the field", () => {
    const badRate = Effect.runSync(
      Effect.flip(Simulator.run({ ...outage, phases: [{ name: "x", durationSeconds: 1, rps: -1 }] }))
    )
    expect(badRate._tag).toBe("InvalidOptionsError")
    expect(badRate.message).toContain("rps")
    const badStack = Effect.runSync(Effect.flip(Simulator.run({ ...outage, stack: { Breaker: { K: 0.5 } } })))
    expect(badStack.message).toContain("K")
    const unknown = Effect.runSync(Effect.flip(Simulator.run({ ...outage, trafic: {} })))
    expect(unknown.message).toContain("trafic")
  })

  for (const file of readdirSync(examplesDir).filter((f) => f.endsWith(".json"))) {
    it(`example ${file} decodes and runs (at a twentieth of its length)`, () => {
      const scenario = example(file)
      const full = "phases" in scenario ? scenario : Simulator.merge(example("slow-dependency.json"), scenario)
      const report = runSync(scaled(full, 0.05))
      expect(report.requests).toBeGreaterThan(0)
      expect(report.phases.reduce((sum, p) => sum + p.offered, 0)).toBe(report.requests)
    })
  }

  it("one hour of 1,000 requests per second takes under 10 s of CPU time", () => {
    const scenario = example("downstream-outage.json")
    expect(scenario.phases.reduce((sum: number, p: any) => sum + p.durationSeconds, 0)).toBe(3600)
    const before = process.cpuUsage()
    const report = runSync(scenario)
    const used = process.cpuUsage(before)
    expect(report.requests).toBeGreaterThan(3_550_000)
    expect((used.user + used.system) / 1e6).toBeLessThan(10)
  }, 120_000)
})

describe("effect-resilience simulate", () => {
  const io = (files: Record<string, string>) => {
    const written: Record<string, string> = {}
    const lines: Array<string> = []
    let t = 0
    const fake: Cli.Io = {
      readFile: (path) => {
        if (!(path in files)) throw new Error(`ENOENT: ${path}`)
        return files[path]
      },
      writeFile: (path, text) => written[path] = text,
      print: (line) => lines.push(line),
      now: () => t += 500
    }
    return { fake, written, lines }
  }

  it("writes the HTML and JSON reports and prints one line per phase", () => {
    const { fake, lines, written } = io({ "outage.json": JSON.stringify(outage) })
    expect(Cli.main(["simulate", "outage.json", "--out", "r.html"], fake)).toBe(0)
    expect(Object.keys(written).sort()).toEqual(["r.html", "r.json"])
    expect(written["r.html"]).toContain("<svg")
    expect(JSON.parse(written["r.json"]).phases).toHaveLength(3)
    expect(lines.filter((l) => l.startsWith("  "))).toHaveLength(3)
  })

  it("compares two stacks on the same scenario", () => {
    const { fake, written } = io({
      "a.json": JSON.stringify(outage),
      "b.json": JSON.stringify({ name: "no breaker", stack: { Middlewares: { Breaker: false } } })
    })
    expect(Cli.main(["simulate", "a.json", "--compare", "b.json"], fake)).toBe(0)
    const reports = JSON.parse(written["a.json"])
    expect(reports.map((r: any) => r.scenario)).toEqual(["outage", "no breaker"])
    expect(reports[0].requests).toBe(reports[1].requests)
    expect(written["a.html"]).toContain("outage vs no breaker")
  })

  it("fails with a usage line or the reason", () => {
    expect(Cli.main([], io({}).fake)).toBe(2)
    expect(Cli.main(["simulate", "missing.json"], io({}).fake)).toBe(1)
    const bad = io({ "bad.json": JSON.stringify({ name: "x", stack: {}, phases: [] }) })
    expect(Cli.main(["simulate", "bad.json"], bad.fake)).toBe(1)
    expect(bad.lines.join("\n")).toContain("phases")
  })
})
