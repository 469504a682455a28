/**
 * Limiters per tier (`RateLimiter.tiered`): one limiter per tier named `${name}.${tier}`, or an
 * all-or-nothing group for a tier of several algorithms; an unknown tier uses the fallback.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import { InvalidOptionsError } from "../../Errors.js"
import type { Algorithm, All, AllOptions, Options, RateLimiter as Limiter, Tiered } from "../../RateLimiter.js"
import type { RateLimiterStore } from "../../RateLimiterStore.js"

export interface TieredOptions<T extends string> {
  readonly name: string
  readonly tiers: { readonly [K in T]: Algorithm | ReadonlyArray<Algorithm> }
  readonly fallback: NoInfer<T>
  readonly onExceeded?: "fail" | "wait" | undefined
  readonly maxWait?: Duration.DurationInput | undefined
  readonly deadline?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}

/** Builds the tiers with the public `make` and `all`, passed in to keep this module below them. */
export const makeTiered = <T extends string>(
  options: TieredOptions<T>,
  make: (options: Options) => Effect.Effect<Limiter, InvalidOptionsError, RateLimiterStore>,
  all: (limiters: ReadonlyArray<Limiter>, options?: AllOptions) => Effect.Effect<All, InvalidOptionsError>
): Effect.Effect<Tiered<T>, InvalidOptionsError, RateLimiterStore> =>
  Effect.gen(function*() {
    const limiters = {} as { [K in T]: Limiter }
    const groups: { [K in T]?: All } = {}
    for (const tier of Object.keys(options.tiers) as Array<T>) {
      const algorithms = options.tiers[tier]
      const common = { onExceeded: options.onExceeded, maxWait: options.maxWait, deadline: options.deadline }
      if (!Array.isArray(algorithms)) {
        limiters[tier] = yield* make({ name: `${options.name}.${tier}`, algorithm: algorithms as Algorithm, ...common })
        continue
      }
      const several = yield* Effect.forEach(
        algorithms as ReadonlyArray<Algorithm>,
        (algorithm, i) => make({ name: `${options.name}.${tier}.${i}`, algorithm, ...common })
      )
      groups[tier] = yield* all(several, common)
      limiters[tier] = several[0]
    }
    if (!Object.prototype.hasOwnProperty.call(limiters, options.fallback)) {
      return yield* new InvalidOptionsError({
        module: "RateLimiter",
        option: "fallback",
        value: options.fallback,
        reason: "expected one of the tiers"
      })
    }
    const limiter = (tier: string): Limiter =>
      Object.prototype.hasOwnProperty.call(limiters, tier) ? limiters[tier as T] : limiters[options.fallback]
    const tierOf = (tier: string): T =>
      Object.prototype.hasOwnProperty.call(limiters, tier) ? tier as T : options.fallback
    return {
      limiters,
      groups,
      limiter,
      take: (tier, key, cost) => (groups[tierOf(tier)] ?? limiter(tier)).take(key, cost),
      protect: (tier, key) => (groups[tierOf(tier)] ?? limiter(tier)).protect(key)
    }
  })
