/**
 * Option decoding shared by every constructor: a Schema decode whose failure becomes an
 * `InvalidOptionsError` naming the offending option and the value that was given.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "../Errors.js"

/**
 * Reads a `DurationInput` strictly. `Duration.decode` turns negative and NaN inputs into zero,
 * which would hide a configuration mistake, so those are rejected here instead.
 */
export const parseDurationInput = (input: unknown): Either.Either<Duration.Duration, string> => {
  if (Duration.isDuration(input)) return Either.right(input)
  if (typeof input === "number") {
    if (Number.isNaN(input)) return Either.left("expected a number of milliseconds, got NaN")
    if (input < 0) return Either.left("expected a non-negative duration")
    return Either.right(Duration.millis(input))
  }
  if (typeof input === "bigint") {
    return input < 0n ? Either.left("expected a non-negative duration") : Either.right(Duration.nanos(input))
  }
  if (Array.isArray(input) && input.length === 2 && input.every((n) => typeof n === "number")) {
    if (input.some((n) => Number.isNaN(n) || n < 0)) return Either.left("expected a non-negative [seconds, nanos] pair")
    return Either.right(Duration.decode(input as unknown as readonly [number, number]))
  }
  if (typeof input === "string") {
    if (/^\s*-/.test(input)) return Either.left("expected a non-negative duration")
    const decoded = Duration.decodeUnknown(input)
    if (decoded._tag === "Some") return Either.right(decoded.value)
    return Either.left(`expected a duration like "100 millis" or "2 seconds"`)
  }
  return Either.left("expected a Duration, a number of milliseconds or a string like \"1 second\"")
}

const DurationInputFromSelf = Schema.declare(
  (u: unknown): u is Duration.DurationInput => Either.isRight(parseDurationInput(u)),
  {
    identifier: "DurationInput",
    message: (issue) => {
      const result = parseDurationInput(issue.actual)
      return Either.isLeft(result) ? result.left : "expected a DurationInput"
    }
  }
)

/**
 * A non-negative, finite duration given as any `DurationInput`, decoded to a `Duration`.
 */
export const NonNegativeDuration: Schema.Schema<Duration.Duration, Duration.DurationInput> = Schema.transform(
  DurationInputFromSelf,
  Schema.DurationFromSelf,
  { strict: true, decode: (input) => Duration.decode(input), encode: (d) => d }
).pipe(
  Schema.filter((d) => Duration.isFinite(d) || "expected a finite duration")
)

/**
 * A strictly positive, finite duration given as any `DurationInput`.
 */
export const PositiveDuration: Schema.Schema<Duration.Duration, Duration.DurationInput> = NonNegativeDuration.pipe(
  Schema.filter((d) =>
    Duration.toNanos(d).pipe((n) => n._tag === "Some" && n.value > 0n) || "expected a positive duration"
  )
)

/**
 * A whole number ≥ 1 (no NaN, no Infinity, no fractions).
 */
export const PositiveInt = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 1) || "expected a positive integer")
)

/**
 * A whole number ≥ 0.
 */
export const NonNegativeInt = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 0) || "expected a non-negative integer")
)

/**
 * A finite number > 0.
 */
export const PositiveNumber = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0) || "expected a positive finite number")
)

/**
 * A finite number ≥ 0.
 */
export const NonNegativeNumber = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n >= 0) || "expected a non-negative finite number")
)

/**
 * A probability or ratio in [0, 1].
 */
export const Probability = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n >= 0 && n <= 1) || "expected a number between 0 and 1")
)

/**
 * A non-empty name.
 */
export const Name = Schema.String.pipe(Schema.filter((s) => s.length > 0 || "expected a non-empty name"))

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let current: unknown = input
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return current
}

/**
 * Turns a parse failure into an `InvalidOptionsError` for the first offending option.
 */
export const toInvalidOptions = (
  module: string,
  input: unknown,
  error: ParseResult.ParseError
): InvalidOptionsError => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  const path = first?.path ?? []
  return new InvalidOptionsError({
    module,
    option: path.length === 0 ? "(options)" : path.map(String).join("."),
    value: valueAt(input, path),
    reason: first?.message ?? "invalid options"
  })
}

/** How `decodeOptions` treats the input. */
export interface DecodeSettings {
  /** an option the schema does not know is an error naming it (default: ignored) */
  readonly exact?: boolean
}

/**
 * Decodes `input` synchronously; `Either.left` carries an `InvalidOptionsError`. `schema` may be a
 * function returning it, called on the first decode.
 */
export const decodeOptionsEither = <A, I>(
  module: string,
  schema: Schema.Schema<A, I> | (() => Schema.Schema<A, I>),
  settings: DecodeSettings = {}
) => {
  // built and compiled on the first call: constructors make their decoders at module level, and
  // building every schema and parser there would cost each import of the package (Schema's code
  // is compiled by the first call of each of its functions) for options it may never decode
  let decode: ((input: unknown) => Either.Either<A, ParseResult.ParseError>) | undefined
  return (input: unknown): Either.Either<A, InvalidOptionsError> => {
    decode ??= Schema.decodeUnknownEither(
      Schema.isSchema(schema) ? schema as Schema.Schema<A, I> : (schema as () => Schema.Schema<A, I>)(),
      {
        errors: "first",
        onExcessProperty: settings.exact === true ? "error" : "ignore"
      }
    )
    return Either.mapLeft(decode(input), (error) => toInvalidOptions(module, input, error))
  }
}

/**
 * Decodes `input` as an Effect failing with `InvalidOptionsError`. `schema` may be a function
 * returning it, called on the first decode.
 */
export const decodeOptions = <A, I>(
  module: string,
  schema: Schema.Schema<A, I> | (() => Schema.Schema<A, I>),
  settings: DecodeSettings = {}
) => {
  const decode = decodeOptionsEither(module, schema, settings)
  return (input: unknown): Effect.Effect<A, InvalidOptionsError> => {
    const result = decode(input)
    return Either.isRight(result) ? Effect.succeed(result.right) : Effect.fail(result.left)
  }
}
