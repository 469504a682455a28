/**
 * The floor every other benchmark is read against: what the bare effect costs, and what a
 * promise round trip through the runtime costs.
 */
import * as Effect from "effect/Effect"
import { effectCase, promiseCase, runSuite } from "./harness.js"

const resolved = () => Promise.resolve(1)

await runSuite({
  name: "floor",
  baseline: "Effect.succeed",
  cases: [
    effectCase("Effect.succeed", Effect.succeed(1)),
    effectCase("Effect.sync", Effect.sync(() => 1)),
    effectCase(
      "Effect.succeed + map + flatMap",
      Effect.succeed(1).pipe(Effect.map((n) => n + 1), Effect.flatMap(Effect.succeed))
    ),
    effectCase("Effect.promise(resolved)", Effect.promise(resolved)),
    effectCase("Effect.tryPromise(resolved)", Effect.tryPromise(resolved)),
    promiseCase("await Promise.resolve (no Effect)", resolved),
    promiseCase("Effect.runPromise(Effect.succeed) per call", () => Effect.runPromise(Effect.succeed(1)))
  ],
  note: "Effect cases run n times inside one fiber; promise cases await n times in a plain loop."
})
