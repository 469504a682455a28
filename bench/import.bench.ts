/**
 * What importing the toolkit costs an application: `import("effect-resilience")` against
 * `import("effect")` alone (and one subpath), each in a fresh Node process on the compiled
 * package. Modules loaded are counted once per case through module hooks; milliseconds (wall
 * clock and CPU time of the import) come from separate runs without the hooks, in trials whose
 * order rotates, after one warm-up run of each case so every trial reads files from the page cache.
 * Builds the package into `dist/` first, as `npm run build` does (`--no-build` skips that).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { printTable, writeResults } from "./harness.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const probeDir = join(root, "bench", "import-probe")
const flags = new Set(process.argv.slice(2))
const trials = Number(process.env.BENCH_TRIALS ?? 3)

interface Probe {
  readonly ms: number
  readonly cpuMs: number
  readonly modules: ReadonlyArray<string>
}

const probe = (specifier: string, env: Record<string, string> = {}, hooks = false): Probe =>
  JSON.parse(
    execFileSync(
      process.execPath,
      [...(hooks ? ["--import", "./register.mjs"] : []), "./probe.mjs", specifier],
      { cwd: probeDir, encoding: "utf8", env: { ...process.env, ...env } }
    ).trim().split("\n").at(-1)!
  )

const countModules = (specifier: string): number => {
  const dir = mkdtempSync(join(tmpdir(), "import-bench-"))
  try {
    return probe(specifier, { IMPORT_PROBE_OUT: join(dir, "modules.txt") }, true).modules.length
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const span = (xs: ReadonlyArray<number>): string => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`

if (!flags.has("--no-build")) {
  execFileSync(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root, stdio: "inherit" })
}

// resolved from bench/import-probe/: `effect-resilience` is this package (its exports map, dist/)
const cases = ["effect", "effect-resilience", "effect-resilience/CircuitBreaker"] as const
const modules = cases.map(countModules)
for (const specifier of cases) probe(specifier)
const runs: Array<Array<Probe>> = cases.map(() => [])
for (let trial = 0; trial < trials; trial++) {
  for (let k = 0; k < cases.length; k++) {
    const i = (k + trial) % cases.length
    runs[i].push(probe(cases[i]))
  }
}

const cpu = runs.map((xs) => median(xs.map((x) => x.cpuMs)))
const wall = runs.map((xs) => median(xs.map((x) => x.ms)))
const rows = cases.map((specifier, i) => [
  `import("${specifier}")`,
  String(modules[i]),
  `${(modules[i] / modules[0]).toFixed(2)}×`,
  `${wall[i].toFixed(0)} (${span(runs[i].map((x) => x.ms))})`,
  `${cpu[i].toFixed(0)} (${span(runs[i].map((x) => x.cpuMs))})`,
  `${(cpu[i] / cpu[0]).toFixed(2)}×`
])
const title = "import cost (fresh process, compiled package)"
console.log(`\n${title}: median of ${trials} trials (min–max)`)
printTable(["import", "modules", "vs effect", "wall ms", "CPU ms", "CPU vs effect"], rows)
writeResults("import cost", {
  trials,
  cases: Object.fromEntries(cases.map((specifier, i) => [
    `import("${specifier}")`,
    {
      modules: modules[i],
      wallMs: runs[i].map((x) => x.ms),
      cpuMs: runs[i].map((x) => x.cpuMs),
      cpuNsPerOp: cpu[i] * 1e6
    }
  ]))
}, {
  title,
  note: `Each import in a fresh \`node\` process; median of ${trials} trials (min–max). ` +
    "Modules counted through module hooks (ESM) and `require`'s cache (CommonJS)."
})
