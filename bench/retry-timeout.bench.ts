/**
 * Timeouts, retries and the full composition, against Effect's own combinators and cockatiel.
 *
 * - timeout: `Timeout.within` vs `Effect.timeout` around sync and async work, and around the same
 *   promise as cockatiel's `timeout` (called through `Effect.tryPromise`);
 * - retry on the success path: `Retry.retry`, `Effect.retry` with a `Retry.policy`, `Effect.retry`
 *   with Effect's own schedule, cockatiel's `retry`;
 * - full composition around the same promise: retry(breaker(timeout(bulkhead(tryPromise)))) vs
 *   cockatiel's `wrap(retry, circuitBreaker, timeout, bulkhead)` in `Effect.tryPromise`.
 */
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleAll,
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Backoff from "../src/Backoff.js"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"
import { effectCase, runSuite, scopedEffectCase } from "./harness.js"

const peers = ["cockatiel"]

const work = Effect.succeed(1)
/** work that suspends once (resumes on a microtask), so a timer must really be armed */
const asyncWork = Effect.async<number>((resume) => {
  queueMicrotask(() => resume(Effect.succeed(1)))
})
const resolved = () => Promise.resolve(1)
const viaPromise = Effect.tryPromise(resolved)
const second = Duration.seconds(1)

// --- timeout -------------------------------------------------------------------------------
const cockatielTimeoutPolicy = cockatielTimeout(1000, TimeoutStrategy.Aggressive)

await runSuite({
  name: "timeout",
  baseline: "bare Effect.succeed",
  cases: [
    effectCase("bare Effect.succeed", work),
    effectCase("Timeout.within(1 s)", Timeout.within(work, second)),
    effectCase("Timeout.within inside a deadline", Timeout.within(work, second).pipe(Timeout.deadline("30 seconds"))),
    effectCase("Effect.timeout(1 s)", Effect.timeout(work, second)),
    effectCase("async work, bare", asyncWork),
    effectCase("async work, Timeout.within(1 s)", Timeout.within(asyncWork, second)),
    effectCase("async work, Effect.timeout(1 s)", Effect.timeout(asyncWork, second)),
    effectCase("bare Effect.tryPromise", viaPromise),
    effectCase("Timeout.within(1 s) around tryPromise", Timeout.within(viaPromise, second)),
    effectCase(
      "cockatiel timeout in tryPromise",
      Effect.tryPromise(() => cockatielTimeoutPolicy.execute(resolved))
    )
  ],
  peers,
  note: "Effect.timeout races two forked fibers (the work and a sleep); cockatiel's timeout runs the same promise\n" +
    "as the tryPromise rows, inside Effect.tryPromise."
})

// --- retry, success path ------------------------------------------------------------------------
const backoff = Backoff.exponential({ base: "100 millis" }).pipe(Backoff.upTo(3))
const policy = Retry.policy({ schedule: backoff })
const effectSchedule = Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(2)))
const cockatielRetryPolicy = cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() })

await runSuite({
  name: "retry-success",
  baseline: "bare Effect.succeed",
  cases: [
    effectCase("bare Effect.succeed", work),
    effectCase("Retry.retry(policy)", Retry.retry(work, { schedule: backoff })),
    effectCase("Effect.retry(Retry.policy)", Effect.retry(work, policy)),
    effectCase("Effect.retry(Schedule.exponential ∩ recurs)", Effect.retry(work, effectSchedule)),
    effectCase("bare Effect.tryPromise", viaPromise),
    effectCase("Retry.retry(policy) around tryPromise", Retry.retry(viaPromise, { schedule: backoff })),
    effectCase("cockatiel retry in tryPromise", Effect.tryPromise(() => cockatielRetryPolicy.execute(resolved)))
  ],
  peers,
  note: "Retry.retry only builds the schedule driver after a first failure; Effect.retry builds it on every call."
})

// --- full composition ---------------------------------------------------------------------------
const semaphore = Effect.runSync(Effect.makeSemaphore(10))
const composed = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "bench", threshold: 5 }))
  const bulkhead = yield* Bulkhead.make({ name: "bench", maxConcurrent: 10 })
  return viaPromise.pipe(bulkhead.protect, Timeout.within(second), breaker.protect, Retry.retry({ schedule: backoff }))
})
const effectNative = Effect.map(
  CircuitBreaker.make(CircuitBreaker.consecutive({ name: "bench-native", threshold: 5 })),
  (breaker) =>
    viaPromise.pipe(
      semaphore.withPermits(1),
      Effect.timeout(second),
      breaker.protect,
      Effect.retry(effectSchedule)
    )
)
const cockatielWrapped = wrap(
  cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() }),
  cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  cockatielTimeout(1000, TimeoutStrategy.Aggressive),
  cockatielBulkhead(10, 0)
)

await runSuite({
  name: "retry-breaker-timeout-bulkhead",
  baseline: "bare Effect.tryPromise",
  cases: [
    effectCase("bare Effect.tryPromise", viaPromise),
    scopedEffectCase("effect-resilience retry(breaker(timeout(bulkhead(tryPromise))))", composed),
    scopedEffectCase("Effect.retry(breaker(Effect.timeout(Semaphore(tryPromise))))", effectNative),
    effectCase(
      "cockatiel wrap(retry, breaker, timeout, bulkhead) in tryPromise",
      Effect.tryPromise(() => cockatielWrapped.execute(resolved))
    )
  ],
  peers,
  note:
    "The same promise on every row. breaker: CircuitBreaker.consecutive (threshold 5) vs cockatiel ConsecutiveBreaker(5);\n" +
    "bulkhead: Bulkhead(10) vs cockatiel bulkhead(10); the Effect-native row uses Effect.timeout, Effect.Semaphore(10)\n" +
    "and Effect.retry."
})
