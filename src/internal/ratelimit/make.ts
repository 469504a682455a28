/**
 * `RateLimiter.make` and `RateLimiter.pacing`: the options decoded, the algorithm validated and
 * prepared on the store in context, the limiter built over it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "../../Errors.js"
import type { Options, RateLimiter } from "../../RateLimiter.js"
import { RateLimiterStore } from "../../RateLimiterStore.js"
import * as Timeout from "../../Timeout.js"
import { decodeOptions, Name, NonNegativeDuration } from "../options.js"
import * as Shadow from "../shadow.js"
import * as Algorithms from "./algorithms.js"
import { attachSource } from "./all.js"
import { makeLimiter } from "./limiter.js"

const decode = decodeOptions("RateLimiter", () =>
  Schema.Struct({
    name: Name,
    onExceeded: Schema.optionalWith(Schema.Literal("fail", "wait"), { default: () => "fail" as const }),
    maxWait: Schema.optional(NonNegativeDuration)
  }))

export const make = (options: Options): Effect.Effect<RateLimiter, InvalidOptionsError, RateLimiterStore> =>
  Effect.gen(function*() {
    const o = yield* decode(options)
    const def = yield* Algorithms.definition(options.algorithm)
    const store = yield* RateLimiterStore
    const run = yield* store.prepare(o.name, def)
    const clock = yield* Effect.clock
    const limiter = makeLimiter(o.name, options.algorithm, def, run, {
      clock,
      onExceeded: o.onExceeded,
      maxWaitMs: o.maxWait === undefined ? Infinity : Duration.toMillis(o.maxWait),
      deadline: options.deadline ?? Timeout.remaining
    })
    return attachSource(yield* Shadow.attach(limiter, Shadow.rateLimiter), { store, definition: def, clock })
  })

/** A `Schedule.fixed` at `rate` per second (or `limit` per `per`); throws for a rate that is not positive. */
export const pacing = (
  rate: number | { readonly limit: number; readonly per: Duration.DurationInput }
): Schedule.Schedule<number> => {
  const interval = typeof rate === "number"
    ? 1000 / rate
    : Duration.toMillis(Duration.decode(rate.per)) / rate.limit
  if (!(interval > 0 && Number.isFinite(interval))) {
    throw new InvalidOptionsError({
      module: "RateLimiter",
      option: "rate",
      value: rate,
      reason: "expected a positive rate"
    })
  }
  return Schedule.fixed(Duration.millis(interval))
}
