/**
 * `effect-resilience simulate scenario.json [--out report.html] [--json report.json]
 * [--compare other.json]`: runs the scenario (and, in compare mode, the same scenario with the
 * other file's fields in place), writes the HTML and JSON reports and prints one line per phase.
 */
import * as Effect from "effect/Effect"
import { readFileSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { parseArgs } from "node:util"
import * as Simulator from "../../Simulator.js"

export const usage =
  `usage: effect-resilience simulate <scenario.json> [--out report.html] [--json report.json] [--compare other.json]

  --out       the HTML report (default: <scenario>.html in the current directory)
  --json      the JSON report (default: the HTML path with .json)
  --compare   a second scenario file; its fields replace the first one's (a file with only
              "name" and "stack" compares two policy stacks on the same traffic)`

export interface Io {
  readonly readFile: (path: string) => string
  readonly writeFile: (path: string, text: string) => void
  readonly print: (line: string) => void
  readonly now: () => number
}

export const nodeIo: Io = {
  readFile: (path) => readFileSync(path, "utf8"),
  writeFile: (path, text) => writeFileSync(path, text),
  print: (line) => console.log(line),
  now: () => performance.now()
}

const readJson = (io: Io, path: string): unknown => {
  try {
    return JSON.parse(io.readFile(path))
  } catch (error) {
    throw new Error(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`)
  }
}

const phaseLine = (p: Simulator.PhaseSummary) =>
  `  ${p.name.padEnd(14)} offered ${String(p.offered).padStart(9)}  ok ${(p.okShare * 100).toFixed(1).padStart(5)} %` +
  `  shed ${p.outcomes.shed}  rate-limited ${p.outcomes.rateLimited}  breaker ${p.outcomes.breakerOpen}` +
  `  timeout ${p.outcomes.timeout}  failed ${p.outcomes.failed}  p99 ${p.p99Ms ?? "–"} ms`

/** Runs the command; returns the process exit code. */
export const main = (argv: ReadonlyArray<string>, io: Io = nodeIo): number => {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        out: { type: "string" },
        json: { type: "string" },
        compare: { type: "string" },
        help: { type: "boolean" }
      },
      allowPositionals: true
    })
  } catch (error) {
    io.print(`${error instanceof Error ? error.message : String(error)}\n${usage}`)
    return 2
  }
  const [command, file, ...rest] = parsed.positionals
  if (parsed.values.help === true || command !== "simulate" || file === undefined || rest.length > 0) {
    io.print(usage)
    return parsed.values.help === true ? 0 : 2
  }
  try {
    const scenario = readJson(io, file)
    const inputs = [scenario]
    if (parsed.values.compare !== undefined) inputs.push(Simulator.merge(scenario, readJson(io, parsed.values.compare)))
    const reports: Array<Simulator.Report> = []
    for (const input of inputs) {
      const started = io.now()
      const report = Effect.runSync(Effect.either(Simulator.run(input)))
      if (report._tag === "Left") {
        io.print(report.left.message)
        return 1
      }
      const r = report.right
      io.print(
        `${r.scenario}: ${r.requests} requests over ${r.durationSeconds} s of virtual time in ${
          ((io.now() - started) / 1000).toFixed(2)
        } s`
      )
      for (const p of r.phases) io.print(phaseLine(p))
      reports.push(r)
    }
    const out = parsed.values.out ?? `${Path.basename(file, Path.extname(file))}.html`
    const json = parsed.values.json ?? out.replace(/\.html?$/i, "") + ".json"
    io.writeFile(out, Simulator.renderHtml(reports))
    io.writeFile(json, JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 1) + "\n")
    io.print(`report: ${out}\njson:   ${json}`)
    return 0
  } catch (error) {
    io.print(error instanceof Error ? error.message : String(error))
    return 1
  }
}
