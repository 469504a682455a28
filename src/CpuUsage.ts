/**
 * go-zero's overload signal (`LoadShedder.cpu()`): how much of the CPU the process may use is busy,
 * in per-mille (0–1000), as a moving average. The gauge `resilience_cpu_usage_ratio` reports it
 * as a ratio (0–1).
 *
 * `layer` samples every 250 ms and smooths with `usage = previous · 0.95 + current · 0.05`
 * (go-zero's constants). It reads, in order of preference:
 *
 * - cgroup v1: `cpuacct.usage` against `/proc/stat`, relative to the cores the cgroup may use
 *   (the smallest of host CPUs, `cpuset`, and the CFS quota `cpu.cfs_quota_us / cpu.cfs_period_us`);
 * - cgroup v2: `cpu.stat` `usage_usec` against `/proc/stat`, relative to `cpu.max` and
 *   `cpuset.cpus.effective`;
 * - elsewhere (macOS, Windows, unreadable cgroup files): `process.cpuUsage()` against wall time;
 * - on request, the main thread's event-loop utilization (see `Options`).
 *
 * A cgroup reading covers every process in the container (go-zero's semantics: the container is
 * what runs out of CPU). It logs once which source it picked.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Performance } from "node:perf_hooks"
import type { InvalidOptionsError } from "./Errors.js"
import * as Cpu from "./internal/cpu.js"
import * as CpuSource from "./internal/cpuSource.js"
import { decodeOptions, PositiveNumber } from "./internal/options.js"
import * as Metrics from "./internal/sheddingMetrics.js"

/**
 * The service: `current` is the latest smoothed usage in per-mille.
 *
 * `unsafeCurrent`, when present, returns the same value synchronously; the load shedder uses it to
 * decide in one synchronous step. Both layers of this module provide it; a hand-written service
 * may leave it out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly current: Effect.Effect<number>
  readonly unsafeCurrent?: () => number
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CpuUsage } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const cpu = yield* CpuUsage.CpuUsage
 *   return yield* cpu.current // 0–1000
 * }).pipe(Effect.provide(CpuUsage.layer))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class CpuUsage extends Context.Tag("effect-resilience/CpuUsage")<CpuUsage, Service>() {}

/**
 * Where the live layer reads from.
 *
 * @since 0.1.0
 * @category models
 */
export type Source = CpuSource.Source

/**
 * Options of `layerWith`.
 *
 * - `source`: `"auto"` (default) picks cgroup v1, then v2, then the process; `"process"` measures
 *   this process alone; `"event-loop"` measures the utilization of the main thread's event loop
 *   (`performance.eventLoopUtilization()`): 1000 when the loop never waits for I/O, whatever share
 *   of a core the host scheduler gives it; the signal to use for a single-threaded Node server on a
 *   shared host.
 * - `cores`: with `source: "process"`, the cores 1000 per-mille stands for (default: the CPUs
 *   available to the process). A Node server runs its handlers on one thread: `cores: 1` makes a
 *   saturated event loop read 1000 on a machine with more cores.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly source?: "auto" | "process" | "event-loop"
  readonly cores?: number
}

const OptionsSchema = () =>
  Schema.Struct({
    source: Schema.optional(Schema.Literal("auto", "process", "event-loop")),
    cores: Schema.optional(PositiveNumber)
  })

const decode = decodeOptions("CpuUsage", OptionsSchema)

/**
 * The sampling period of the live layer.
 *
 * @since 0.1.0
 * @category constants
 */
export const sampleInterval = "250 millis"

const loadHost = async (): Promise<CpuSource.Host> => {
  const [fs, os] = await Promise.all([import("node:fs"), import("node:os")])
  return {
    readFile: (path) => {
      try {
        return fs.readFileSync(path, "utf8")
      } catch {
        return undefined
      }
    },
    processCpu: () => process.cpuUsage(),
    monotonicNanos: () => Number(process.hrtime.bigint()),
    availableCpus: os.availableParallelism(),
    // Node's global `performance`, typed as Node's: with the DOM lib loaded it has no `eventLoopUtilization`
    eventLoop: () => (performance as unknown as Performance).eventLoopUtilization()
  }
}

let host: Promise<CpuSource.Host> | undefined

/** The process's own readings; `node:fs` and `node:os` load with the first live layer, not on import. */
const liveHost: Effect.Effect<CpuSource.Host> = Effect.promise(() => host ??= loadHost())

/**
 * The live sampler with options; see `Options`. Fails with `InvalidOptionsError` on a bad option.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options = {}): Layer.Layer<CpuUsage, InvalidOptionsError> =>
  Layer.scoped(
    CpuUsage,
    Effect.gen(function*() {
      const decoded = yield* decode(options)
      const preference = decoded.source ?? "auto"
      const host = yield* liveHost
      const sampler = CpuSource.detect(host, preference, decoded.cores) ??
        CpuSource.processSampler(host, decoded.cores ?? host.availableCpus)
      yield* Effect.logInfo("cpu usage source").pipe(
        Effect.annotateLogs({ source: sampler.source, cores: sampler.cores, files: sampler.files.join(" ") })
      )
      const cell = { usage: 0 }
      let previous = sampler.read()
      const sample = Effect.sync(() => {
        const next = sampler.read()
        if (next === undefined) return
        if (previous !== undefined) cell.usage = Cpu.smooth(cell.usage, Cpu.usageBetween(previous, next))
        previous = next
        Metrics.cpuUsageRatio.unsafeUpdate(cell.usage / 1000, [])
      })
      // the first sample one interval after the first reading, not at once: a reading over a few
      // microseconds is noise, and would enter the average with the same weight as a real one
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(sampleInterval), sample)))
      const unsafeCurrent = () => Math.round(cell.usage)
      return CpuUsage.of({ current: Effect.sync(unsafeCurrent), unsafeCurrent })
    })
  )

/**
 * The live sampler with default options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<CpuUsage> = layerWith().pipe(Layer.orDie)

/**
 * The handle a test uses to set the value `layerTest` reports.
 *
 * @since 0.1.0
 * @category tags
 */
export class CpuUsageTest extends Context.Tag("effect-resilience/CpuUsageTest")<CpuUsageTest, {
  readonly set: (perMille: number) => Effect.Effect<void>
}>() {}

/**
 * A `CpuUsage` whose value a test sets through `CpuUsageTest` (or `set`). Values are clamped to
 * [0, 1000].
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { CpuUsage, LoadShedder } from "effect-resilience"
 *
 * const test = Effect.gen(function*() {
 *   const shedder = yield* LoadShedder.make({ name: "api" })
 *   yield* CpuUsage.set(950) // overloaded from now on
 * }).pipe(Effect.scoped, Effect.provide(CpuUsage.layerTest(0)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (initial = 0): Layer.Layer<CpuUsage | CpuUsageTest> => {
  const clamp = (n: number) => (Number.isNaN(n) ? 0 : Math.min(1000, Math.max(0, n)))
  return Layer.effectContext(Effect.sync(() => {
    const cell = { usage: clamp(initial) }
    const unsafeCurrent = () => cell.usage
    return Context.make(CpuUsage, CpuUsage.of({ current: Effect.sync(unsafeCurrent), unsafeCurrent })).pipe(
      Context.add(
        CpuUsageTest,
        CpuUsageTest.of({
          set: (perMille) =>
            Effect.sync(() => {
              cell.usage = clamp(perMille)
              Metrics.cpuUsageRatio.unsafeUpdate(cell.usage / 1000, [])
            })
        })
      )
    )
  }))
}

/**
 * Sets the value of the `layerTest` service in context.
 *
 * @since 0.1.0
 * @category test
 */
export const set = (perMille: number): Effect.Effect<void, never, CpuUsageTest> =>
  Effect.flatMap(CpuUsageTest, (handle) => handle.set(perMille))
