/**
 * Rate limiters.
 *
 * - memory: decisions per second in memory over 1,000 / 100,000 / 1,000,000 distinct keys, the fixed
 *   window against rate-limiter-flexible's `RateLimiterMemory` (also fixed windows) with the same
 *   limit and duration on the same keys, prefilled on both sides before timing (and effect's and
 *   @effect/experimental's limiters at 1,000 keys);
 * - redis: decisions per second on one local redis-server at concurrency 1, 16 and 256 over 1,000
 *   keys: the `RedisStore` per algorithm, a raw `EVALSHA` of the same script through the same
 *   client library, and rate-limiter-flexible's `RateLimiterRedis`. Every row counts the calls it
 *   made: a round of n calls is n calls whatever the concurrency. Beside each row, Redis's own
 *   ceiling from `redis-benchmark -P 16 -c 50` for the same script and for a trivial one.
 * - heap: bytes for 1,000,000 distinct keys in the memory store.
 *
 * Starts its own redis-server. `RL_BENCH_PARTS=memory,redis,heap` picks parts.
 */
import * as ExperimentalRateLimiter from "@effect/experimental/RateLimiter"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as EffectRateLimiter from "effect/RateLimiter"
import * as Scope from "effect/Scope"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { RateLimiterMemory, RateLimiterRedis } from "rate-limiter-flexible"
import { createClient } from "redis"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as RedisStore from "../src/RedisStore.js"
import { redisServerMissing, startRedis } from "../test/integration/redisServer.js"
import type { Case } from "./harness.js"
import { printTable, promiseSetupCase, runSuite, scopedEffectCase, writeResults } from "./harness.js"

const keysOf = (n: number) => Array.from({ length: n }, (_, i) => `user-${i}`)
const KEYS = keysOf(1000)
const parts = new Set((process.env.RL_BENCH_PARTS ?? "memory,redis,heap").split(","))

// admits everything, so every row does the same work (a write per call)
const algorithms: ReadonlyArray<readonly [string, RateLimiter.Algorithm]> = [
  ["tokenBucket", RateLimiter.tokenBucket({ rate: 1e6, burst: 1e9 })],
  ["gcra", RateLimiter.gcra({ limit: 1e6, period: "1 second", burst: 1e9 })],
  ["fixedWindow", RateLimiter.fixedWindow({ limit: 1e9, window: "1 minute" })],
  ["slidingCounter", RateLimiter.slidingCounter({ limit: 1e6, window: "1 minute" })],
  ["slidingLog", RateLimiter.slidingLog({ limit: 10, window: "1 second" })]
]

// ---------------------------------------------------------------- memory

// Like for like: both sides count in fixed windows of a minute, with a limit nobody reaches, and
// every key is taken once before timing, so each timed call updates a key that exists.
const MEMORY_LIMIT = 1e9

const ours = (keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({
      name: "bench",
      algorithm: RateLimiter.fixedWindow({ limit: MEMORY_LIMIT, window: "1 minute" })
    }).pipe(Effect.provide(RateLimiterStore.layerMemory({ maxKeys: keys.length + 1 })))
    const n = keys.length
    yield* Effect.forEach(keys, (key) => limiter.take(key), { discard: true })
    let i = 0
    return Effect.suspend(() => limiter.take(keys[i++ % n]))
  })

const flexibleMemory = (keys: ReadonlyArray<string>) =>
  promiseSetupCase(`rate-limiter-flexible RateLimiterMemory (${keys.length.toLocaleString("en")} keys)`, async () => {
    const flexible = new RateLimiterMemory({ points: MEMORY_LIMIT, duration: 60 })
    for (const key of keys) await flexible.consume(key)
    let i = 0
    const n = keys.length
    return { fn: () => flexible.consume(keys[i++ % n]) }
  })

const memoryAt = (n: number): Array<Case> => {
  const keys = keysOf(n)
  return [
    scopedEffectCase(`effect-resilience fixedWindow (${n.toLocaleString("en")} keys)`, ours(keys)),
    flexibleMemory(keys)
  ]
}

const peersAt1k: Array<Case> = [
  scopedEffectCase(
    "effect RateLimiter (one shared limit)",
    Effect.map(EffectRateLimiter.make({ limit: 1e9, interval: "1 second" }), (rl) => rl(Effect.void))
  ),
  scopedEffectCase(
    "@effect/experimental RateLimiter memory (1,000 keys)",
    Effect.gen(function*() {
      const rl = yield* ExperimentalRateLimiter.make.pipe(Effect.provide(ExperimentalRateLimiter.layerStoreMemory))
      let i = 0
      return Effect.suspend(() =>
        rl.consume({ key: KEYS[i++ % 1000], limit: 1e9, window: "1 second", algorithm: "token-bucket" })
      )
    })
  )
]

// ---------------------------------------------------------------- redis

/** Exactly `n` calls per round, made by `concurrency` promise workers drawing from one counter. */
const promiseWorkers = (
  name: string,
  concurrency: number,
  setup: () => Promise<{ readonly call: (key: string) => Promise<unknown>; readonly close?: () => Promise<unknown> }>
): Case => ({
  name,
  make: async () => {
    const { call, close } = await setup()
    let k = 0
    return {
      run: async (n) => {
        let left = n
        const worker = async () => {
          while (left > 0) {
            left--
            await call(KEYS[k++ % 1000])
          }
        }
        await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
      },
      ...(close ? { close } : {})
    }
  }
})

/** The same with `concurrency` fibers. */
const fiberWorkers = <E>(
  name: string,
  concurrency: number,
  build: Effect.Effect<(key: string) => Effect.Effect<unknown, E>, unknown, Scope.Scope>
): Case => ({
  name,
  make: async () => {
    const scope = Effect.runSync(Scope.make())
    const take = await Effect.runPromise(Scope.extend(build, scope))
    let k = 0
    return {
      run: (n) => {
        let left = n
        const worker = Effect.whileLoop({
          while: () => left > 0,
          body: () => {
            left--
            return take(KEYS[k++ % 1000])
          },
          step: () => undefined
        })
        return Effect.runPromise(
          Effect.forEach(Array.from({ length: Math.min(concurrency, n) }), () => worker, {
            concurrency: "unbounded",
            discard: true
          })
        )
      },
      close: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
})

const connected = async (url: string) => {
  const client = createClient({ url, commandOptions: { timeout: 0 } })
  await client.connect()
  return client
}

const redisCases = (url: string, concurrency: number): Array<Case> => {
  const cases: Array<Case> = []
  for (const [label, algorithm] of algorithms) {
    const def = Effect.runSync(RateLimiter.definition(algorithm))
    cases.push(promiseWorkers(`raw EVALSHA ${label}`, concurrency, async () => {
      const client = await connected(url)
      const sha = String(await client.scriptLoad(def.script))
      return {
        call: (key) => client.sendCommand(["EVALSHA", sha, "1", `raw-${label}:{${key}}`]),
        close: () => client.close()
      }
    }))
    cases.push(fiberWorkers(
      `RedisStore ${label}`,
      concurrency,
      Effect.gen(function*() {
        const context = yield* Layer.build(RedisStore.layer({ url, timeout: "2 seconds", prefix: "store:" }))
        const limiter = yield* RateLimiter.make({ name: label, algorithm }).pipe(Effect.provide(context))
        return (key: string) => limiter.take(key)
      })
    ))
  }
  cases.push(promiseWorkers("rate-limiter-flexible RateLimiterRedis", concurrency, async () => {
    const client = await connected(url)
    const limiter = new RateLimiterRedis({ storeClient: client, useRedisPackage: true, points: 1e9, duration: 60 })
    return { call: (key) => limiter.consume(key), close: () => client.close() }
  }))
  return cases
}

/** Redis's own rate for a script, pipelined, from `redis-benchmark` (undefined when it is missing). */
const redisCeiling = (port: number, script: string, prefix: string): number | undefined => {
  const sha = createHash("sha1").update(script).digest("hex")
  spawnSync("redis-cli", ["-p", String(port), "SCRIPT", "LOAD", script])
  const out = spawnSync(
    "redis-benchmark",
    [
      "-p",
      String(port),
      "-P",
      "16",
      "-c",
      "50",
      "-n",
      "200000",
      "-r",
      "1000",
      "-q",
      "EVALSHA",
      sha,
      "1",
      `${prefix}:{__rand_int__}`
    ],
    { encoding: "utf8" }
  )
  const m = /([\d.]+) requests per second/.exec(String(out.stdout).split("\r").pop() ?? "")
  return m === null ? undefined : Number(m[1])
}

const perSecond = (n: number | undefined): string => n === undefined ? "n/a" : `${Math.round(n).toLocaleString("en")}/s`

const runRedis = async () => {
  const missing = redisServerMissing()
  if (missing !== undefined) {
    console.log(`\n${missing}: Redis cases skipped`)
    return
  }
  const redis = await startRedis()
  try {
    const trivial = redisCeiling(redis.port, "return 1", "trivial")
    const ceilings = new Map<string, number | undefined>()
    for (const [label, algorithm] of algorithms) {
      ceilings.set(
        label,
        redisCeiling(redis.port, Effect.runSync(RateLimiter.definition(algorithm)).script, `rb-${label}`)
      )
    }
    console.log(`\nredis-benchmark -P 16 -c 50 (same server): trivial EVALSHA "return 1" ${perSecond(trivial)}`)
    const filter = process.env.RL_CASES?.split(",")
    for (const concurrency of [1, 16, 256]) {
      const results = await runSuite({
        name: `rate-limiter: redis decisions, concurrency ${concurrency}, 1,000 keys`,
        baseline: "rate-limiter-flexible RateLimiterRedis",
        cases: redisCases(redis.url, concurrency).filter((c) =>
          filter === undefined || c.name.includes("flexible") || filter.some((x) => c.name.includes(x))
        ),
        rounds: Number(process.env.BENCH_ROUNDS ?? 5),
        warmupIterations: 200,
        measure: "wall",
        peers: ["rate-limiter-flexible"],
        note:
          "Each round makes exactly n calls spread over the workers. node-redis clients use commandOptions.timeout = 0."
      })
      const rows = results.map((r) => {
        const label = algorithms.find(([l]) => r.name.endsWith(` ${l}`))?.[0]
        const raw = label === undefined ? undefined : results.find((x) => x.name === `raw EVALSHA ${label}`)
        return [
          r.name,
          perSecond(r.opsPerSec),
          raw === undefined || r === raw ? "" : `${(100 * r.opsPerSec / raw.opsPerSec).toFixed(0)} %`,
          label === undefined ? "" : perSecond(ceilings.get(label)),
          perSecond(trivial)
        ]
      })
      printTable(
        ["case", "decisions/s", "of raw EVALSHA", "redis-benchmark same script", "redis-benchmark return 1"],
        rows
      )
      writeResults(`rate-limiter: redis c=${concurrency}`, { results, ceilings: Object.fromEntries(ceilings), trivial })
    }
  } finally {
    await redis.stop()
  }
}

// ---------------------------------------------------------------- memory footprint

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) {
    g()
    g()
  }
}

const heapFor = async (
  label: string,
  fill: (n: number) => Promise<readonly [{ readonly dispose: () => Promise<void> }, ...Array<unknown>]>,
  n: number
) => {
  gc()
  const before = process.memoryUsage().heapUsed
  const [runtime] = await fill(n)
  gc()
  const after = process.memoryUsage().heapUsed
  // the store's background sweeper lives as long as its runtime
  await runtime.dispose()
  return { label, keys: n, bytes: after - before, perKey: (after - before) / n }
}

const fillOurs = (maxKeys: number) => async (n: number) => {
  const runtime = ManagedRuntime.make(RateLimiterStore.layerMemory({ maxKeys }))
  const limiter = await runtime.runPromise(
    RateLimiter.make({ name: "heap", algorithm: RateLimiter.tokenBucket({ rate: 0.001, burst: 10 }) })
  )
  let i = 0
  await runtime.runPromise(Effect.whileLoop({
    while: () => i < n,
    body: () => limiter.take(`user-${i}`),
    step: () => {
      i++
    }
  }))
  return [runtime, limiter] as const
}

// ---------------------------------------------------------------- run

if (parts.has("memory")) {
  for (const n of [1000, 100_000, 1_000_000]) {
    await runSuite({
      name: `rate-limiter: memory decisions, ${n.toLocaleString("en")} keys`,
      baseline: `rate-limiter-flexible RateLimiterMemory (${n.toLocaleString("en")} keys)`,
      cases: n === 1000 ? [...memoryAt(n), ...peersAt1k] : memoryAt(n),
      rounds: Number(process.env.BENCH_ROUNDS ?? 5),
      note: "Fixed windows of a minute on both sides, every key taken once before timing, then round robin;" +
        " effect's RateLimiter has no keys (one shared limit).",
      peers: ["rate-limiter-flexible", "@effect/experimental"]
    })
  }
}

if (parts.has("redis")) await runRedis()

const N = 1_000_000
if (parts.has("heap")) {
  const rows = [
    await heapFor("effect-resilience memory store, maxKeys 2,000,000", fillOurs(2_000_000), N),
    await heapFor("effect-resilience memory store, maxKeys 100,000 (default)", fillOurs(100_000), N)
  ]
  console.log(`\n## rate-limiter: heap for ${N.toLocaleString("en")} distinct keys\n`)
  printTable(
    ["store", "keys taken", "heap growth", "bytes/key"],
    rows.map((r) => [r.label, r.keys.toLocaleString("en"), `${(r.bytes / 1e6).toFixed(1)} MB`, r.perKey.toFixed(0)])
  )
  writeResults("rate-limiter: heap", rows)
}
