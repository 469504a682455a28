import { describe, expect, it } from "@effect/vitest"
import type { PhaseWindow } from "../examples/demo/model.js"
import { emptyCounts } from "../examples/demo/stats.js"
import type { LiveSnapshot } from "../examples/demo/terminal.js"
import { make } from "../examples/demo/terminal.js"

const phase: PhaseWindow = {
  name: "outage",
  title: "Downstream outage",
  description: "",
  durationMs: 10_000,
  rps: 100,
  startMs: 8_000,
  endMs: 18_000
}

const snapshot = (now: number, breakerOpen: number): LiveSnapshot => ({
  phase,
  index: 1,
  phaseCount: 4,
  now,
  sent: 5 + breakerOpen + 3,
  counts: { ...emptyCounts(), ok: 5, breakerOpen },
  inFlight: 3,
  p50: 0.4,
  p99: 12.5,
  breakers: [{ name: "route GET /api/users/:id", state: "Open" }]
})

const sink = (isTTY: boolean) => {
  let out = ""
  return { stream: { isTTY, write: (s: string) => (out += s, true) }, text: () => out }
}

describe("demo terminal view", () => {
  it("without a TTY prints one plain line per second and no escape codes", () => {
    const s = sink(false)
    const view = make(s.stream)
    view.update(snapshot(9_000, 10))
    view.update(snapshot(9_200, 30)) // same second: not printed
    view.update(snapshot(10_100, 120))
    view.endPhase(snapshot(18_000, 800))
    const lines = s.text().trimEnd().split("\n")
    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe(
      "[outage 10%] sent=18 ok=5 brk-open=10 in-flight=3 p50=0.4ms p99=12.5ms route GET /api/users/:id=Open"
    )
    expect(lines[1]).toContain("[outage 21%] sent=128")
    expect(lines[2]).toMatch(/^\[outage 100%\] sent=808 .* \(phase done\)$/)
    expect(s.text()).not.toContain("\x1b[")
  })

  it("on a TTY redraws its block in place with a progress bar", () => {
    const prev = { NO_COLOR: process.env.NO_COLOR, TERM: process.env.TERM }
    delete process.env.NO_COLOR
    process.env.TERM = "xterm"
    try {
      const s = sink(true)
      const view = make(s.stream)
      view.update(snapshot(13_000, 400))
      view.update(snapshot(13_200, 420))
      const text = s.text()
      // the second frame moves the cursor up over the first one's four lines
      expect(text).toContain("\x1b[4A")
      expect(text).toContain("[2/4] Downstream outage")
      expect(text).toContain("█".repeat(15) + "\x1b[0m\x1b[2m" + "░".repeat(15))
      expect(text).toContain("420")
      view.log("a log line")
      expect(s.text().endsWith("\x1b[4A\x1b[Ja log line\n")).toBe(true)
    } finally {
      for (const [k, v] of Object.entries(prev)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })
})
