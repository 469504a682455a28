/**
 * The deployment mode a service runs in, read from `effect/Config` key `RESILIENCE_MODE`.
 *
 * Adaptive load shedding is on only in `"pro"` (the default): in development, tests, regression
 * tests (`"rt"`) and pre-release (`"pre"`) a `LoadShedder` admits everything, so a busy laptop or
 * a load test never sees requests rejected for CPU reasons.
 *
 * Shadow mode is the run-time counterpart for every policy: with a `Shadow` switch in context when
 * they are built, breakers, rate limiters, load shedders, bulkheads and adaptive limiters keep
 * deciding and counting but admit everything while the switch is on.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
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

// ---------------------------------------------------------------------------------------------
// Shadow mode
// ---------------------------------------------------------------------------------------------

/**
 * The run-time switch of shadow mode. While `enabled`, every policy built where the switch was
 * provided (breakers, rate limiters, load shedders, bulkheads, adaptive limiters) still decides,
 * counts and logs as usual, but admits everything: a call it would reject runs anyway and adds one
 * to `resilience_shadow_would_reject_total{policy,name}`. Turned off, a call costs one boolean read.
 *
 * @since 0.2.0
 * @category models
 */
export interface ShadowSwitch {
  /** whether policies admit everything right now; read on every call */
  readonly enabled: boolean
  /** turns shadow mode on or off for every policy sharing this switch, from the next call on */
  readonly set: (enabled: boolean) => Effect.Effect<void>
}

/**
 * The shadow switch a policy picks up when it is built. Policies built without one never shadow
 * and pay nothing for it.
 *
 * @since 0.2.0
 * @category tags
 */
export class Shadow extends Context.Tag("effect-resilience/Shadow")<Shadow, ShadowSwitch>() {}

/**
 * The config key `layerShadowConfig` reads the initial state from (a boolean, default false).
 *
 * @since 0.2.0
 * @category constants
 */
export const shadowConfigKey = "RESILIENCE_SHADOW"

class ShadowSwitchImpl implements ShadowSwitch {
  constructor(public enabled: boolean) {}
  set(enabled: boolean): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.enabled === enabled) return Effect.void
      this.enabled = enabled
      return Effect.logInfo(enabled ? "shadow mode on: policies admit everything" : "shadow mode off")
    })
  }
}

/**
 * A new switch, off unless `enabled` is true.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeShadow = (enabled = false): Effect.Effect<ShadowSwitch> =>
  Effect.sync(() => new ShadowSwitchImpl(enabled))

/**
 * Provides a shadow switch to the policies built with this layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, ResilienceMode } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "db", threshold: 1 }))
 *   yield* ResilienceMode.setShadow(true) // from here on the breaker only counts what it would reject
 *   return breaker
 * }).pipe(Effect.scoped, Effect.provide(ResilienceMode.layerShadow()))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerShadow = (enabled = false): Layer.Layer<Shadow> => Layer.effect(Shadow, makeShadow(enabled))

/**
 * A shadow switch whose initial state is read from `RESILIENCE_SHADOW` (default off).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerShadowConfig: Layer.Layer<Shadow, InvalidOptionsError> = Layer.effect(
  Shadow,
  Config.boolean(shadowConfigKey).pipe(
    Config.withDefault(false),
    Effect.mapError((error) =>
      new InvalidOptionsError({
        module: "ResilienceMode",
        option: shadowConfigKey,
        value: undefined,
        reason: String(error)
      })
    ),
    Effect.flatMap(makeShadow)
  )
)

/**
 * Turns shadow mode on or off through the switch in context.
 *
 * @since 0.2.0
 * @category combinators
 */
export const setShadow = (enabled: boolean): Effect.Effect<void, never, Shadow> =>
  Effect.flatMap(Shadow, (shadow) => shadow.set(enabled))
