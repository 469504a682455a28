import { describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { CHILD_TEST_TIMEOUT_MS, start, START_BUDGET_MS } from "./spawn.js"

/** The pids of the API and the downstream, from the lines the demo prints as they start. */
const childPids = (output: string): Array<number> =>
  [/^downstream .*\(flaky, pid (\d+)/m, /^user API .*\(pid (\d+)/m].map((re) => Number(output.match(re)?.[1]))

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

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
      // the load driver, the API and the downstream are three processes, and none outlives the demo
      const pids = childPids(output)
      expect(new Set([demo.child.pid, ...pids]).size, output).toBe(3)
      for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false)
      expect(data.facts.processes).toContain(`pid ${pids[0]}`)
      // each process's CPU per phase, measured by the process itself (a starved API may report
      // nothing new during one short phase, never during the whole run)
      const rows = data.summary as Array<{ phase: string; cpuPct: Record<string, number> }>
      for (const row of rows) {
        expect(Object.keys(row.cpuPct).sort(), row.phase).toEqual(["api", "downstream", "driver"])
      }
      expect(rows.reduce((n, row) => n + row.cpuPct.api, 0)).toBeGreaterThan(0)
      expect(output).toMatch(/^cpu, % of one core/m)
      expect(data.facts["warm-up"]).toMatch(/^\d+ of \d+ requests answered/)
      expect(data.phases.map((p: { name: string }) => p.name)).toEqual(["normal", "outage", "overload", "recovery"])
      const sent = data.seconds.reduce((n: number, s: { sent: number }) => n + s.sent, 0)
      expect(sent).toBeGreaterThan(100)
      // the API answered (on a starved machine it may answer nothing but rejections for a few seconds)
      const answered = data.summary.reduce(
        (n: number, s: { sent: number; by: Record<string, number> }) => n + s.sent - (s.by.network ?? 0),
        0
      )
      expect(answered).toBeGreaterThan(0)
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
      // phases of seconds: the interrupt lands mid-run even when this process is slow to send it
      const demo = start("examples/demo/main.ts", ["--out", out], { DEMO_SCALE: "0.5" })
      await demo.waitFor(/\[normal \d+%\]/)
      const code = await demo.stop()
      const output = demo.output()
      expect(code, output).toBe(0)
      expect(output).toContain("interrupted; partial report")
      expect(output).toContain("shut down cleanly")
      expect(readFileSync(out, "utf8")).toContain("The run was interrupted")
      for (const pid of childPids(output)) expect(alive(pid), `pid ${pid}`).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, CHILD_TEST_TIMEOUT_MS)
})
