/**
 * Circuit breakers: the happy path (Closed, success) of every policy against the bare effect, and
 * against cockatiel's and opossum's breakers wrapped in `Effect.tryPromise` (how an Effect user
 * would otherwise use them); then the rejected path when open.
 */
import { circuitBreaker, ConsecutiveBreaker, handleAll, SamplingBreaker } from "cockatiel"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import OpossumBreaker from "opossum"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { effectCase, runSuite, scopedEffectCase } from "./harness.js"
import { enteredSteps } from "./steps.js"

const resolved = () => Promise.resolve(1)
const succeed = Effect.succeed(1)
const sync = Effect.sync(() => 1)
const viaPromise = Effect.tryPromise(resolved)

const policies: ReadonlyArray<readonly [string, CircuitBreaker.Policy]> = [
  ["sre", CircuitBreaker.sre({ name: "bench-sre" })],
  ["consecutive", CircuitBreaker.consecutive({ name: "bench-consecutive" })],
  ["countWindow", CircuitBreaker.countWindow({ name: "bench-count" })],
  ["timeWindow", CircuitBreaker.timeWindow({ name: "bench-time" })],
  ["custom", CircuitBreaker.custom({ name: "bench-custom" })]
]

const breakerCase = (label: string, p: CircuitBreaker.Policy, effect: Effect.Effect<number, unknown>) =>
  scopedEffectCase(label, Effect.map(CircuitBreaker.make(p), (b) => b.protect(effect)))

/** The breaker around the promise itself (`tryPromise`): decided as the promise starts, recorded as the caller resumes. */
const promiseBreakerCase = (label: string, p: CircuitBreaker.Policy) =>
  scopedEffectCase(label, Effect.map(CircuitBreaker.make(p), (b) => b.tryPromise(resolved)))

const cockatielConsecutive = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
const cockatielSampling = circuitBreaker(handleAll, {
  halfOpenAfter: 10_000,
  breaker: new SamplingBreaker({ threshold: 0.5, duration: 10_000, minimumRps: 5 })
})

const opossumCase = (label: string, open: boolean) => ({
  name: label,
  make: async () => {
    const breaker = new OpossumBreaker(resolved, { timeout: false, resetTimeout: 60_000 })
    if (open) breaker.open()
    const effect: Effect.Effect<unknown, unknown> = open
      ? Effect.either(Effect.tryPromise(() => breaker.fire()))
      : Effect.tryPromise(() => breaker.fire())
    const loop = (n: number) => {
      let i = 0
      return Effect.whileLoop({ while: () => i++ < n, body: () => effect, step: () => undefined })
    }
    return {
      run: (n: number) => Effect.runPromise(loop(n)),
      close: async () => breaker.shutdown()
    }
  }
})

await runSuite({
  name: "circuit-breaker happy path (sync effect)",
  baseline: "bare Effect.succeed",
  cases: [
    effectCase("bare Effect.succeed", succeed),
    ...policies.map(([label, p]) => breakerCase(`${label}.protect(succeed)`, p, succeed)),
    effectCase("bare Effect.sync", sync),
    breakerCase("sre.protect(sync)", policies[0][1], sync),
    scopedEffectCase(
      "sre allow + permit.success (two-step)",
      Effect.map(
        CircuitBreaker.make(CircuitBreaker.sre({ name: "bench-sre-allow" })),
        (b) => Effect.flatMap(b.allow, (permit) => permit.success)
      )
    )
  ],
  note: "Closed breaker, every call succeeds. Overhead = time/op − bare."
})

await runSuite({
  name: "circuit-breaker happy path (promise)",
  baseline: "bare Effect.tryPromise",
  cases: [
    effectCase("bare Effect.tryPromise", viaPromise),
    breakerCase("sre.protect(tryPromise)", policies[0][1], viaPromise),
    breakerCase("consecutive.protect(tryPromise)", policies[1][1], viaPromise),
    promiseBreakerCase("sre.tryPromise(resolved)", policies[0][1]),
    promiseBreakerCase("consecutive.tryPromise(resolved)", policies[1][1]),
    effectCase("floor: withFiberRuntime entering a matchCauseEffect, no breaker", enteredSteps(viaPromise)),
    effectCase("cockatiel Consecutive in tryPromise", Effect.tryPromise(() => cockatielConsecutive.execute(resolved))),
    effectCase("cockatiel Sampling in tryPromise", Effect.tryPromise(() => cockatielSampling.execute(resolved))),
    opossumCase("opossum in tryPromise", false)
  ],
  note: "The same promise on every row; peers run it inside their breaker, called through Effect.tryPromise.\n" +
    "tryPromise rows decide as the promise starts and record its outcome in the one step that resumes the caller;\n" +
    "protect wraps any effect, which costs two runtime steps: the floor row runs them with nothing in them.",
  peers: ["cockatiel", "opossum"]
})

// The protected effect keeps failing, so the adaptive breaker's once-a-second probe fails too and
// the breaker stays open while timing.
const boom = Effect.fail("boom")
const openBreaker = (p: CircuitBreaker.Policy) =>
  Effect.gen(function*() {
    const b = yield* CircuitBreaker.make(p)
    for (let i = 0; i < 200; i++) yield* Effect.either(b.protect(boom))
    const state = yield* b.state
    if (state !== "Open") throw new Error(`breaker did not open (${state})`)
    return Effect.either(b.protect(boom))
  }).pipe(Logger.withMinimumLogLevel(LogLevel.None))

const cockatielOpen = circuitBreaker(handleAll, { halfOpenAfter: 600_000, breaker: new ConsecutiveBreaker(5) })
for (let i = 0; i < 10; i++) await cockatielOpen.execute(() => Promise.reject(new Error("boom"))).catch(() => {})

await runSuite({
  name: "circuit-breaker rejected path (open)",
  baseline: "bare Effect.either(Effect.fail)",
  cases: [
    effectCase("bare Effect.either(Effect.fail)", Effect.either(Effect.fail("x"))),
    scopedEffectCase(
      "sre open (a failing probe every 1 s)",
      openBreaker(CircuitBreaker.sre({ name: "bench-sre-open" }))
    ),
    scopedEffectCase(
      "consecutive open",
      openBreaker(CircuitBreaker.consecutive({ name: "bench-consecutive-open", openFor: "10 minutes" }))
    ),
    effectCase(
      "cockatiel Consecutive open in tryPromise",
      Effect.either(Effect.tryPromise(() => cockatielOpen.execute(resolved)))
    ),
    opossumCase("opossum open in tryPromise", true)
  ],
  note: "Every call is rejected with the library's own error value.",
  peers: ["cockatiel", "opossum"]
})
