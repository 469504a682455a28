/**
 * What shadow mode costs a call: a breaker, a bulkhead and a rate limiter built without a switch,
 * with a switch that is off (one boolean read), and with it on while the policy admits (the call
 * is marked so a rejection could be told from the work's own error), against the bare effect.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as ResilienceMode from "../src/ResilienceMode.js"
import { effectCase, runSuite } from "./harness.js"

const work = Effect.succeed(1)
const scope = Effect.runSync(Scope.make())

const build = (shadow: "none" | "off" | "on") => {
  const policies = Effect.all({
    breaker: CircuitBreaker.make(CircuitBreaker.sre({ name: `bench-${shadow}` })),
    bulkhead: Bulkhead.make({ name: `bench-${shadow}`, maxConcurrent: 1_000_000 }),
    limiter: RateLimiter.make({
      name: `bench-${shadow}`,
      algorithm: RateLimiter.tokenBucket({ rate: 1e9, burst: 1_000_000_000 })
    })
  }).pipe(Scope.extend(scope), Effect.provide(RateLimiterStore.layerMemory()))
  return Effect.runSync(
    shadow === "none"
      ? policies
      : policies.pipe(
        Effect.provide(Layer.succeed(ResilienceMode.Shadow, Effect.runSync(ResilienceMode.makeShadow(shadow === "on"))))
      )
  )
}

const none = build("none")
const off = build("off")
const on = build("on")

await runSuite({
  name: "shadow",
  baseline: "bare Effect.succeed",
  cases: [
    effectCase("bare Effect.succeed", work),
    effectCase("breaker, no switch", none.breaker.protect(work)),
    effectCase("breaker, switch off", off.breaker.protect(work)),
    effectCase("breaker, switch on (admitted)", on.breaker.protect(work)),
    effectCase("bulkhead, no switch", none.bulkhead.protect(work)),
    effectCase("bulkhead, switch off", off.bulkhead.protect(work)),
    effectCase("bulkhead, switch on (admitted)", on.bulkhead.protect(work)),
    effectCase("rate limiter, no switch", none.limiter.protect("k")(work)),
    effectCase("rate limiter, switch off", off.limiter.protect("k")(work)),
    effectCase("rate limiter, switch on (admitted)", on.limiter.protect("k")(work))
  ],
  note: "Off, a shadowed policy reads one boolean and forwards; on, an admitted call adds one closure\n" +
    "(the mark that the work started) and a catch."
})
