/**
 * A small benchmark harness. Every case of a suite runs in the same process; each trial starts
 * with a full garbage collection (`--expose-gc`, which `npm run bench` passes) and an untimed run
 * of every case (a forced collection discards optimized code), then runs a few rounds of every
 * case, interleaved (the order rotates each round) so drift hits all cases alike. A round records the process's CPU time (`process.cpuUsage`, user + system) beside the
 * wall time; a case reports the median of its trials' medians and their range (min–max).
 * Ratios are computed on CPU time, which another process on the machine cannot inflate as it
 * inflates wall time, except in suites whose work happens outside the process (a Redis server).
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** A prepared case: `run(n)` performs the operation `n` times. */
export interface Runner {
  readonly run: (iterations: number) => Promise<unknown>
  readonly close?: () => Promise<unknown>
}

/** A named case whose setup happens before timing starts. */
export interface Case {
  readonly name: string
  readonly make: () => Promise<Runner>
}

const loop = <A, E>(effect: Effect.Effect<A, E>, iterations: number): Effect.Effect<void, E> => {
  let i = 0
  return Effect.whileLoop({
    while: () => i++ < iterations,
    body: () => effect,
    step: () => undefined
  })
}

/** Runs `effect` n times in one fiber, so the runtime's entry cost is paid once per round. */
export const effectCase = <A, E>(name: string, effect: Effect.Effect<A, E>): Case => ({
  name,
  make: async () => ({ run: (n) => Effect.runPromise(loop(effect, n)) })
})

/** Like `effectCase`, but the effect under test is built in a scope that stays open while timing. */
export const scopedEffectCase = <A, E, E2>(
  name: string,
  build: Effect.Effect<Effect.Effect<A, E>, E2, Scope.Scope>
): Case => ({
  name,
  make: async () => {
    const scope = Effect.runSync(Scope.make())
    const effect = await Effect.runPromise(Scope.extend(build, scope))
    return {
      run: (n) => Effect.runPromise(loop(effect, n)),
      close: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
})

/** Awaits `fn()` n times in sequence. */
export const promiseCase = (name: string, fn: () => PromiseLike<unknown>): Case => ({
  name,
  make: async () => ({
    run: async (n) => {
      for (let i = 0; i < n; i++) await fn()
    }
  })
})

/** A promise case with async setup and teardown (a peer library's client, a connection). */
export const promiseSetupCase = (
  name: string,
  setup: () => Promise<{ readonly fn: () => PromiseLike<unknown>; readonly close?: () => Promise<unknown> }>
): Case => ({
  name,
  make: async () => {
    const { close, fn } = await setup()
    return {
      run: async (n) => {
        for (let i = 0; i < n; i++) await fn()
      },
      ...(close ? { close } : {})
    }
  }
})

export interface SuiteOptions {
  readonly name: string
  /** the case every ratio is computed against */
  readonly baseline: string
  readonly cases: ReadonlyArray<Case>
  /** target wall time of one round per case (default 150 ms, 40 ms with `--quick`; env BENCH_ROUND_MS) */
  readonly roundMs?: number
  /** rounds per case in each trial (default 5, 3 with `--quick`; env BENCH_ROUNDS) */
  readonly rounds?: number
  /** independent trials, each with its own rounds (default 3, never fewer; env BENCH_TRIALS) */
  readonly trials?: number
  /** a note printed under the table */
  readonly note?: string
  /** iterations of the warm-up run before calibration (default 1000); lower it for heavy operations */
  readonly warmupIterations?: number
  /**
   * what ratios compare: `"cpu"` (default) or `"wall"` for suites whose work happens in another
   * process (a Redis server), which the process's CPU time does not see
   */
  readonly measure?: "cpu" | "wall"
  /** peer packages the suite compares with; their installed versions are printed and recorded */
  readonly peers?: ReadonlyArray<string>
}

/** One case's figures: medians over trials of each trial's median round, in ns per operation. */
export interface CaseResult {
  readonly name: string
  /** wall time per operation (median over trials) */
  readonly nsPerOp: number
  /** operations per second of wall time */
  readonly opsPerSec: number
  /** process CPU time per operation (median over trials) */
  readonly cpuNsPerOp: number
  /** range of the trials' CPU medians */
  readonly cpuMinNs: number
  readonly cpuMaxNs: number
  /** range of the trials' wall medians */
  readonly minNs: number
  readonly maxNs: number
  /** time per op / the baseline's, on the suite's measure */
  readonly ratio: number
  readonly iterations: number
}

const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const flags = new Set(process.argv.slice(2))
/** `--quick`: shorter and fewer rounds (still three trials), for iterating on a change */
export const quick = flags.has("--quick")

const collectGarbage: () => void = (globalThis as { gc?: () => void }).gc ?? (() => undefined)

/** process CPU time (user + system) in nanoseconds */
const cpuNow = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) * 1000
}

interface Sample {
  readonly wall: number
  readonly cpu: number
}

const timeRound = async (runner: Runner, iterations: number): Promise<Sample> => {
  const cpu = cpuNow()
  const start = process.hrtime.bigint()
  await runner.run(iterations)
  const wall = Number(process.hrtime.bigint() - start)
  return { wall, cpu: cpuNow() - cpu }
}

/** Finds an iteration count whose round takes about `roundMs`. */
const calibrate = async (runner: Runner, roundMs: number): Promise<number> => {
  let iterations = 1
  for (;;) {
    const { wall: elapsed } = await timeRound(runner, iterations)
    if (elapsed >= roundMs * 1e6 / 4 || iterations >= 1 << 26) {
      return Math.max(1, Math.round(iterations * (roundMs * 1e6) / Math.max(elapsed, 1)))
    }
    iterations *= elapsed < 1e6 ? 8 : 2
  }
}

const formatNs = (ns: number): string =>
  ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`

const formatOps = (ops: number): string =>
  ops >= 1e6 ? `${(ops / 1e6).toFixed(2)}M` : ops >= 1e3 ? `${(ops / 1e3).toFixed(1)}k` : ops.toFixed(0)

/** A table as printed: what `bench:docs` renders into docs/benchmarks.md. */
export interface Table {
  readonly title: string
  readonly headers: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  readonly note?: string | undefined
}

let lastPrinted:
  | { readonly headers: ReadonlyArray<string>; readonly rows: ReadonlyArray<ReadonlyArray<string>> }
  | undefined

/** Prints a plain-text table with right-aligned numeric columns (and remembers it for `writeResults`). */
export const printTable = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): void => {
  lastPrinted = { headers, rows }
  for (const line of renderTable(headers, rows)) console.log(line)
}

/** The lines of a Markdown table with right-aligned numeric columns. */
export const renderTable = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>
): ReadonlyArray<string> => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    "| " + widths.map((w, i) => (i === 0 ? (cells[i] ?? "").padEnd(w) : (cells[i] ?? "").padStart(w))).join(" | ") +
    " |"
  return [
    line(headers),
    "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|",
    ...rows.map(line)
  ]
}

const require = createRequire(import.meta.url)

/** The installed version of a package (a peer the benchmarks compare with). */
export const versionOf = (pkg: string): string => (require(`${pkg}/package.json`) as { version: string }).version

/** `"cockatiel 4.0.0"`: a peer's name with its installed version, for case names. */
export const peer = (pkg: string): string => `${pkg} ${versionOf(pkg)}`

const resultsPath = join(dirname(fileURLToPath(import.meta.url)), "results.json")

/**
 * Merges one suite's results into `bench/results.json` (suites keep their place; the last run of
 * a suite replaces its entry). `table` is what was printed: the last `printTable` unless given.
 */
export const writeResults = (suite: string, data: unknown, table?: Partial<Table>): void => {
  let all: Record<string, unknown> = {}
  try {
    all = JSON.parse(readFileSync(resultsPath, "utf8"))
  } catch {
    all = {}
  }
  const printed = table?.rows !== undefined ? table : { ...lastPrinted, ...table }
  lastPrinted = undefined
  all[suite] = {
    measuredAt: new Date().toISOString(),
    node: process.version,
    ...(quick ? { quick: true } : {}),
    table: {
      title: printed.title ?? suite,
      headers: printed.headers ?? [],
      rows: printed.rows ?? [],
      note: printed.note
    },
    data
  }
  writeFileSync(resultsPath, JSON.stringify(all, null, 2) + "\n")
}

const envNumber = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name])

/** Runs every case `rounds` times, interleaved, the order rotating each round; the median per case. */
const runTrial = async (
  runners: ReadonlyArray<Runner>,
  iterations: ReadonlyArray<number>,
  rounds: number,
  offset: number
): Promise<ReadonlyArray<Sample>> => {
  const samples: Array<Array<Sample>> = runners.map(() => [])
  // garbage from the previous trial is collected before this one; a forced full collection
  // discards optimized code, so every case runs untimed again before the timed rounds
  collectGarbage()
  for (let i = 0; i < runners.length; i++) await timeRound(runners[i], Math.max(1, Math.round(iterations[i] / 5)))
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < runners.length; k++) {
      const i = (k + round + offset) % runners.length
      const sample = await timeRound(runners[i], iterations[i])
      samples[i].push({ wall: sample.wall / iterations[i], cpu: sample.cpu / iterations[i] })
    }
  }
  return samples.map((xs) => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) }))
}

/** Runs a suite, prints its table and records it. */
export const runSuite = async (options: SuiteOptions): Promise<ReadonlyArray<CaseResult>> => {
  const roundMs = options.roundMs ?? envNumber("BENCH_ROUND_MS") ?? (quick ? 40 : 150)
  const rounds = options.rounds ?? envNumber("BENCH_ROUNDS") ?? (quick ? 3 : 5)
  const trials = Math.max(3, options.trials ?? envNumber("BENCH_TRIALS") ?? 3)
  const measure = options.measure ?? "cpu"
  const baselineIndex = options.cases.findIndex((c) => c.name === options.baseline)
  if (baselineIndex < 0) {
    throw new Error(`suite ${options.name}: baseline "${options.baseline}" is not one of its cases`)
  }
  const runners: Array<Runner> = []
  try {
    for (const c of options.cases) runners.push(await c.make())
    const iterations: Array<number> = []
    for (const runner of runners) {
      await timeRound(runner, options.warmupIterations ?? 1000) // warm-up: JIT and caches
      iterations.push(await calibrate(runner, roundMs))
    }
    const perTrial: Array<ReadonlyArray<Sample>> = []
    for (let trial = 0; trial < trials; trial++) perTrial.push(await runTrial(runners, iterations, rounds, trial))
    const of = (i: number, key: keyof Sample) => perTrial.map((t) => t[i][key])
    const measured = (i: number) => median(of(i, measure))
    const results: Array<CaseResult> = options.cases.map((c, i) => ({
      name: c.name,
      nsPerOp: median(of(i, "wall")),
      opsPerSec: 1e9 / median(of(i, "wall")),
      cpuNsPerOp: median(of(i, "cpu")),
      cpuMinNs: Math.min(...of(i, "cpu")),
      cpuMaxNs: Math.max(...of(i, "cpu")),
      minNs: Math.min(...of(i, "wall")),
      maxNs: Math.max(...of(i, "wall")),
      ratio: measured(i) / measured(baselineIndex),
      iterations: iterations[i]
    }))
    const peers = Object.fromEntries((options.peers ?? []).map((p) => [p, versionOf(p)]))
    const title =
      `${options.name}  (${measure === "cpu" ? "CPU" : "wall"} time, median of ${trials} trials × ${rounds} ` +
      `rounds, ratio vs "${options.baseline}")`
    const headers = ["case", "CPU/op", "CPU range", "wall/op", "wall range", "ratio"]
    const rows = results.map((r) => [
      r.name,
      formatNs(r.cpuNsPerOp),
      `${formatNs(r.cpuMinNs)}–${formatNs(r.cpuMaxNs)}`,
      formatNs(r.nsPerOp),
      `${formatNs(r.minNs)}–${formatNs(r.maxNs)}`,
      `${r.ratio.toFixed(2)}x`
    ])
    const peerLine = Object.keys(peers).length === 0
      ? undefined
      : `Peers: ${Object.entries(peers).map(([p, v]) => `${p} ${v}`).join(", ")}.`
    const note = [options.note, peerLine].filter((x) => x !== undefined).join("\n") || undefined
    console.log(`\n## ${title}\n`)
    printTable(headers, rows)
    if (note !== undefined) console.log(`\n${note}`)
    writeResults(options.name, {
      baseline: options.baseline,
      measure,
      trials,
      rounds,
      roundMs,
      peers,
      cases: Object.fromEntries(results.map(({ name, ...rest }) => [name, rest]))
    }, { title, headers, rows, note })
    return results
  } finally {
    for (const runner of runners) await runner.close?.()
  }
}

export { formatNs, formatOps }
