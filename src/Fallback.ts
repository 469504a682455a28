/**
 * Typed fallbacks: answer from somewhere else when the primary fails with an error you chose.
 * Only failures in the error channel fall back; defects and interruption pass through untouched.
 * Every use of a fallback is logged at debug level (with the error that caused it) and counted
 * in `resilience_fallbacks_total{name,to}`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Fallback } from "effect-resilience"
 *
 * interface User { readonly id: string; readonly name: string }
 * declare const fromDatabase: (id: string) => Effect.Effect<User, Error>
 * declare const fromCache: (id: string) => Effect.Effect<User, Error>
 * declare const fromReplica: (id: string) => Effect.Effect<User, Error>
 *
 * const getUser = (id: string) =>
 *   Fallback.chain(
 *     [
 *       Fallback.alternative("database", fromDatabase(id)),
 *       Fallback.alternative("cache", fromCache(id)),
 *       Fallback.alternative("replica", fromReplica(id))
 *     ],
 *     { name: "get-user", default: () => ({ id, name: "Unknown" }) }
 *   )
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { dual, type LazyArg } from "effect/Function"
import * as Metric from "effect/Metric"
import { describeError } from "./internal/describeError.js"

/**
 * `resilience_fallbacks_total{name,to}`: fallbacks taken, by the name of the guarded operation
 * and the alternative that was tried.
 *
 * @since 0.1.0
 * @category metrics
 */
export const fallbacksTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_fallbacks_total", {
  description: "fallbacks taken",
  incremental: true
})

const announce = (name: string, from: string, to: string, error: unknown): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(Metric.tagged(fallbacksTotal, "name", name), "to", to)),
    Effect.logDebug("falling back").pipe(
      Effect.annotateLogs({
        "fallback.name": name,
        "fallback.from": from,
        "fallback.to": to,
        "fallback.error": describeError(error)
      })
    )
  )

/**
 * Options of `orElse`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OrElseOptions<E, A2, E2, R2> {
  /** the alternative, given the error that triggered it */
  readonly fallback: (error: E) => Effect.Effect<A2, E2, R2>
  /** which failures fall back (default: every failure) */
  readonly when?: ((error: E) => boolean) | undefined
  /** label for logs and metrics (default `"default"`) */
  readonly name?: string | undefined
}

/**
 * Runs `fallback` when `self` fails with an error `when` selects; other failures are returned
 * unchanged. Without `when` every failure falls back, so, as with `Effect.orElse`, the result can
 * fail only with the fallback's errors.
 *
 * @since 0.1.0
 * @category combinators
 */
export const orElse: {
  <E, A2, E2, R2>(
    options: OrElseOptions<NoInfer<E>, A2, E2, R2> & { readonly when?: undefined }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E2, R | R2>
  <E, A2, E2, R2>(
    options: OrElseOptions<NoInfer<E>, A2, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E | E2, R | R2>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    options: OrElseOptions<NoInfer<E>, A2, E2, R2> & { readonly when?: undefined }
  ): Effect.Effect<A | A2, E2, R | R2>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    options: OrElseOptions<NoInfer<E>, A2, E2, R2>
  ): Effect.Effect<A | A2, E | E2, R | R2>
} = dual(2, <A, E, R, A2, E2, R2>(
  self: Effect.Effect<A, E, R>,
  options: OrElseOptions<E, A2, E2, R2>
): Effect.Effect<A | A2, E | E2, R | R2> => {
  const name = options.name ?? "default"
  const when = options.when
  return Effect.catchAll(self, (error): Effect.Effect<A2, E | E2, R2> =>
    when !== undefined && !when(error)
      ? Effect.fail(error)
      : Effect.zipRight(announce(name, "primary", "fallback", error), options.fallback(error)))
})

/**
 * The last resort: succeeds with `value()` when `self` fails with an error `when` selects
 * (default: every failure, and then the result cannot fail).
 *
 * @since 0.1.0
 * @category combinators
 */
export const orElseSucceed: {
  <E, A2>(options: {
    readonly value: LazyArg<A2>
    readonly when?: undefined
    readonly name?: string | undefined
  }): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, never, R>
  <E, A2>(options: {
    readonly value: LazyArg<A2>
    readonly when?: ((error: NoInfer<E>) => boolean) | undefined
    readonly name?: string | undefined
  }): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E, R>
  <A, E, R, A2>(self: Effect.Effect<A, E, R>, options: {
    readonly value: LazyArg<A2>
    readonly when?: undefined
    readonly name?: string | undefined
  }): Effect.Effect<A | A2, never, R>
  <A, E, R, A2>(self: Effect.Effect<A, E, R>, options: {
    readonly value: LazyArg<A2>
    readonly when?: ((error: NoInfer<E>) => boolean) | undefined
    readonly name?: string | undefined
  }): Effect.Effect<A | A2, E, R>
} = dual(2, <A, E, R, A2>(self: Effect.Effect<A, E, R>, options: {
  readonly value: LazyArg<A2>
  readonly when?: ((error: E) => boolean) | undefined
  readonly name?: string | undefined
}): Effect.Effect<A | A2, E, R> =>
  orElse(self, {
    fallback: () => Effect.sync(options.value),
    when: options.when,
    name: options.name
  }))

/**
 * One named step of a fallback chain.
 *
 * @since 0.1.0
 * @category models
 */
export interface Alternative<A, E, R> {
  readonly name: string
  readonly effect: Effect.Effect<A, E, R>
}

/**
 * Names an alternative for the logs and the `to` label of the metric.
 *
 * @since 0.1.0
 * @category constructors
 */
export const alternative = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Alternative<A, E, R> => ({
  name,
  effect
})

type AnyAlternative = Alternative<any, any, any> | Effect.Effect<any, any, any>
type SuccessOf<T> = T extends Alternative<infer A, any, any> ? A
  : T extends Effect.Effect<infer A, any, any> ? A
  : never
type ErrorOf<T> = T extends Alternative<any, infer E, any> ? E : T extends Effect.Effect<any, infer E, any> ? E : never
type ContextOf<T> = T extends Alternative<any, any, infer R> ? R
  : T extends Effect.Effect<any, any, infer R> ? R
  : never

/**
 * Options of `chain`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChainOptions<E, D> {
  /** label for logs and metrics (default `"default"`) */
  readonly name?: string | undefined
  /** which failures move on to the next alternative (default: every failure) */
  readonly when?: ((error: E) => boolean) | undefined
  /** the last-resort value when every alternative failed with a selected error */
  readonly default?: LazyArg<D> | undefined
}

/**
 * Tries the alternatives in order (database → cache → replica …) and returns the first success.
 * A failure `when` does not select is returned at once; when every alternative failed, the
 * `default` value is returned if there is one, otherwise the last failure.
 *
 * @since 0.1.0
 * @category combinators
 */
export const chain = <const Alts extends readonly [AnyAlternative, ...Array<AnyAlternative>], D = never>(
  alternatives: Alts,
  options: ChainOptions<ErrorOf<Alts[number]>, D> = {}
): Effect.Effect<
  SuccessOf<Alts[number]> | D,
  ErrorOf<Alts[number]>,
  ContextOf<Alts[number]>
> => {
  const name = options.name ?? "default"
  const steps = alternatives.map((alt, index) =>
    Effect.isEffect(alt) ? { name: `#${index + 1}`, effect: alt } : alt as Alternative<any, any, any>
  )
  const when = options.when
  const fallbackDefault = options.default
  const loop = (index: number): Effect.Effect<any, any, any> =>
    Effect.catchAll(steps[index].effect, (error) => {
      if (when !== undefined && !when(error)) return Effect.fail(error)
      if (index + 1 < steps.length) {
        return Effect.zipRight(announce(name, steps[index].name, steps[index + 1].name, error), loop(index + 1))
      }
      if (fallbackDefault !== undefined) {
        return Effect.zipRight(announce(name, steps[index].name, "default", error), Effect.sync(fallbackDefault))
      }
      return Effect.fail(error)
    })
  return loop(0)
}
