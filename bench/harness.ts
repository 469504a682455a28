/**
 * A small benchmark harness: every case of a suite runs in the same process, rounds are
 * interleaved across cases so drift hits all of them alike, and the median round is reported.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { readFileSync, writeFileSync } from "node:fs"
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
  /** target wall time of one round per case (default 150 ms, env BENCH_ROUND_MS) */
  readonly roundMs?: number
  /** rounds per case (default 7, env BENCH_ROUNDS) */
  readonly rounds?: number
  /** a note printed under the table */
  readonly note?: string
  /** iterations of the warm-up run before calibration (default 1000); lower it for heavy operations */
  readonly warmupIterations?: number
}

export interface CaseResult {
  readonly name: string
  readonly nsPerOp: number
  readonly opsPerSec: number
  readonly ratio: number
  readonly minNs: number
  readonly maxNs: number
  readonly iterations: number
}

const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const timeRound = async (runner: Runner, iterations: number): Promise<number> => {
  const start = process.hrtime.bigint()
  await runner.run(iterations)
  return Number(process.hrtime.bigint() - start)
}

/** Finds an iteration count whose round takes about `roundMs`. */
const calibrate = async (runner: Runner, roundMs: number): Promise<number> => {
  let iterations = 1
  for (;;) {
    const elapsed = await timeRound(runner, iterations)
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

/** Prints a plain-text table with right-aligned numeric columns. */
export const printTable = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): void => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |"
  console.log(line(headers))
  console.log("|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|")
  for (const row of rows) console.log(line(row))
}

const resultsPath = join(dirname(fileURLToPath(import.meta.url)), "results.json")

/** Merges one suite's results into `bench/results.json`. */
export const writeResults = (suite: string, data: unknown): void => {
  let all: Record<string, unknown> = {}
  try {
    all = JSON.parse(readFileSync(resultsPath, "utf8"))
  } catch {
    all = {}
  }
  all[suite] = { measuredAt: new Date().toISOString(), node: process.version, data }
  writeFileSync(resultsPath, JSON.stringify(all, null, 2) + "\n")
}

/** Runs a suite, prints its table and records it. */
export const runSuite = async (options: SuiteOptions): Promise<ReadonlyArray<CaseResult>> => {
  const roundMs = options.roundMs ?? Number(process.env.BENCH_ROUND_MS ?? 150)
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 7)
  if (!options.cases.some((c) => c.name === options.baseline)) {
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
    const samples: Array<Array<number>> = runners.map(() => [])
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < runners.length; i++) {
        samples[i].push((await timeRound(runners[i], iterations[i])) / iterations[i])
      }
    }
    const medians = samples.map(median)
    const baselineNs = medians[options.cases.findIndex((c) => c.name === options.baseline)]
    const results: Array<CaseResult> = options.cases.map((c, i) => ({
      name: c.name,
      nsPerOp: medians[i],
      opsPerSec: 1e9 / medians[i],
      ratio: medians[i] / baselineNs,
      minNs: Math.min(...samples[i]),
      maxNs: Math.max(...samples[i]),
      iterations: iterations[i]
    }))
    console.log(`\n## ${options.name}  (median of ${rounds} rounds, ratio vs "${options.baseline}")\n`)
    printTable(
      ["case", "time/op", "ops/s", "ratio", "spread"],
      results.map((r) => [
        r.name,
        formatNs(r.nsPerOp),
        formatOps(r.opsPerSec),
        `${r.ratio.toFixed(2)}x`,
        `${formatNs(r.minNs)}–${formatNs(r.maxNs)}`
      ])
    )
    if (options.note) console.log(`\n${options.note}`)
    writeResults(options.name, results)
    return results
  } finally {
    for (const runner of runners) await runner.close?.()
  }
}

export { formatNs, formatOps }
