/**
 * The HTML report: one self-contained file with chart.js inlined (no network access needed),
 * charts over time of breaker states, requests by outcome, latency percentiles, and offered against
 * admitted load beside the load shedder's overload signal, plus the per-phase summary table.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import type { BreakerSample, OverloadSample, PhaseWindow } from "./model.js"
import type { PhaseSummary, SecondBucket } from "./stats.js"
import { summaryHeader, summaryRows } from "./stats.js"

export interface ReportData {
  readonly title: string
  readonly generatedAt: string
  readonly totalMs: number
  /** Free-form facts about the run shown under the title (store, ports, scale, …). */
  readonly facts: Readonly<Record<string, string>>
  readonly phases: ReadonlyArray<PhaseWindow>
  readonly seconds: ReadonlyArray<SecondBucket>
  readonly breakers: ReadonlyArray<BreakerSample>
  /** The server's load shedder over time (absent when it has none). */
  readonly overload?: ReadonlyArray<OverloadSample>
  readonly summary: ReadonlyArray<PhaseSummary>
  /** Log lines of the run (breaker state changes, warnings), milliseconds since the start. */
  readonly events?: ReadonlyArray<{ readonly t: number; readonly level: string; readonly message: string }>
  /** Set when the run was interrupted before its last phase ended. */
  readonly interrupted?: boolean
}

/** The chart.js UMD bundle, read from the installed package. */
export const chartJsSource = (): string => {
  const require = createRequire(import.meta.url)
  const main = require.resolve("chart.js")
  return readFileSync(Path.join(Path.dirname(main), "chart.umd.js"), "utf8")
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** JSON that is safe inside a `<script>` element. */
const scriptJson = (u: unknown) => JSON.stringify(u).replace(/</g, "\\u003c")

const summaryTableHtml = (summary: ReadonlyArray<PhaseSummary>) => {
  const head = summaryHeader.map((h) => `<th>${escapeHtml(h)}</th>`).join("")
  const rows = summaryRows(summary).map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`)
  const byKeys = [...new Set(summary.flatMap((s) => Object.keys(s.by)))].sort()
  const byRows = byKeys.map((k) =>
    `<tr><td>${escapeHtml(k)}</td>${summary.map((s) => `<td>${s.by[k] ?? 0}</td>`).join("")}</tr>`
  )
  const breakerNames = [...new Set(summary.flatMap((s) => Object.keys(s.breakers)))]
  const breakerRows = breakerNames.map((n) =>
    `<tr><td>${escapeHtml(n)}</td>${
      summary.map((s) => `<td>${escapeHtml((s.breakers[n] ?? ["-"]).join(" → "))}</td>`).join("")
    }</tr>`
  )
  const phaseHead = `<th></th>${summary.map((s) => `<th>${escapeHtml(s.phase)}</th>`).join("")}`
  return `<table class="summary"><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>
<h3>Requests not admitted, by the protection that answered</h3>
<table class="summary"><thead><tr>${phaseHead}</tr></thead><tbody>${byRows.join("")}</tbody></table>
<h3>Breaker states seen in each phase</h3>
<table class="summary"><thead><tr>${phaseHead}</tr></thead><tbody>${breakerRows.join("")}</tbody></table>`
}

const MAX_EVENTS = 300

const eventsHtml = (data: ReportData) => {
  const events = data.events ?? []
  if (events.length === 0) return ""
  const rows = events.slice(0, MAX_EVENTS).map((e) =>
    `<tr><td>${(e.t / 1000).toFixed(2)}</td><td>${escapeHtml(e.level)}</td><td class="msg">${
      escapeHtml(e.message)
    }</td></tr>`
  )
  const more = events.length > MAX_EVENTS ? `<p class="note">… and ${events.length - MAX_EVENTS} more</p>` : ""
  return `<h2>Log</h2>
<table class="summary events"><thead><tr><th>s</th><th>level</th><th>message</th></tr></thead><tbody>${
    rows.join("")
  }</tbody></table>${more}`
}

/** The browser-side script: builds the four charts from the embedded data. */
const clientScript = `
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var phases = data.phases;
  var maxX = Math.max(1, Math.ceil((data.totalMs - 50) / 1000));
  var phaseColors = ["rgba(46,160,67,0.07)", "rgba(215,58,73,0.09)", "rgba(219,171,9,0.10)", "rgba(3,102,214,0.07)", "rgba(111,66,193,0.07)"];
  var phaseBands = {
    id: "phaseBands",
    beforeDatasetsDraw: function (chart) {
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      ctx.save();
      phases.forEach(function (p, i) {
        var a = x.getPixelForValue(p.startMs / 1000), b = x.getPixelForValue(p.endMs / 1000);
        ctx.fillStyle = phaseColors[i % phaseColors.length];
        ctx.fillRect(a, area.top, b - a, area.bottom - area.top);
        ctx.fillStyle = "#555";
        ctx.font = "11px sans-serif";
        ctx.fillText(p.name, a + 4, area.top + 12);
      });
      ctx.restore();
    }
  };
  var xScale = { type: "linear", min: 0, max: maxX, title: { display: true, text: "seconds since start" } };
  var common = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } };
  function series(key) { return data.seconds.map(function (s) { return { x: s.t + 0.5, y: key(s) }; }); }
  var charts = [];

  var stateValue = { Closed: 0, HalfOpen: 1, Open: 2, Isolated: 3 };
  var stateName = ["Closed", "HalfOpen", "Open", "Isolated"];
  var names = [];
  data.breakers.forEach(function (s) { if (names.indexOf(s.name) < 0) names.push(s.name); });
  var lineColors = ["#d73a49", "#0366d6", "#6f42c1", "#e36209", "#22863a"];
  charts.push(new Chart(document.getElementById("chart-breakers"), {
    type: "line",
    data: { datasets: names.map(function (n, i) {
      return {
        label: n + " — state",
        stepped: true,
        borderColor: lineColors[i % lineColors.length],
        backgroundColor: lineColors[i % lineColors.length],
        pointRadius: 0,
        borderWidth: 2,
        data: data.breakers.filter(function (s) { return s.name === n; }).map(function (s) { return { x: s.t / 1000, y: stateValue[s.state] + i * 0.04 }; })
      };
    }).concat(names.filter(function (n) {
      return data.breakers.some(function (s) { return s.name === n && typeof s.dropRatio === "number"; });
    }).map(function (n) {
      var i = names.indexOf(n);
      return {
        label: n + " — drop ratio",
        yAxisID: "y1",
        borderColor: lineColors[i % lineColors.length],
        backgroundColor: lineColors[i % lineColors.length],
        borderDash: [3, 3],
        borderWidth: 1,
        pointRadius: 0,
        data: data.breakers.filter(function (s) { return s.name === n && typeof s.dropRatio === "number"; }).map(function (s) { return { x: s.t / 1000, y: s.dropRatio }; })
      };
    })) },
    options: Object.assign({}, common, {
      scales: {
        x: xScale,
        y: { min: -0.2, max: 3.2, ticks: { stepSize: 1, callback: function (v) { return stateName[Math.round(v)] || ""; } } },
        y1: { position: "right", min: 0, max: 1.07, grid: { drawOnChartArea: false }, title: { display: true, text: "drop ratio (dashed)" } }
      }
    }),
    plugins: [phaseBands]
  }));

  var outcomeSeries = [
    ["admitted (2xx)", "#2ea043", function (s) { return s.counts.ok; }],
    ["rate-limited (429)", "#dbab09", function (s) { return s.counts.rateLimited; }],
    ["shed (503)", "#e36209", function (s) { return s.counts.shed; }],
    ["breaker open (503)", "#6f42c1", function (s) { return s.counts.breakerOpen; }],
    ["timed out", "#0366d6", function (s) { return s.counts.timeout; }],
    ["failed (5xx / network)", "#d73a49", function (s) { return s.counts.failed + s.counts.clientError; }],
    ["not sent (driver cap)", "#959da5", function (s) { return s.counts.skipped; }]
  ];
  charts.push(new Chart(document.getElementById("chart-outcomes"), {
    type: "bar",
    data: { datasets: outcomeSeries.map(function (o) {
      return { label: o[0], backgroundColor: o[1], data: series(o[2]), barPercentage: 1, categoryPercentage: 1 };
    }) },
    options: Object.assign({}, common, {
      scales: { x: Object.assign({ stacked: true, offset: false }, xScale), y: { stacked: true, beginAtZero: true, title: { display: true, text: "requests / s (by send time)" } } }
    }),
    plugins: [phaseBands]
  }));

  charts.push(new Chart(document.getElementById("chart-latency"), {
    type: "line",
    data: { datasets: [
      { label: "p50 (all answers)", borderColor: "#0366d6", backgroundColor: "#0366d6", data: series(function (s) { return s.p50; }), spanGaps: false, pointRadius: 2 },
      { label: "p99 (all answers)", borderColor: "#d73a49", backgroundColor: "#d73a49", data: series(function (s) { return s.p99; }), spanGaps: false, pointRadius: 2 },
      { label: "p99 (admitted only)", borderColor: "#2ea043", backgroundColor: "#2ea043", borderDash: [4, 3], data: series(function (s) { return s.p99ok; }), spanGaps: false, pointRadius: 2 }
    ] },
    options: Object.assign({}, common, {
      scales: { x: xScale, y: { type: "logarithmic", title: { display: true, text: "latency, ms (log scale)" } } }
    }),
    plugins: [phaseBands]
  }));

  var overload = data.overload || [];
  var signalName = overload.length > 0 ? overload[0].signal : "signal";
  charts.push(new Chart(document.getElementById("chart-overload"), {
    type: "line",
    data: { datasets: [
      { label: "offered (requests / s)", borderColor: "#959da5", backgroundColor: "#959da5", data: series(function (s) { return s.offered; }), pointRadius: 2 },
      { label: "admitted (requests / s)", borderColor: "#2ea043", backgroundColor: "#2ea043", data: series(function (s) { return s.admitted; }), pointRadius: 2 },
      { label: "overload signal: " + signalName, yAxisID: "y1", borderColor: "#e36209", backgroundColor: "#e36209", borderWidth: 1, pointRadius: 0, data: overload.map(function (o) { return { x: o.t / 1000, y: o.value }; }) },
      { label: "shedding threshold", yAxisID: "y1", borderColor: "#d73a49", backgroundColor: "#d73a49", borderDash: [4, 3], borderWidth: 1, pointRadius: 0, data: overload.map(function (o) { return { x: o.t / 1000, y: o.threshold }; }) }
    ] },
    options: Object.assign({}, common, {
      scales: {
        x: xScale,
        y: { beginAtZero: true, title: { display: true, text: "requests / s (by send time)" } },
        y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: signalName } }
      }
    }),
    plugins: [phaseBands]
  }));

  window.__charts = charts;
  window.__reportReady = true;
})();
`

/** Builds the complete HTML document. */
export const render = (data: ReportData, chartJs: string = chartJsSource()): string => {
  const facts = Object.entries(data.facts)
    .map(([k, v]) => `<li><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</li>`)
    .join("")
  const phases = data.phases
    .map((p) =>
      `<li><b>${escapeHtml(p.title)}</b> (${((p.endMs - p.startMs) / 1000).toFixed(1)} s, ${p.rps} req/s offered): ${
        escapeHtml(p.description)
      }</li>`
    )
    .join("")
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(data.title)}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #24292e; padding: 0 16px; }
  h1 { margin-bottom: 4px; }
  .chart { position: relative; height: 300px; margin: 8px 0 28px; }
  table.summary { border-collapse: collapse; margin: 8px 0 20px; font-variant-numeric: tabular-nums; }
  table.summary th, table.summary td { border: 1px solid #d1d5da; padding: 4px 8px; text-align: right; }
  table.summary td:first-child, table.summary th:first-child { text-align: left; }
  .note { color: #586069; font-size: 14px; }
  .warn { color: #b31d28; font-weight: bold; }
  table.events td.msg { text-align: left; font-family: ui-monospace, monospace; font-size: 12px; }
</style>
</head>
<body>
<h1>${escapeHtml(data.title)}</h1>
<p class="note">Generated ${escapeHtml(data.generatedAt)} · run length ${(data.totalMs / 1000).toFixed(1)} s · ${
    data.seconds.reduce((n, s) => n + s.sent, 0)
  } requests recorded</p>
${
    data.interrupted === true
      ? "<p class=\"warn\">The run was interrupted; the data covers only the part that ran.</p>"
      : ""
  }
<ul class="note">${facts}</ul>
<h2>Phases</h2>
<ul>${phases}</ul>
<h2>Circuit breaker state</h2>
<div class="chart"><canvas id="chart-breakers"></canvas></div>
<h2>Requests per second, by outcome</h2>
<div class="chart"><canvas id="chart-outcomes"></canvas></div>
<h2>Latency per second</h2>
<div class="chart"><canvas id="chart-latency"></canvas></div>
<h2>Offered and admitted load, and the load shedder's signal</h2>
<div class="chart"><canvas id="chart-overload"></canvas></div>
<h2>Summary</h2>
${summaryTableHtml(data.summary)}
${eventsHtml(data)}
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${chartJs}</script>
<script>${clientScript}</script>
</body>
</html>
`
}
