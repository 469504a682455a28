/**
 * Many distinct names through bounded registries: memory and exported series stay bounded however
 * many names pass through, and every instance's series goes with it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Metrics from "../src/Metrics.js"

setFlagsFromString("--expose-gc")
const collect = runInNewContext("gc") as () => void

/** Heap in use after full collections. */
const heapAfterGc = Effect.sync(() => {
  for (let i = 0; i < 3; i++) collect()
  return process.memoryUsage().heapUsed
})

const exportedNames = Effect.map(Metrics.snapshot, (samples) => new Set(samples.map((s) => s.labels.name)))

const NAMES = 100_000
const MAX_KEYS = 1000
// 1,000 live breakers or bulkheads take well under a megabyte; a registry keeping every name
// would take tens of megabytes at the very least (and used to take gigabytes)
const HEAP_BOUND = 24 * 1024 * 1024

describe("registries with maxKeys under 100,000 distinct names", () => {
  it.scoped(
    "CircuitBreaker.Registry: bounded heap, at most maxKeys names and maxKeys + overflow series",
    () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({
          policy: (name) => CircuitBreaker.sre({ name }),
          maxKeys: MAX_KEYS
        })
        // warm up once so the baseline includes the code paths' own allocations
        for (let i = 0; i < MAX_KEYS; i++) yield* registry.protect(`warm-${i}`)(Effect.void)
        const before = yield* heapAfterGc
        let maxSeries = 0
        for (let i = 0; i < NAMES; i++) {
          yield* registry.protect(`tenant-${i}`)(Effect.void)
          if (i % 10_000 === 9_999) maxSeries = Math.max(maxSeries, (yield* exportedNames).size)
        }
        const after = yield* heapAfterGc
        expect(after - before).toBeLessThan(HEAP_BOUND)
        expect((yield* registry.names).length).toBe(MAX_KEYS)
        const names = yield* exportedNames
        expect(names.size).toBeLessThanOrEqual(MAX_KEYS + 1)
        expect(maxSeries).toBeLessThanOrEqual(MAX_KEYS + 1)
        // the names exported are those the registry holds (its least recently used ones went)
        expect(names.has(`tenant-${NAMES - 1}`)).toBe(true)
        expect(names.has("tenant-0")).toBe(false)
        // and once idle they all go, series included
        yield* TestClock.adjust("1 hour")
        expect(yield* registry.names).toEqual([])
        expect([...(yield* exportedNames)]).toEqual([])
      }).pipe(Metrics.withInstanceRegistry()),
    120_000
  )

  it.scoped(
    "Bulkhead.Registry with create: bounded heap, at most maxKeys names and maxKeys + overflow series",
    () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry({
          create: (name) => ({ name, maxConcurrent: 4 }),
          maxKeys: MAX_KEYS,
          idleTimeToLive: "10 minutes"
        })
        for (let i = 0; i < MAX_KEYS; i++) yield* registry.protect(`warm-${i}`, Effect.void)
        const before = yield* heapAfterGc
        for (let i = 0; i < NAMES; i++) yield* registry.protect(`tenant-${i}`, Effect.void)
        const after = yield* heapAfterGc
        expect(after - before).toBeLessThan(HEAP_BOUND)
        expect((yield* registry.names).length).toBe(MAX_KEYS)
        expect((yield* exportedNames).size).toBeLessThanOrEqual(MAX_KEYS + 1)
        yield* TestClock.adjust("1 hour")
        expect(yield* registry.names).toEqual([])
        expect([...(yield* exportedNames)]).toEqual([])
      }).pipe(Metrics.withInstanceRegistry()),
    120_000
  )
})
