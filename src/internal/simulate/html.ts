/**
 * The simulator's HTML report: one self-contained file, charts drawn as inline SVG (no script, no
 * network), so the same report renders the same bytes. Compare mode puts the runs side by side.
 */
import * as Engine from "./engine.js"
import type { PhaseSummary, Report } from "./report.js"
import { stages } from "./stack.js"

const WIDTH = 560
const HEIGHT = 180
const PAD = { left: 48, right: 8, top: 10, bottom: 22 }
const MAX_POINTS = 600

const colors: Readonly<Record<Engine.Outcome, string>> = {
  ok: "#2e7d32",
  failed: "#c62828",
  timeout: "#ef6c00",
  shed: "#6a1b9a",
  rateLimited: "#1565c0",
  breakerOpen: "#757575"
}
const breakerColors = ["#c8e6c9", "#ffe082", "#ef9a9a"]

const escape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const fixed = (n: number) => (Math.round(n * 10) / 10).toString()

/** Groups per-second values into at most MAX_POINTS points with `combine`. */
const group = <T>(values: ReadonlyArray<T>, combine: (chunk: ReadonlyArray<T>) => number): Array<number> => {
  const size = Math.max(1, Math.ceil(values.length / MAX_POINTS))
  const points: Array<number> = []
  for (let i = 0; i < values.length; i += size) points.push(combine(values.slice(i, i + size)))
  return points
}
const mean = (chunk: ReadonlyArray<number>) => chunk.reduce((a, b) => a + b, 0) / chunk.length
const maxOf = (chunk: ReadonlyArray<number | null>) =>
  chunk.reduce<number>((a, b) => b === null || Number.isNaN(b) ? a : Math.max(a, b), -1)

interface Frame {
  readonly x: (i: number) => number
  readonly y: (v: number) => number
  readonly max: number
}

const frame = (points: number, max: number): Frame => {
  const w = WIDTH - PAD.left - PAD.right
  const h = HEIGHT - PAD.top - PAD.bottom
  const top = max > 0 ? max : 1
  return {
    x: (i) => PAD.left + (points <= 1 ? 0 : (i / (points - 1)) * w),
    y: (v) => PAD.top + h - (Math.min(v, top) / top) * h,
    max: top
  }
}

/** Axes, the y scale and the phase boundaries. */
const axes = (f: Frame, report: Report, unit: string) => {
  const h = HEIGHT - PAD.bottom
  const total = report.durationSeconds
  const phaseLines = report.phases.map((p) => {
    const x = PAD.left + (p.startSeconds / total) * (WIDTH - PAD.left - PAD.right)
    return `<line x1="${fixed(x)}" y1="${PAD.top}" x2="${fixed(x)}" y2="${h}" class="phase"/>` +
      `<text x="${fixed(x + 3)}" y="${h + 14}" class="label">${escape(p.name)}</text>`
  })
  return `<line x1="${PAD.left}" y1="${h}" x2="${WIDTH - PAD.right}" y2="${h}" class="axis"/>` +
    `<text x="${PAD.left - 4}" y="${PAD.top + 8}" class="label" text-anchor="end">${fixed(f.max)}</text>` +
    `<text x="${PAD.left - 4}" y="${h}" class="label" text-anchor="end">0 ${escape(unit)}</text>` +
    phaseLines.join("")
}

const polyline = (points: ReadonlyArray<number>, f: Frame, color: string) =>
  `<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${
    points.map((v, i) => `${fixed(f.x(i))},${fixed(f.y(Math.max(0, v)))}`).join(" ")
  }"/>`

const svg = (title: string, body: string, legend: string) =>
  `<figure><figcaption>${
    escape(title)
  }</figcaption><svg viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}">${body}</svg><div class="legend">${legend}</div></figure>`

const swatch = (color: string, name: string) => `<span><i style="background:${color}"></i>${escape(name)}</span>`

const outcomesChart = (report: Report) => {
  const series = Engine.outcomes.map((o) => group(report.perSecond.outcomes[o], mean))
  const points = series[0].length
  const totals = Array.from({ length: points }, (_, i) => series.reduce((sum, s) => sum + s[i], 0))
  const f = frame(points, Math.max(...totals))
  const lines = Engine.outcomes.map((o, k) => polyline(series[k], f, colors[o])).join("")
  return svg(
    "Requests per second by outcome",
    axes(f, report, "req/s") + polyline(totals, f, "#bbb") + lines,
    swatch("#bbb", "offered") + Engine.outcomes.map((o) => swatch(colors[o], o)).join("")
  )
}

const latencyChart = (report: Report) => {
  const p50 = group(report.perSecond.p50Ms, maxOf)
  const p99 = group(report.perSecond.p99Ms, maxOf)
  const f = frame(p99.length, Math.max(...p99))
  return svg(
    "Latency of answered requests (ms)",
    axes(f, report, "ms") + polyline(p50, f, "#1565c0") + polyline(p99, f, "#c62828"),
    swatch("#1565c0", "p50") + swatch("#c62828", "p99")
  )
}

const breakerChart = (report: Report) => {
  if (report.perSecond.breaker.every((s) => s === null)) return ""
  const states = group(report.perSecond.breaker, maxOf)
  const f = frame(states.length + 1, 1)
  const w = (WIDTH - PAD.left - PAD.right) / states.length
  const rects = states.map((s, i) =>
    `<rect x="${fixed(f.x(i))}" y="${PAD.top}" width="${fixed(w + 0.5)}" height="${
      HEIGHT - PAD.top - PAD.bottom
    }" fill="${breakerColors[Math.max(0, s)]}"/>`
  )
  return svg(
    "Breaker state (the most severe in each interval)",
    rects.join("") + axes(f, report, ""),
    swatch(breakerColors[0], "Closed") + swatch(breakerColors[1], "HalfOpen") + swatch(breakerColors[2], "Open")
  )
}

const shadowChart = (report: Report) => {
  if (!report.shadow) return ""
  const points = group(report.perSecond.wouldReject, mean)
  const f = frame(points.length, Math.max(...points))
  return svg(
    "Shadow mode: requests a protection would have rejected, per second",
    axes(f, report, "req/s") + polyline(points, f, "#6a1b9a"),
    swatch("#6a1b9a", "would reject")
  )
}

const percent = (n: number) => `${fixed(n * 100)} %`
const ms = (n: number | null) => n === null ? "–" : fixed(n)

const phaseRow = (p: PhaseSummary) => {
  const cells = [
    p.name,
    `${fixed(p.startSeconds)}–${fixed(p.endSeconds)}`,
    String(p.offered),
    ...Engine.outcomes.map((o) => String(p.outcomes[o])),
    percent(p.okShare),
    ms(p.p50Ms),
    ms(p.p99Ms),
    p.breakerStates.join(", "),
    stages.filter((s) => p.wouldReject[s] > 0).map((s) => `${s} ${p.wouldReject[s]}`).join(", ")
  ]
  return `<tr>${cells.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`
}

const table = (report: Report) => {
  const head = [
    "phase",
    "seconds",
    "offered",
    ...Engine.outcomes,
    "ok share",
    "p50 ms",
    "p99 ms",
    "breaker",
    "would reject"
  ]
  return `<table><thead><tr>${head.map((h) => `<th>${escape(h)}</th>`).join("")}</tr></thead><tbody>${
    report.phases.map(phaseRow).join("")
  }</tbody></table>`
}

const section = (report: Report) =>
  `<section><h2>${escape(report.scenario)}</h2>
<p class="facts">seed ${report.seed} · ${report.requests} requests over ${fixed(report.durationSeconds)} s${
    report.shadow ? " · shadow mode: protections count but admit everything" : ""
  }</p>
<ul class="stack">${report.stack.map((line) => `<li>${escape(line)}</li>`).join("") || "<li>no protection</li>"}</ul>
${table(report)}
${outcomesChart(report)}${latencyChart(report)}${breakerChart(report)}${shadowChart(report)}
</section>`

const style = `body{font:14px system-ui,sans-serif;margin:24px;color:#222}
main{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
section{flex:1 1 560px;max-width:100%}
table{border-collapse:collapse;margin:12px 0;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}
svg .axis{stroke:#999}svg .phase{stroke:#bbb;stroke-dasharray:3 3}svg .label{font-size:10px;fill:#555}
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.facts{color:#555}`

/** The whole page. */
export const render = (reports: ReadonlyArray<Report>): string => {
  const title = reports.length === 1
    ? `Simulation: ${reports[0].scenario}`
    : `Simulation: ${reports.map((r) => r.scenario).join(" vs ")}`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title><style>${style}</style></head>
<body><h1>${escape(title)}</h1>
<p class="facts">virtual time; made by <code>effect-resilience simulate</code></p>
<main>${reports.map(section).join("\n")}</main>
</body></html>
`
}
