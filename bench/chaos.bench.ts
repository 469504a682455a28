/**
 * What chaos injection costs a call it does not inject: a strategy on an injector that is off,
 * on at rate 0, on outside its window, and on at a small rate (one `Random` draw per call),
 * against the bare effect. The injected path is measured too, with an outcome that replaces the
 * call (no sleep), so the numbers are the decision's cost and not a delay's.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Chaos from "../src/Chaos.js"
import { effectCase, runSuite } from "./harness.js"

const work = Effect.succeed(1)
const replacement = Effect.succeed(2)
const injector = (options: Omit<Chaos.Options, "name">) => Effect.runSync(Chaos.make({ name: "bench", ...options }))

const off = injector({ rate: 1 })
const rateZero = injector({ enabled: true, rate: 0 })
const outsideWindow = injector({
  enabled: true,
  rate: 1,
  window: { schedule: Schedule.spaced("1 day"), duration: "1 minute" }
})
const smallRate = injector({ enabled: true, rate: 0.001 })
const always = injector({ enabled: true, rate: 1 })

await runSuite({
  name: "chaos",
  baseline: "bare Effect.succeed",
  cases: [
    effectCase("bare Effect.succeed", work),
    effectCase("fault, injector off", work.pipe(Chaos.fault(off, () => "boom"))),
    effectCase("fault, on at rate 0", work.pipe(Chaos.fault(rateZero, () => "boom"))),
    effectCase("fault, on, outside its window", work.pipe(Chaos.fault(outsideWindow, () => "boom"))),
    effectCase("outcome, on at rate 0.001 (draws)", work.pipe(Chaos.outcome(smallRate, replacement))),
    effectCase("outcome, on at rate 1 (injects)", work.pipe(Chaos.outcome(always, replacement))),
    effectCase(
      "three strategies, injector off",
      work.pipe(Chaos.latency(off, "1 second"), Chaos.fault(off, () => "boom"), Chaos.outcome(off, replacement))
    )
  ],
  note: "Off, a strategy is one synchronous check on the calling fiber and the effect runs untouched;\n" +
    "a rate strictly between 0 and 1 adds one draw from the fiber's Random; a window adds one Clock read."
})
