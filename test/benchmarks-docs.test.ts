import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { goals } from "../bench/goals.js"
import { evaluate, renderResults, replaceGenerated, type Results } from "../bench/report.js"

const results = JSON.parse(readFileSync(new URL("../bench/results.json", import.meta.url), "utf8")) as Results
const page = readFileSync(new URL("../docs/benchmarks.md", import.meta.url), "utf8")

describe("docs/benchmarks.md", () => {
  it("holds the tables generated from bench/results.json (npm run bench:docs)", () => {
    expect(replaceGenerated(page, renderResults(results, goals))).toBe(page)
  })

  it("every goal names cases of a recorded suite", () => {
    for (const goal of goals) expect(evaluate(results, goal), goal.label).toBeDefined()
  })
})

describe("goal evaluation", () => {
  const timing = (cases: Record<string, number>) => ({
    measuredAt: "2026-01-01T00:00:00.000Z",
    node: "v20",
    data: { cases: Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, { cpuNsPerOp: v }])) }
  })
  const fixture: Results = { s: timing({ ours: 900, peer: 1000, bare: 100 }) }

  it("compares ratios, differences and absolute times with their limits", () => {
    expect(evaluate(fixture, { label: "", suite: "s", subject: "ours", reference: "peer", kind: "ratio", limit: 1 }))
      .toEqual({ measured: "0.90× (900 ns vs 1.00 µs)", met: true })
    expect(evaluate(fixture, { label: "", suite: "s", subject: "ours", reference: "bare", kind: "plus", limit: 700 }))
      .toEqual({ measured: "+800 ns (900 ns vs 100 ns)", met: false })
    expect(evaluate(fixture, { label: "", suite: "s", subject: "peer", kind: "absolute", limit: 999 }))
      .toEqual({ measured: "1.00 µs", met: false })
  })

  it("reports a goal whose suite or case was not run as unmeasured", () => {
    expect(evaluate(fixture, { label: "", suite: "missing", subject: "ours", kind: "absolute", limit: 1 }))
      .toBeUndefined()
    expect(evaluate(fixture, { label: "", suite: "s", subject: "ours", reference: "nope", kind: "ratio", limit: 1 }))
      .toBeUndefined()
  })
})
