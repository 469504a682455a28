import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as ResilienceMode from "../src/ResilienceMode.js"

const withEnv = (entries: ReadonlyArray<readonly [string, string]>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))

describe("ResilienceMode", () => {
  it.effect("defaults to pro when RESILIENCE_MODE is unset", () =>
    Effect.gen(function*() {
      expect(yield* ResilienceMode.current).toBe("pro")
    }).pipe(withEnv([])))

  for (const mode of ResilienceMode.modes) {
    it.effect(`reads ${mode}`, () =>
      Effect.gen(function*() {
        expect(yield* ResilienceMode.current).toBe(mode)
      }).pipe(withEnv([[ResilienceMode.configKey, mode]])))
  }

  it.effect("an unknown mode fails with InvalidOptionsError naming the key and value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceMode.current)
      expect(error._tag).toBe("InvalidOptionsError")
      expect(error.message).toContain("RESILIENCE_MODE")
      expect(error.message).toContain("production")
    }).pipe(withEnv([[ResilienceMode.configKey, "production"]])))

  it("only pro sheds", () => {
    expect(ResilienceMode.modes.filter(ResilienceMode.isSheddingEnabled)).toEqual(["pro"])
  })
})
