/**
 * Bulkhead.protect against the bare effect, Effect's own semaphore and cockatiel's bulkhead; then
 * MapReduce.mapReduce against Effect.forEach with the same concurrency on 100,000 items.
 */
import { bulkhead as cockatielBulkhead } from "cockatiel"
import * as Effect from "effect/Effect"
import * as Bulkhead from "../src/Bulkhead.js"
import * as MapReduce from "../src/MapReduce.js"
import { effectCase, runSuite, scopedEffectCase } from "./harness.js"
import { enteredSteps } from "./steps.js"

const work = Effect.succeed(1)
const resolved = () => Promise.resolve(1)
const viaPromise = Effect.tryPromise(resolved)

await runSuite({
  name: "bulkhead",
  baseline: "bare effect",
  cases: [
    effectCase("bare effect", work),
    scopedEffectCase(
      "Bulkhead.protect (free permit)",
      Effect.map(Bulkhead.make({ name: "bench", maxConcurrent: 10 }), (b) => b.protect(work))
    ),
    scopedEffectCase(
      "Bulkhead.tryProtect (free permit)",
      Effect.map(Bulkhead.make({ name: "bench-try", maxConcurrent: 10 }), (b) => b.tryProtect(work))
    ),
    effectCase(
      "Effect.makeSemaphore(10).withPermits(1)",
      Effect.runSync(Effect.map(Effect.makeSemaphore(10), (semaphore) => semaphore.withPermits(1)(work)))
    )
  ],
  note: "One fiber calls in a loop, so a permit is always free: this is the happy-path overhead."
})

await runSuite({
  name: "bulkhead around async work",
  baseline: "bare Effect.tryPromise",
  cases: [
    effectCase("bare Effect.tryPromise", viaPromise),
    scopedEffectCase(
      "Bulkhead.protect(tryPromise)",
      Effect.map(Bulkhead.make({ name: "bench-async", maxConcurrent: 10 }), (b) => b.protect(viaPromise))
    ),
    scopedEffectCase(
      "bulkhead.tryPromise(resolved)",
      Effect.map(Bulkhead.make({ name: "bench-promise", maxConcurrent: 10 }), (b) => b.tryPromise(resolved))
    ),
    effectCase(
      "Effect.makeSemaphore(10).withPermits(1)(tryPromise)",
      Effect.runSync(Effect.map(Effect.makeSemaphore(10), (semaphore) => semaphore.withPermits(1)(viaPromise)))
    ),
    effectCase("floor: withFiberRuntime entering a matchCauseEffect, no bulkhead", enteredSteps(viaPromise)),
    effectCase(
      "cockatiel bulkhead(10) in tryPromise",
      (() => {
        const policy = cockatielBulkhead(10, 0)
        return Effect.tryPromise(() => policy.execute(resolved))
      })()
    )
  ],
  note: "The same promise on both sides: cockatiel runs it inside its bulkhead, called through Effect.tryPromise.\n" +
    "bulkhead.tryPromise takes the permit in the step that starts the promise and gives it back as the promise settles;\n" +
    "Bulkhead.protect wraps any effect, which costs two runtime steps: the floor row runs them with nothing in them.",
  peers: ["cockatiel"]
})

const callers = Array.from({ length: 100 }, (_, i) => i)
const contended = <E>(call: (effect: Effect.Effect<void>) => Effect.Effect<unknown, E>) =>
  Effect.forEach(callers, () => call(Effect.yieldNow()), { concurrency: "unbounded", discard: true })

await runSuite({
  name: "bulkhead contention",
  baseline: "100 fibers, bare",
  cases: [
    effectCase("100 fibers, bare", contended((effect) => effect)),
    scopedEffectCase(
      "100 fibers, Bulkhead.protect (10 permits, queue 100)",
      Effect.map(
        Bulkhead.make({ name: "bench-contended", maxConcurrent: 10, maxQueue: 100 }),
        (b) => contended(b.protect)
      )
    ),
    effectCase(
      "100 fibers, Effect.makeSemaphore(10).withPermits(1)",
      Effect.runSync(Effect.map(Effect.makeSemaphore(10), (semaphore) => contended(semaphore.withPermits(1))))
    ),
    effectCase(
      "100 fibers, cockatiel bulkhead(10, 100) via Effect.tryPromise",
      (() => {
        const policy = cockatielBulkhead(10, 100)
        return contended(() => Effect.tryPromise(() => policy.execute(() => Promise.resolve(1))))
      })()
    )
  ],
  warmupIterations: 50,
  peers: ["cockatiel"],
  note: "One op = 100 concurrent callers through 10 permits: 90 of them queue and are handed a permit."
})

const items = Array.from({ length: 100_000 }, (_, i) => i)
const square = (n: number) => Effect.succeed(n * n)

await runSuite({
  name: "mapReduce 100k",
  baseline: "Effect.forEach({ concurrency: 16 }) + sum",
  rounds: Number(process.env.BENCH_ROUNDS ?? 5),
  warmupIterations: 3,
  cases: [
    effectCase(
      "Effect.forEach({ concurrency: 16 }) + sum",
      Effect.map(Effect.forEach(items, square, { concurrency: 16 }), (xs) => xs.reduce((a, b) => a + b, 0))
    ),
    effectCase(
      "MapReduce.mapReduce({ workers: 16 })",
      MapReduce.mapReduce({ source: items, map: square, initial: 0, reduce: (acc, n) => acc + n, workers: 16 })
    ),
    effectCase(
      "MapReduce.forEach({ workers: 16 })",
      MapReduce.forEach({ source: items, f: (n: number) => Effect.asVoid(square(n)), workers: 16 })
    ),
    effectCase(
      "Effect.forEach({ concurrency: 16, discard: true })",
      Effect.forEach(items, square, { concurrency: 16, discard: true })
    )
  ],
  note: "Time per whole run over 100,000 items (divide by 1e5 for per-item cost)."
})
