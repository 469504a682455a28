/**
 * The deployment mode a service runs in, read from `effect/Config` key `RESILIENCE_MODE`.
 *
 * Adaptive load shedding is on only in `"pro"` (the default): in development, tests, regression
 * tests (`"rt"`) and pre-release (`"pre"`) a `LoadShedder` admits everything, so a busy laptop or
 * a load test never sees requests rejected for CPU reasons.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { InvalidOptionsError } from "./Errors.js"

/**
 * `"dev"`, `"test"`, `"rt"` (regression test), `"pre"` (pre-release) or `"pro"` (production).
 *
 * @since 0.1.0
 * @category models
 */
export type ResilienceMode = "dev" | "test" | "rt" | "pre" | "pro"

/**
 * Every mode, in the order above.
 *
 * @since 0.1.0
 * @category constants
 */
export const modes: ReadonlyArray<ResilienceMode> = ["dev", "test", "rt", "pre", "pro"]

/**
 * The config key the mode is read from.
 *
 * @since 0.1.0
 * @category constants
 */
export const configKey = "RESILIENCE_MODE"

const isMode = (u: string): u is ResilienceMode => (modes as ReadonlyArray<string>).includes(u)

/**
 * The mode from the current `ConfigProvider` (`RESILIENCE_MODE`), `"pro"` when unset; an unknown
 * value fails with `InvalidOptionsError` rather than silently meaning production.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import { ResilienceMode } from "effect-resilience"
 *
 * const mode = ResilienceMode.current.pipe(
 *   Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_MODE", "dev"]])))
 * ) // Effect<"dev">
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const current: Effect.Effect<ResilienceMode, InvalidOptionsError> = Config.string(configKey).pipe(
  Config.option,
  Effect.mapError((error) =>
    new InvalidOptionsError({ module: "ResilienceMode", option: configKey, value: undefined, reason: String(error) })
  ),
  Effect.flatMap((value) => {
    if (Option.isNone(value)) return Effect.succeed<ResilienceMode>("pro")
    const mode = value.value.trim().toLowerCase()
    return isMode(mode)
      ? Effect.succeed(mode)
      : Effect.fail(
        new InvalidOptionsError({
          module: "ResilienceMode",
          option: configKey,
          value: value.value,
          reason: `expected one of ${modes.join(", ")}`
        })
      )
  })
)

/**
 * Whether adaptive load shedding is on in `mode`: only in `"pro"`.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSheddingEnabled = (mode: ResilienceMode): boolean => mode === "pro"
