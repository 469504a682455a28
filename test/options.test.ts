import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, Schema } from "effect"
import { InvalidOptionsError } from "../src/Errors.js"
import * as Options from "../src/internal/options.js"

const Sample = Schema.Struct({
  name: Options.Name,
  concurrency: Options.PositiveInt,
  window: Options.PositiveDuration,
  delay: Schema.optionalWith(Options.NonNegativeDuration, { default: () => Duration.zero }),
  ratio: Options.Probability,
  nested: Schema.optional(Schema.Struct({ rate: Options.PositiveNumber }))
})
const decode = Options.decodeOptionsEither("Sample", Sample)
const valid = { name: "x", concurrency: 2, window: "1 second", ratio: 0.5 }

const failure = (input: unknown): InvalidOptionsError => {
  const result = decode(input)
  if (Either.isRight(result)) throw new Error(`expected a failure for ${JSON.stringify(input)}`)
  return result.left
}

describe("option decoding", () => {
  it("decodes valid options and fills defaults", () => {
    const result = decode(valid)
    expect(Either.isRight(result)).toBe(true)
    if (Either.isRight(result)) {
      expect(Duration.toMillis(result.right.window)).toBe(1000)
      expect(Duration.toMillis(result.right.delay)).toBe(0)
    }
  })

  it("accepts every DurationInput form", () => {
    for (const window of [1000, "1 second", "1000 millis", Duration.seconds(1), [1, 0] as const, 1_000_000_000n]) {
      const result = decode({ ...valid, window })
      expect(Either.isRight(result) && Duration.toMillis(result.right.window)).toBe(1000)
    }
  })

  it.each(
    [
      ["concurrency", 0],
      ["concurrency", -3],
      ["concurrency", 1.5],
      ["concurrency", Number.NaN],
      ["concurrency", Number.POSITIVE_INFINITY],
      ["window", -1],
      ["window", 0],
      ["window", "-5 seconds"],
      ["window", "soon"],
      ["window", Number.NaN],
      ["window", Duration.infinity],
      ["ratio", 1.01],
      ["ratio", -0.1],
      ["name", ""]
    ] as const
  )("rejects %s = %s naming the option and the value", (option, value) => {
    const error = failure({ ...valid, [option]: value })
    expect(error).toBeInstanceOf(InvalidOptionsError)
    expect(error.module).toBe("Sample")
    expect(error.option).toBe(option)
    expect(error.value).toBe(value)
    expect(error.message).toContain(`"${option}"`)
  })

  it("names nested options by their path", () => {
    const error = failure({ ...valid, nested: { rate: -2 } })
    expect(error.option).toBe("nested.rate")
    expect(error.value).toBe(-2)
    expect(error.message).toContain("nested.rate")
    expect(error.message).toContain("-2")
  })

  it("names a missing required option", () => {
    const error = failure({ name: "x", window: 10, ratio: 0 })
    expect(error.option).toBe("concurrency")
    expect(error.value).toBeUndefined()
  })

  it.effect("decodeOptions fails in the error channel, never throws", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Options.decodeOptions("Sample", Sample)({ ...valid, concurrency: 0 }))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Options.decodeOptions("Sample", Sample)(null))
      expect(error._tag).toBe("InvalidOptionsError")
    }))
})
