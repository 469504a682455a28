/**
 * The algorithms' options, validated into the `Definition` the stores run.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "../../Errors.js"
import type { Algorithm } from "../../RateLimiter.js"
import { decodeOptions, NonNegativeDuration, PositiveDuration, PositiveInt, PositiveNumber } from "../options.js"
import type { Definition } from "./core.js"
import { intervalUs, MAX_SPAN, US } from "./core.js"
import * as FixedWindow from "./fixedWindow.js"
import * as Gcra from "./gcra.js"
import * as SlidingCounter from "./slidingCounter.js"
import * as SlidingLog from "./slidingLog.js"
import * as TokenBucket from "./tokenBucket.js"

const schemas = {
  TokenBucket: Schema.Struct({ rate: PositiveNumber, burst: PositiveInt }),
  FixedWindow: Schema.Struct({
    limit: PositiveInt,
    window: PositiveDuration,
    align: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    offset: Schema.optionalWith(NonNegativeDuration, { default: () => Duration.zero })
  }),
  SlidingLog: Schema.Struct({ limit: PositiveInt, window: PositiveDuration }),
  SlidingCounter: Schema.Struct({ limit: PositiveInt, window: PositiveDuration }),
  Gcra: Schema.Struct({ limit: PositiveInt, period: PositiveDuration, burst: Schema.optional(PositiveInt) })
} as const

const micros = (d: Duration.Duration): number => intervalUs(Duration.toMillis(d))

const decode = <A, I>(schema: Schema.Schema<A, I>, algorithm: Algorithm) =>
  Effect.map(
    decodeOptions("RateLimiter", Schema.Struct({ algorithm: schema }))({ algorithm: algorithm.options }),
    (o) => o.algorithm
  )

/**
 * Every time span an algorithm covers stays below `MAX_SPAN` µs (about 31 years), so that its
 * integer arithmetic stays exact; beyond it the options are refused rather than rounded.
 */
const within = (algorithm: Algorithm, fits: boolean, reason: string) => (def: Definition) =>
  fits ? Effect.succeed(def) : Effect.fail(
    new InvalidOptionsError({ module: "RateLimiter", option: "algorithm", value: algorithm.options, reason })
  )

const YEARS = `${Math.floor(MAX_SPAN / US / 1000 / 86400 / 365.25)} years`

/** Validates an algorithm's options into the definition the stores run. */
export const definition = (algorithm: Algorithm): Effect.Effect<Definition, InvalidOptionsError> => {
  switch (algorithm?._tag) {
    case "TokenBucket":
      return Effect.flatMap(
        decode(schemas.TokenBucket, algorithm),
        (o) =>
          within(algorithm, intervalUs(1000 / o.rate) * o.burst <= MAX_SPAN, `burst / rate must stay under ${YEARS}`)(
            TokenBucket.make({ rate: o.rate, burst: o.burst })
          )
      )
    case "FixedWindow":
      return Effect.flatMap(decode(schemas.FixedWindow, algorithm), (o) => {
        const window = micros(o.window)
        const offset = Math.round(Duration.toMillis(o.offset) * US) % window
        return within(algorithm, window <= MAX_SPAN, `window must stay under ${YEARS}`)(
          FixedWindow.make({ limit: o.limit, window, align: o.align, offset })
        )
      })
    case "SlidingLog":
      return Effect.flatMap(decode(schemas.SlidingLog, algorithm), (o) => {
        const window = micros(o.window)
        return within(algorithm, window <= MAX_SPAN, `window must stay under ${YEARS}`)(
          SlidingLog.make({ limit: o.limit, window })
        )
      })
    case "SlidingCounter":
      return Effect.flatMap(decode(schemas.SlidingCounter, algorithm), (o) => {
        const window = micros(o.window)
        // the admission test multiplies limit by window (µs): keep the product exact
        return within(
          algorithm,
          o.limit * window <= Number.MAX_SAFE_INTEGER,
          "limit × window (in µs) must stay below 2^53"
        )(
          SlidingCounter.make({ limit: o.limit, window })
        )
      })
    case "Gcra":
      return Effect.flatMap(decode(schemas.Gcra, algorithm), (o) => {
        const burst = o.burst ?? o.limit
        const span = intervalUs(Duration.toMillis(o.period) / o.limit) * burst
        return within(algorithm, span <= MAX_SPAN, `period × burst / limit must stay under ${YEARS}`)(
          Gcra.make({ limit: o.limit, periodMs: Duration.toMillis(o.period), burst })
        )
      })
    default:
      return Effect.fail(
        new InvalidOptionsError({
          module: "RateLimiter",
          option: "algorithm",
          value: algorithm?._tag,
          reason: "expected one of tokenBucket, fixedWindow, slidingLog, slidingCounter, gcra"
        })
      )
  }
}
