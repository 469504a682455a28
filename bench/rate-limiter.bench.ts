/**
 * Rate limiters: decisions per second in memory (vs effect's RateLimiter, @effect/experimental's
 * RateLimiter memory store, rate-limiter-flexible), decisions per second on Redis at concurrency
 * 50 over 1,000 keys (vs a raw EVALSHA loop on the same server — the ceiling — and vs
 * rate-limiter-flexible's RateLimiterRedis and @effect/experimental's Redis store), and heap bytes
 * for 1,000,000 distinct keys in the memory store. Starts its own redis-server.
 */
import * as ExperimentalRateLimiter from "@effect/experimental/RateLimiter"
import * as ExperimentalRedis from "@effect/experimental/RateLimiter/Redis"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as EffectRateLimiter from "effect/RateLimiter"
import * as Scope from "effect/Scope"
import { RateLimiterMemory, RateLimiterRedis } from "rate-limiter-flexible"
import { createClient } from "redis"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as RedisStore from "../src/RedisStore.js"
import { redisServerMissing, startRedis } from "../test/integration/redisServer.js"
import type { Case } from "./harness.js"
import { effectCase, printTable, promiseCase, runSuite, scopedEffectCase, writeResults } from "./harness.js"

const KEYS = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
const CONCURRENCY = 50

// ---------------------------------------------------------------- memory

const ours = (algorithm: RateLimiter.Algorithm, keys: "one" | "1000") =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({ name: "bench", algorithm }).pipe(
      Effect.provide(RateLimiterStore.layerMemory({ maxKeys: 10_000 }))
    )
    let i = 0
    return keys === "one" ? limiter.take("user-1") : Effect.suspend(() => limiter.take(KEYS[i++ % 1000]))
  })

const unlimited = RateLimiter.tokenBucket({ rate: 1e9, burst: 1e9 })

const memoryCases: Array<Case> = [
  effectCase("floor: Effect.void", Effect.void),
  scopedEffectCase("effect-resilience tokenBucket (1 key)", ours(unlimited, "one")),
  scopedEffectCase("effect-resilience tokenBucket (1,000 keys)", ours(unlimited, "1000")),
  scopedEffectCase(
    "effect-resilience gcra (1,000 keys)",
    ours(RateLimiter.gcra({ limit: 1e9, period: "1 second" }), "1000")
  ),
  scopedEffectCase(
    "effect-resilience fixedWindow (1,000 keys)",
    ours(RateLimiter.fixedWindow({ limit: 1e9, window: "1 second" }), "1000")
  ),
  scopedEffectCase(
    "effect-resilience slidingCounter (1,000 keys)",
    ours(RateLimiter.slidingCounter({ limit: 1e9, window: "1 second" }), "1000")
  ),
  scopedEffectCase(
    "effect-resilience slidingLog limit 10 (1,000 keys)",
    ours(RateLimiter.slidingLog({ limit: 10, window: "1 second" }), "1000")
  ),
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
  ),
  (() => {
    const flexible = new RateLimiterMemory({ points: 1e9, duration: 1 })
    let i = 0
    return promiseCase("rate-limiter-flexible RateLimiterMemory (1,000 keys)", () => flexible.consume(KEYS[i++ % 1000]))
  })()
]

// ---------------------------------------------------------------- redis

/** `calls` promise-returning calls spread over 50 concurrent workers and 1,000 keys. */
const concurrentPromiseCase = (
  name: string,
  setup: () => Promise<{ readonly call: (key: string) => Promise<unknown>; readonly close?: () => Promise<unknown> }>
): Case => ({
  name,
  make: async () => {
    const { call, close } = await setup()
    return {
      run: async (n) => {
        const per = Math.ceil(n / CONCURRENCY)
        await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
          for (let i = 0; i < per; i++) await call(KEYS[(w * per + i) % 1000])
        }))
      },
      ...(close ? { close } : {})
    }
  }
})

/** The same, as 50 fibers each looping over an Effect. */
const concurrentEffectCase = <E>(
  name: string,
  build: Effect.Effect<(key: string) => Effect.Effect<unknown, E>, unknown, Scope.Scope>
): Case => ({
  name,
  make: async () => {
    const scope = Effect.runSync(Scope.make())
    const take = await Effect.runPromise(Scope.extend(build, scope))
    return {
      run: (n) => {
        const per = Math.ceil(n / CONCURRENCY)
        return Effect.runPromise(Effect.forEach(
          Array.from({ length: CONCURRENCY }, (_, w) => w),
          (w) => {
            let i = 0
            return Effect.whileLoop({
              while: () => i < per,
              body: () => take(KEYS[(w * per + i++) % 1000]),
              step: () => undefined
            })
          },
          { concurrency: CONCURRENCY, discard: true }
        ))
      },
      close: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
})

const redisCases = (url: string, port: number): Array<Case> => {
  const def = Effect.runSync(RateLimiter.definition(unlimited))
  return [
    concurrentPromiseCase("raw EVALSHA loop (node-redis, same script)", async () => {
      const client = createClient({ url, commandOptions: { timeout: 0 } })
      await client.connect()
      const sha = String(await client.scriptLoad(def.script))
      const args: Array<string> = []
      return {
        call: (key) => client.evalSha(sha, { keys: [`raw:{${key}}`], arguments: args }),
        close: () => client.close()
      }
    }),
    concurrentEffectCase(
      "floor: Effect.tryPromise(raw EVALSHA) in 50 fibers",
      Effect.acquireRelease(
        Effect.promise(async () => {
          const client = createClient({ url, commandOptions: { timeout: 0 } })
          await client.connect()
          const sha = String(await client.scriptLoad(def.script))
          return { client, sha }
        }),
        ({ client }) => Effect.promise(() => client.close())
      ).pipe(Effect.map(({ client, sha }) => {
        const args: Array<string> = []
        return (key: string) =>
          Effect.tryPromise(() => client.evalSha(sha, { keys: [`floor:{${key}}`], arguments: args }))
      }))
    ),
    concurrentEffectCase(
      "effect-resilience RedisStore tokenBucket",
      Effect.gen(function*() {
        const context = yield* Layer.build(RedisStore.layer({ url, timeout: "1 second" }))
        const limiter = yield* RateLimiter.make({ name: "bench", algorithm: unlimited }).pipe(Effect.provide(context))
        return (key: string) => limiter.take(key)
      })
    ),
    concurrentEffectCase(
      "effect-resilience RedisStore gcra",
      Effect.gen(function*() {
        const context = yield* Layer.build(RedisStore.layer({ url, timeout: "1 second" }))
        const limiter = yield* RateLimiter.make({
          name: "bench-gcra",
          algorithm: RateLimiter.gcra({ limit: 1e9, period: "1 second" })
        }).pipe(Effect.provide(context))
        return (key: string) => limiter.take(key)
      })
    ),
    concurrentPromiseCase("rate-limiter-flexible RateLimiterRedis (node-redis)", async () => {
      const client = createClient({ url, commandOptions: { timeout: 0 } })
      await client.connect()
      const limiter = new RateLimiterRedis({ storeClient: client, useRedisPackage: true, points: 1e9, duration: 60 })
      return { call: (key) => limiter.consume(key), close: () => client.close() }
    }),
    concurrentEffectCase(
      "@effect/experimental RateLimiter Redis (ioredis)",
      Effect.gen(function*() {
        const context = yield* Layer.build(
          ExperimentalRateLimiter.layer.pipe(Layer.provide(ExperimentalRedis.layerStore({ host: "127.0.0.1", port })))
        )
        const rl = yield* Effect.provide(ExperimentalRateLimiter.RateLimiter, context)
        return (key: string) => rl.consume({ key, limit: 1e9, window: "1 minute", algorithm: "token-bucket" })
      })
    )
  ]
}

// ---------------------------------------------------------------- memory footprint

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) {
    g()
    g()
  }
}

const heapFor = async (label: string, fill: (n: number) => Promise<unknown>, n: number) => {
  gc()
  const before = process.memoryUsage().heapUsed
  const keep = await fill(n)
  gc()
  const after = process.memoryUsage().heapUsed
  void keep
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
  return [runtime, limiter]
}

const fillExperimental = async (n: number) => {
  const runtime = ManagedRuntime.make(
    ExperimentalRateLimiter.layer.pipe(Layer.provide(ExperimentalRateLimiter.layerStoreMemory))
  )
  const rl = await runtime.runPromise(ExperimentalRateLimiter.RateLimiter)
  let i = 0
  await runtime.runPromise(Effect.whileLoop({
    while: () => i < n,
    body: () => rl.consume({ key: `user-${i}`, limit: 10, window: "1 hour", algorithm: "token-bucket" }),
    step: () => {
      i++
    }
  }))
  return [runtime, rl]
}

// ---------------------------------------------------------------- run

// RL_BENCH_PARTS=memory,redis,heap runs a subset (default: all three)
const parts = new Set((process.env.RL_BENCH_PARTS ?? "memory,redis,heap").split(","))

if (parts.has("memory")) {
  await runSuite({
    name: "rate-limiter: memory decisions",
    baseline: "effect-resilience tokenBucket (1 key)",
    cases: memoryCases,
    note: "Effect cases run n times in one fiber; effect's RateLimiter has no keys (one shared limit)."
  })
}

if (!parts.has("redis")) {
  // skipped
} else if (redisServerMissing() !== undefined) {
  console.log(`\n${redisServerMissing()}: Redis cases skipped`)
} else {
  const redis = await startRedis()
  try {
    const results = await runSuite({
      name: "rate-limiter: redis decisions (concurrency 50, 1,000 keys)",
      baseline: "raw EVALSHA loop (node-redis, same script)",
      cases: redisCases(redis.url, redis.port).filter((c) =>
        process.env.RL_CASES === undefined || process.env.RL_CASES.split(",").some((x) => c.name.includes(x))
      ),
      rounds: Number(process.env.BENCH_ROUNDS ?? 5),
      note:
        "Every case runs against the same local redis-server; the raw loop is the ceiling. Every node-redis client\n" +
        "is created with commandOptions.timeout = 0 (node-redis v6 otherwise arms an AbortSignal timer per command)."
    })
    const ceiling = results[0].opsPerSec
    for (const r of results.slice(1)) {
      console.log(`${r.name}: ${(100 * r.opsPerSec / ceiling).toFixed(0)} % of the raw ceiling`)
    }
  } finally {
    await redis.stop()
  }
}

const N = 1_000_000
if (parts.has("heap")) {
  const rows = [
    await heapFor("effect-resilience memory store, maxKeys 2,000,000", fillOurs(2_000_000), N),
    await heapFor("effect-resilience memory store, maxKeys 100,000 (default)", fillOurs(100_000), N),
    await heapFor("@effect/experimental memory store", fillExperimental, N)
  ]
  console.log(`\n## rate-limiter: heap for ${N.toLocaleString("en")} distinct keys\n`)
  printTable(
    ["store", "keys taken", "heap growth", "bytes/key"],
    rows.map((r) => [r.label, r.keys.toLocaleString("en"), `${(r.bytes / 1e6).toFixed(1)} MB`, r.perKey.toFixed(0)])
  )
  writeResults("rate-limiter: heap", rows)
}
