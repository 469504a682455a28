import { describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { CHILD_TEST_TIMEOUT_MS, start, START_BUDGET_MS } from "./spawn.js"

describe("npm run demo (shortened)", () => {
  it("runs every phase against real servers, prints the summary, writes the report and exits 0", async () => {
    const dir = mkdtempSync(Path.join(tmpdir(), "demo-run-"))
    const out = Path.join(dir, "report.html")
    try {
      const demo = start("examples/demo/main.ts", ["--out", out], { DEMO_SCALE: "0.1" })
      const code = await Promise.race([
        demo.exited,
        // start-up (tsx, two servers) plus ~4 s of shortened phases, on a machine that may be busy
        new Promise<string>((resolve) => setTimeout(() => resolve("timeout"), START_BUDGET_MS + 60_000))
      ])
      if (code === "timeout") await demo.stop(5_000)
      const output = demo.output()
      expect(code, output).toBe(0)
      // not a TTY: plain progress lines, no escape codes
      expect(output).not.toContain("\x1b[")
      for (const phase of ["normal", "outage", "overload", "recovery"]) {
        expect(output).toMatch(new RegExp(`\\[${phase} \\d+%\\]`))
      }
      expect(output).toMatch(/^phase\s+secs\s+rps\s+offered\s+sent\s+admitted\s+ok/m)
      expect(output).toContain(`report: ${out}`)
      expect(existsSync(out)).toBe(true)
      const html = readFileSync(out, "utf8")
      expect(html).toContain("<canvas id=\"chart-breakers\">")
      expect(html).toContain("Chart.js v4")
      const data = JSON.parse(html.match(/<script type="application\/json" id="report-data">(.*?)<\/script>/s)![1])
      expect(data.phases.map((p: { name: string }) => p.name)).toEqual(["normal", "outage", "overload", "recovery"])
      const sent = data.seconds.reduce((n: number, s: { sent: number }) => n + s.sent, 0)
      expect(sent).toBeGreaterThan(100)
      const ok = data.summary.reduce((n: number, s: { counts: { ok: number } }) => n + s.counts.ok, 0)
      expect(ok).toBeGreaterThan(0)
      expect(data.breakers.length).toBeGreaterThan(0)
      // the server's default shedder, sampled over the run
      expect(data.overload.length).toBeGreaterThan(0)
      expect(data.overload[0]).toMatchObject({ signal: expect.any(String), threshold: expect.any(Number) })
      // the last plain progress line of each phase and its summary row count the same requests sent
      for (const row of data.summary as Array<{ phase: string; sent: number }>) {
        const done = output.match(new RegExp(`^\\[${row.phase} \\d+%\\] sent=(\\d+) .*\\(phase done\\)$`, "m"))
        expect(Number(done?.[1]), row.phase).toBe(row.sent)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, CHILD_TEST_TIMEOUT_MS)

  it("shuts down cleanly on SIGINT and still writes a partial report", async () => {
    const dir = mkdtempSync(Path.join(tmpdir(), "demo-sigint-"))
    const out = Path.join(dir, "report.html")
    try {
      const demo = start("examples/demo/main.ts", ["--out", out], { DEMO_SCALE: "1" })
      await demo.waitFor(/\[normal \d+%\]/)
      const code = await demo.stop()
      const output = demo.output()
      expect(code, output).toBe(0)
      expect(output).toContain("interrupted; partial report")
      expect(output).toContain("shut down cleanly")
      expect(readFileSync(out, "utf8")).toContain("The run was interrupted")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, CHILD_TEST_TIMEOUT_MS)
})
