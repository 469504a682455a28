import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type { BrowserContext } from "playwright-core"
import { chromium } from "playwright-core"
import type { BreakerSample, PhaseWindow, RequestRecord } from "../../examples/demo/model.js"
import { render } from "../../examples/demo/report.js"
import { perSecond, summarize } from "../../examples/demo/stats.js"

// browser globals inside page.evaluate callbacks (the project is compiled without the DOM lib)
declare const window: any
declare const document: any

const CHROMIUM = "/usr/bin/chromium"
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) console.log(`skipping the report browser test: ${CHROMIUM} is not installed`)

/** A small recorded-looking run: two phases, 6 seconds, a breaker that opens in the second phase. */
const fixture = () => {
  const phases: Array<PhaseWindow> = [
    {
      name: "normal",
      title: "Normal",
      description: "healthy downstream",
      durationMs: 3000,
      rps: 20,
      startMs: 0,
      endMs: 3000
    },
    {
      name: "outage",
      title: "Outage",
      description: "downstream down",
      durationMs: 3000,
      rps: 20,
      startMs: 3000,
      endMs: 6000
    }
  ]
  const records: Array<RequestRecord> = []
  for (let i = 0; i < 120; i++) {
    const sentAt = i * 50
    const outage = sentAt >= 3000
    const kind = i % 10
    const outcome = !outage
      ? (kind === 0 ? "rateLimited" : "ok")
      : (kind < 3 ? "failed" : kind < 8 ? "breakerOpen" : "shed")
    records.push({
      sentAt,
      phase: outage ? "outage" : "normal",
      user: `u${i % 4}`,
      status: outcome === "ok" ? 200 : outcome === "rateLimited" ? 429 : 503,
      latencyMs: 5 + (i % 7) * 3,
      outcome,
      by: outcome === "ok" ? "ok" : outcome === "breakerOpen" ? "breaker:GET /api/users/:id" : outcome
    })
  }
  const breakers: Array<BreakerSample> = [
    { t: 0, name: "GET /api/users/:id", state: "Closed" },
    { t: 3500, name: "GET /api/users/:id", state: "Open", dropRatio: 1 },
    { t: 5000, name: "GET /api/users/:id", state: "HalfOpen", dropRatio: 0.4 },
    { t: 5500, name: "GET /api/users/:id", state: "Open" },
    { t: 6000, name: "GET /api/users/:id", state: "Open" }
  ]
  return render({
    title: "report test",
    generatedAt: "test",
    totalMs: 6000,
    facts: { store: "memory" },
    phases,
    seconds: perSecond(records, phases, 6000),
    breakers,
    overload: Array.from({ length: 60 }, (_, i) => ({
      t: i * 100,
      signal: "event-loop-utilization",
      value: i >= 30 ? 0.95 : 0.2,
      threshold: 0.9,
      flying: i >= 30 ? 12 : 1,
      dropped: i >= 30 ? i - 30 : 0
    })),
    summary: summarize(records, phases, breakers)
  })
}

describe.skipIf(!haveChromium)("demo report in headless Chromium", () => {
  let dir = ""
  let context: BrowserContext | undefined

  beforeAll(async () => {
    dir = mkdtempSync(Path.join(tmpdir(), "demo-report-"))
    context = await chromium.launchPersistentContext(Path.join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  })

  afterAll(async () => {
    await context?.close()
    if (dir !== "") rmSync(dir, { recursive: true, force: true })
  })

  it("renders the four charts with data and non-empty pixels, without network access", async () => {
    const file = Path.join(dir, "demo-report.html")
    writeFileSync(file, fixture())
    const page = await context!.newPage()
    const requests: Array<string> = []
    page.on("request", (r) => requests.push(r.url()))
    const errors: Array<string> = []
    page.on("pageerror", (e) => errors.push(String(e)))
    await page.goto(pathToFileURL(file).href)
    await page.waitForFunction(() => (window as any).__reportReady === true, undefined, { timeout: 10_000 })

    const charts = await page.evaluate(() =>
      ((window as any).__charts as Array<any>).map((c) => ({
        type: c.config.type as string,
        canvas: c.canvas.id as string,
        points: c.data.datasets.map((d: any) => d.data.filter((p: any) => p.y !== null && p.y !== 0).length) as Array<
          number
        >
      }))
    )
    expect(charts.map((c) => c.canvas)).toEqual(["chart-breakers", "chart-outcomes", "chart-latency", "chart-overload"])
    for (const c of charts) expect(c.points.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    // the breaker chart: a state line and a drop-ratio line
    expect(charts[0].points).toHaveLength(2)
    // admitted and breaker-open bars both carry data
    expect(charts[1].points[0]).toBeGreaterThan(0)
    expect(charts[1].points[3]).toBeGreaterThan(0)
    // offered, admitted, the overload signal and its threshold
    expect(charts[3].points).toHaveLength(4)
    for (const n of charts[3].points) expect(n).toBeGreaterThan(0)

    const painted = await page.evaluate(() =>
      Array.from(document.querySelectorAll("canvas") as ArrayLike<any>).map((canvas) => {
        const ctx = canvas.getContext("2d")!
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height)
        let n = 0
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++
        return { w: canvas.width, h: canvas.height, painted: n / (data.length / 4) }
      })
    )
    expect(painted).toHaveLength(4)
    for (const p of painted) {
      expect(p.w).toBeGreaterThan(100)
      expect(p.h).toBeGreaterThan(100)
      expect(p.painted).toBeGreaterThan(0.02)
    }
    expect(await page.locator("table.summary td", { hasText: "outage" }).count()).toBeGreaterThan(0)
    expect(errors).toEqual([])
    expect(requests.filter((u) => !u.startsWith("file:"))).toEqual([])
    await page.close()
  })
})
