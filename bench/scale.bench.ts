/**
 * Many names: breakers (through `CircuitBreaker.Registry`), bulkheads (through `Bulkhead.Registry`
 * with `create`) and rate-limiter keys (through the public `RateLimiterStore.layerMemory`), at
 * 1,000 / 100,000 / 1,000,000 names. For each: the cost of the first call of a name (creation +
 * call) and of a later call, the heap after GC per name, the metric series exported, and the heap
 * after every name was evicted by its idle time-to-live, against the heap with the registries
 * built and still empty (so both sides hold the same registries). rate-limiter-flexible's memory
 * limiter with the same limit (10 per hour) consuming the same keys is the peer for limiter keys.
 *
 * Each measurement runs in a child process of its own (a fresh heap), under `TestClock`, so the
 * idle eviction runs as it would in production without waiting for it. Below 100,000 names the
 * numbers are the mean over independent registries of that many names, 100,000 names in all.
 * Goals: ≤ 1 KB per idle breaker and bulkhead; the heap back within 10 % of the baseline once
 * every name is evicted.
 *
 * `BENCH_SCALE_SIZES=1000,100000` limits the sizes.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { RateLimiterMemory } from "rate-limiter-flexible"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Metrics from "../src/Metrics.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { formatNs, printTable, writeResults } from "./harness.js"

type Kind = "breaker" | "bulkhead" | "limiter" | "rate-limiter-flexible"

interface Measurement {
  readonly kind: Kind
  readonly names: number
  /** registries (limiters) of `names` names each, `names × registries` names in all */
  readonly registries: number
  /** CPU ns per name: creation and first call */
  readonly createNs: number
  /** CPU ns per call of a name that exists */
  readonly callNs: number
  /** heap per empty registry (limiter), built and never called */
  readonly bytesPerRegistry: number
  /** heap per name, over the empty registries */
  readonly bytesPerName: number
  /** heap with the empty registries built: what eviction must come back to */
  readonly baselineBytes: number
  /** null where nothing evicts (rate-limiter-flexible's keys expire without a sweep) */
  readonly evictedBytes: number | null
  /** distinct `name` labels exported by the instance registry (-1: not applicable) */
  readonly series: number
}

const gc = () => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with --expose-gc")
  for (let i = 0; i < 3; i++) collect()
}

/** Heap in use plus memory held outside the JS heap (typed-array backing stores). */
const heap = () => {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

const cpuNs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1000
}

const name = (i: number) => `tenant-${i}`

/** Runs `call(i)` for every name, returning CPU ns per call. */
const each = (n: number, call: (i: number) => Effect.Effect<unknown, unknown>) =>
  Effect.suspend(() => {
    const start = cpuNs()
    let i = 0
    return Effect.as(
      Effect.whileLoop({ while: () => i < n, body: () => call(i), step: () => void i++ }),
      undefined
    ).pipe(Effect.map(() => (cpuNs() - start) / n))
  })

const mean = (runs: ReadonlyArray<Effect.Effect<number, unknown>>) =>
  Effect.map(Effect.all(runs), (ns) => ns.reduce((a, b) => a + b, 0) / ns.length)

const seriesCount = Effect.map(Metrics.snapshot, (samples) => new Set(samples.map((s) => s.labels.name)).size)

const TTL = Duration.hours(1)

/** Creation, later calls, heap per name, then eviction by idle time, for one kind of instance. */
const WARM_UP = 2000

const measureInstances = (
  kind: "breaker" | "bulkhead" | "limiter",
  n: number
): Effect.Effect<Measurement, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // the same work on other names first, in a scope closed before the baseline: compiled code
    // and object shapes are then part of the baseline, not of the names measured
    yield* Effect.scoped(Effect.flatMap(callsFor(kind, WARM_UP, "warm-up"), (call) => each(WARM_UP, call))).pipe(
      Metrics.withInstanceRegistry()
    )
    const emptyBytes = heap()
    // below 100,000 names a single pass is too short to time: independent registries (limiters)
    // of `n` names each add up to 100,000 calls
    const rounds = Math.max(1, Math.floor(100_000 / n))
    const calls: Array<(i: number) => Effect.Effect<unknown, unknown>> = []
    for (let r = 0; r < rounds; r++) calls.push(yield* callsFor(kind, n, `scale-${r}`))
    // the baseline has the registries, empty: eviction of every name must bring the heap back here
    const baselineBytes = heap()
    const bytesPerRegistry = (baselineBytes - emptyBytes) / rounds
    const createNs = yield* mean(calls.map((call) => each(n, call)))
    const callNs = yield* mean(calls.map((call) => each(n, call)))
    const bytesPerName = (heap() - baselineBytes) / (n * rounds)
    const series = kind === "limiter" ? -1 : yield* seriesCount
    // every name idle for longer than its time-to-live: the sweeps evict them all
    yield* TestClock.adjust(Duration.times(TTL, 2))
    const evictedBytes = heap()
    return {
      kind,
      names: n,
      registries: rounds,
      createNs,
      callNs,
      bytesPerRegistry,
      bytesPerName,
      baselineBytes,
      evictedBytes,
      series
    }
  })

/** A registry (or limiter) for `n` names; the effect calls name `i`. */
const callsFor = (
  kind: "breaker" | "bulkhead" | "limiter",
  n: number,
  label: string
): Effect.Effect<(i: number) => Effect.Effect<unknown, unknown>, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    let call: (i: number) => Effect.Effect<unknown, unknown>
    if (kind === "breaker") {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (key) => CircuitBreaker.sre({ name: key }),
        maxKeys: n,
        idleTimeToLive: TTL
      })
      call = (i) => registry.protect(name(i))(Effect.void)
    } else if (kind === "bulkhead") {
      const registry = yield* Bulkhead.makeRegistry({
        create: (key) => ({ name: key, maxConcurrent: 10 }),
        maxKeys: n,
        idleTimeToLive: TTL
      })
      call = (i) => registry.protect(name(i), Effect.void)
    } else {
      // built in the caller's scope, so the store's background sweeper runs while the clock moves
      const store = yield* Layer.build(RateLimiterStore.layerMemory({ maxKeys: n, idleTimeToLive: TTL }))
      // the same limit as rate-limiter-flexible's below: 10 per hour, in fixed windows
      const limiter = yield* RateLimiter.make({
        name: label,
        algorithm: RateLimiter.fixedWindow({ limit: 10, window: "1 hour" })
      }).pipe(Effect.provide(store))
      call = (i) => limiter.take(name(i))
    }
    return call
  })

const measureFlexible = async (n: number): Promise<Measurement> => {
  const run = async (limiter: RateLimiterMemory, count: number) => {
    const start = cpuNs()
    for (let i = 0; i < count; i++) await limiter.consume(name(i))
    return (cpuNs() - start) / count
  }
  await run(new RateLimiterMemory({ points: 10, duration: 3600, keyPrefix: "warm-up" }), WARM_UP)
  const emptyBytes = heap()
  const rounds = Math.max(1, Math.floor(100_000 / n))
  const limiters = Array.from(
    { length: rounds },
    (_, r) => new RateLimiterMemory({ points: 10, duration: 3600, keyPrefix: `scale-${r}` })
  )
  const baselineBytes = heap()
  let createNs = 0
  for (const limiter of limiters) createNs += await run(limiter, n) / rounds
  let callNs = 0
  for (const limiter of limiters) callNs += await run(limiter, n) / rounds
  const bytesPerName = (heap() - baselineBytes) / (n * rounds)
  return {
    kind: "rate-limiter-flexible",
    names: n,
    registries: rounds,
    createNs,
    callNs,
    bytesPerRegistry: (baselineBytes - emptyBytes) / rounds,
    bytesPerName,
    baselineBytes,
    evictedBytes: NaN,
    series: -1
  }
}

const child = async (kind: Kind, n: number) => {
  const result = kind === "rate-limiter-flexible" ? await measureFlexible(n) : await Effect.runPromise(
    measureInstances(kind, n).pipe(
      Effect.scoped,
      Metrics.withInstanceRegistry(),
      Effect.provide(Layer.merge(TestContext.TestContext, Logger.minimumLogLevel(LogLevel.Warning)))
    )
  )
  console.log(JSON.stringify(result))
}

const parent = () => {
  const sizes = (process.env.BENCH_SCALE_SIZES ?? "1000,100000,1000000").split(",").map(Number)
  const kinds: ReadonlyArray<Kind> = ["breaker", "bulkhead", "limiter", "rate-limiter-flexible"]
  const results: Array<Measurement> = []
  for (const n of sizes) {
    for (const kind of kinds) {
      const run = spawnSync(process.execPath, [
        "--import",
        "tsx",
        "--expose-gc",
        "--max-old-space-size=8192",
        fileURLToPath(import.meta.url),
        kind,
        String(n)
      ], { encoding: "utf8", maxBuffer: 1 << 24 })
      const line = run.stdout.trim().split("\n").pop() ?? ""
      if (run.status !== 0 || !line.startsWith("{")) {
        console.error(`${kind} × ${n} failed:\n${run.stderr}`)
        process.exitCode = 1
        continue
      }
      results.push(JSON.parse(line) as Measurement)
    }
  }
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`
  console.log("\n## scale: many names (CPU time per operation; heap + external after GC)\n")
  printTable(
    [
      "kind",
      "names",
      "create + call",
      "call",
      "bytes/entry",
      "bytes/empty registry",
      "series",
      "heap before",
      "after eviction",
      "after/before"
    ],
    results.map((r) => [
      r.kind,
      r.registries > 1
        ? `${r.names.toLocaleString("en-US")} × ${r.registries}`
        : r.names.toLocaleString("en-US"),
      formatNs(r.createNs),
      formatNs(r.callNs),
      r.bytesPerName.toFixed(0),
      // one registry's heap is within the collector's noise: shown where 100 of them are built
      r.registries >= 10 ? r.bytesPerRegistry.toFixed(0) : "–",
      r.series < 0 ? "–" : String(r.series),
      mb(r.baselineBytes),
      r.evictedBytes === null ? "–" : mb(r.evictedBytes),
      r.evictedBytes === null ? "–" : `${(r.evictedBytes / r.baselineBytes).toFixed(2)}x`
    ])
  )
  console.log(
    "\nBreakers: sre policy via registry.protect; bulkheads: Bulkhead registry with create; limiter: fixed window of" +
      "\n10 per hour in the memory store (whose background sweeper drops dead keys every 10 seconds), against" +
      "\nrate-limiter-flexible's RateLimiterMemory with 10 points per 3,600 s. Each row in a fresh process under" +
      "\nTestClock, after a warm-up on other names. n × r: r registries (limiters) of n names. Heap before: with the" +
      "\nregistries built and empty; bytes/entry is the growth over it per name; bytes/empty registry is shown where" +
      "\n100 are built (one is within the collector's noise). Eviction by idleTimeToLive (1 hour, then 2 hours of" +
      "\nvirtual time). Series: distinct names exported (at most 1,000 plus the overflow series)."
  )
  writeResults("scale", results)
}

const [kindArg, sizeArg] = process.argv.slice(2)
if (kindArg === undefined) parent()
else await child(kindArg as Kind, Number(sizeArg))
