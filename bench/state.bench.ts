/**
 * The state model: what one state step costs held in a closure (a synchronous block, how the
 * primitives keep their hot state), in a `Ref`, a `SynchronizedRef` and an STM `TRef`; then
 * `RateLimiter.all` of two limits against two sequential takes, and a weighted bulkhead call
 * against a plain one.
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as STM from "effect/STM"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as TRef from "effect/TRef"
import * as Bulkhead from "../src/Bulkhead.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { effectCase, runSuite, scopedEffectCase } from "./harness.js"

// one step of a counter with a limit: read, decide, write — the shape of a permit or a token take
const LIMIT = 1e15
let held = 0
const synchronousStep = Effect.sync(() => {
  if (held >= LIMIT) return false
  held++
  return true
})
const step = (n: number): readonly [boolean, number] => n >= LIMIT ? [false, n] : [true, n + 1]

await runSuite({
  name: "state: one step of a counter with a limit",
  baseline: "synchronous step (closure-held)",
  cases: [
    effectCase("synchronous step (closure-held)", synchronousStep),
    effectCase("Ref.modify", Effect.runSync(Effect.map(Ref.make(0), (ref) => Ref.modify(ref, step)))),
    effectCase(
      "SynchronizedRef.modifyEffect",
      Effect.runSync(
        Effect.map(SynchronizedRef.make(0), (ref) => SynchronizedRef.modifyEffect(ref, (n) => Effect.succeed(step(n))))
      )
    ),
    effectCase(
      "STM.commit(TRef.modify)",
      Effect.runSync(Effect.map(TRef.make(0).pipe(STM.commit), (ref) => STM.commit(TRef.modify(ref, step))))
    )
  ],
  note: "One fiber in a loop. The primitives' hot state is closure-held; Ref and STM are what it would cost otherwise."
})

const KEYS = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
const roomy = RateLimiter.gcra({ limit: 1e6, period: "1 second", burst: 1e9 })
const hourly = RateLimiter.fixedWindow({ limit: 1e9, window: "1 hour" })

const limiters = Effect.gen(function*() {
  const second = yield* RateLimiter.make({ name: "second", algorithm: roomy })
  const hour = yield* RateLimiter.make({ name: "hour", algorithm: hourly })
  return { second, hour, both: yield* RateLimiter.all([second, hour]) }
}).pipe(Effect.provide(RateLimiterStore.layerMemory({ maxKeys: 2000 })))

const roundRobin = <A>(f: (key: string) => Effect.Effect<A, unknown>) => {
  let i = 0
  return Effect.suspend(() => f(KEYS[i++ % KEYS.length]))
}

await runSuite({
  name: "state: two limits per request (memory, 1,000 keys)",
  baseline: "two sequential takes",
  cases: [
    scopedEffectCase("one take", Effect.map(limiters, ({ second }) => roundRobin((k) => second.take(k)))),
    scopedEffectCase(
      "two sequential takes",
      Effect.map(limiters, ({ hour, second }) => roundRobin((k) => Effect.zipRight(second.take(k), hour.take(k))))
    ),
    scopedEffectCase(
      "RateLimiter.all of two limits",
      Effect.map(limiters, ({ both }) => roundRobin((k) => both.take(k)))
    )
  ],
  note: "Two sequential takes are not all-or-nothing: a refusal by the second still spends the first."
})

const work = Effect.succeed(1)

await runSuite({
  name: "state: weighted bulkhead (free permits)",
  baseline: "Bulkhead.protect",
  cases: [
    scopedEffectCase(
      "Bulkhead.protect",
      Effect.map(Bulkhead.make({ name: "plain", maxConcurrent: 10 }), (b) => b.protect(work))
    ),
    scopedEffectCase(
      "Bulkhead.protectWeighted(3)",
      Effect.map(Bulkhead.make({ name: "weighted", maxConcurrent: 10 }), (b) => {
        const protect = b.protectWeighted(3)
        return protect(work)
      })
    )
  ],
  note: "One fiber in a loop, so the permits are always free: the happy-path overhead of a weight."
})
