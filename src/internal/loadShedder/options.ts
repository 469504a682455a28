/**
 * `LoadShedder` options: the defaults, the schema and the decoding into the algorithm's
 * parameters and the signal to read.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "../../Errors.js"
import type { Options } from "../../LoadShedder.js"
import { decodeOptions, Name, PositiveDuration, PositiveInt } from "../options.js"
import type * as Shedder from "../shedder.js"
import * as Signal from "../shedderSignal.js"

/** The defaults `LoadShedder.defaults` publishes. */
export const defaults: {
  readonly signal: Signal.Choice
  readonly window: Duration.Duration
  readonly buckets: 50
} = {
  signal: { _tag: "EventLoopUtilization" },
  window: Duration.seconds(5),
  buckets: 50
}

/** How often the `shedding_stat` line is logged. */
export const statInterval = Duration.minutes(1)

export interface Decoded {
  readonly name: string
  readonly kind: Signal.Kind
  readonly params: Shedder.Params
}

const OptionsSchema = () =>
  Schema.Struct({
    name: Name,
    signal: Schema.optional(Schema.Unknown),
    cpuThreshold: Schema.optional(Schema.Unknown),
    window: Schema.optional(PositiveDuration),
    buckets: Schema.optional(PositiveInt)
  })

const decodeSchema = decodeOptions("LoadShedder", OptionsSchema)

export const invalid = (option: string, value: unknown, reason: string) =>
  new InvalidOptionsError({ module: "LoadShedder", option, value, reason })

const decodeSignal = (options: Options): Effect.Effect<Signal.Decoded, InvalidOptionsError> => {
  if (options.cpuThreshold === undefined) return Signal.decode(options.signal ?? defaults.signal)
  if (options.signal !== undefined) {
    return Effect.fail(invalid("cpuThreshold", options.cpuThreshold, "cpuThreshold and signal cannot both be set"))
  }
  return Effect.mapError(
    Signal.decode({ _tag: "Cpu", threshold: options.cpuThreshold }),
    (e) => invalid("cpuThreshold", options.cpuThreshold, e.reason)
  )
}

export const decode = (options: Options): Effect.Effect<Decoded, InvalidOptionsError> =>
  Effect.gen(function*() {
    const decoded = yield* decodeSchema(options)
    const signal = yield* decodeSignal(options)
    const window = Duration.toMillis(decoded.window ?? defaults.window)
    const buckets = decoded.buckets ?? defaults.buckets
    const bucketMillis = window / buckets
    if (bucketMillis < 1) {
      return yield* invalid("window", options.window, `window is shorter than ${buckets} buckets of 1 ms`)
    }
    return { name: decoded.name, kind: signal.kind, params: { ...signal.params, buckets, bucketMillis } }
  })
