/**
 * Hedged requests: when an attempt is slow, start a speculative extra one after `delay`
 * instead of waiting; the first success wins and every other attempt is interrupted (their
 * finalizers run before the result is returned). A failed attempt starts the next one at once.
 * Hedging multiplies load on a downstream that is slow because it is overloaded, so cap it with a
 * retry budget: each extra attempt draws one retry from it, and without budget no hedge starts.
 *
 * Only hedge idempotent work.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hedge } from "effect-resilience"
 *
 * const readFromReplica = Effect.tryPromise(() => fetch("http://127.0.0.1:8080/users/1").then((res) => res.text()))
 *
 * // a second read after 50 ms, a third after 100 ms if both are still running
 * const fast = readFromReplica.pipe(Hedge.hedge({ delay: "50 millis", maxAttempts: 3 }))
 * ```
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError } from "./Errors.js"
import * as Options from "./internal/options.js"
import type { RetryBudget } from "./Retry.js"

/**
 * Options of a hedge.
 *
 * @since 0.1.0
 * @category models
 */
export interface HedgeOptions {
  /** how long an attempt may run before the next one starts */
  readonly delay: Duration.DurationInput
  /** attempts in total, the first included (default 2) */
  readonly maxAttempts?: number | undefined
  /** each extra attempt draws one retry from this budget; none starts when it is spent */
  readonly budget?: RetryBudget | undefined
  /** label for logs and `resilience_hedges_total{name}` (default `"default"`) */
  readonly name?: string | undefined
}

/**
 * A configured hedge.
 *
 * @since 0.1.0
 * @category models
 */
export interface Hedge {
  readonly name: string
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * `resilience_hedges_total{name}`: extra (speculative) attempts started.
 *
 * @since 0.1.0
 * @category metrics
 */
export const hedgesTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_hedges_total", {
  description: "speculative extra attempts started",
  incremental: true
})

const HedgeOptionsSchema = Schema.Struct({
  delay: Options.NonNegativeDuration,
  maxAttempts: Schema.optionalWith(Options.PositiveInt, { default: () => 2 }),
  name: Schema.optionalWith(Options.Name, { default: () => "default" })
})
const decodeHedge = Options.decodeOptionsEither("Hedge", HedgeOptionsSchema)

type Event<A, E> =
  | { readonly _tag: "Tick"; readonly generation: number }
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<A, E> }

const build = (
  options: HedgeOptions,
  decoded: typeof HedgeOptionsSchema.Type
): Hedge => {
  const delay = decoded.delay
  const maxAttempts = decoded.maxAttempts
  const name = decoded.name
  const budget = options.budget
  const counter = Metric.tagged(hedgesTotal, "name", name)
  const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    if (maxAttempts === 1) return self
    return Effect.scoped(Effect.clockWith((clock) =>
      Effect.gen(function*() {
        const events = yield* Queue.unbounded<Event<A, E>>()
        let launched = 0
        let running = 0
        let generation = 0
        let timer: Fiber.RuntimeFiber<unknown> | undefined
        let lastCause: Cause.Cause<E> | undefined
        if (budget !== undefined) budget.unsafeRecordRequest(clock.unsafeCurrentTimeMillis())

        const mayHedge = (): boolean =>
          launched < maxAttempts && (budget === undefined || budget.unsafeTryAcquire(clock.unsafeCurrentTimeMillis()))

        const launch = Effect.suspend(() => {
          const attempt = ++launched
          running++
          const start = Effect.forkScoped(
            Effect.flatMap(Effect.exit(self), (exit) => Queue.offer(events, { _tag: "Done", exit }))
          )
          const announced = attempt === 1 ? start : Effect.zipRight(
            Effect.zipRight(
              Metric.increment(counter),
              Effect.logDebug("hedging").pipe(Effect.annotateLogs({ "hedge.name": name, "hedge.attempt": attempt }))
            ),
            start
          )
          return Effect.zipRight(announced, armTimer)
        })

        const armTimer: Effect.Effect<void, never, Scope.Scope> = Effect.suspend(() => {
          const previous = timer
          timer = undefined
          const current = ++generation
          const stop = previous === undefined ? Effect.void : Fiber.interrupt(previous)
          if (launched >= maxAttempts) return stop
          return Effect.zipRight(
            stop,
            Effect.map(
              Effect.forkScoped(
                Effect.zipRight(clock.sleep(delay), Queue.offer(events, { _tag: "Tick", generation: current }))
              ),
              (fiber) => {
                timer = fiber
              }
            )
          )
        })

        yield* launch
        for (;;) {
          const event = yield* Queue.take(events)
          if (event._tag === "Tick") {
            if (event.generation === generation && mayHedge()) yield* launch
            continue
          }
          running--
          if (Exit.isSuccess(event.exit)) return event.exit.value
          lastCause = event.exit.cause
          if (mayHedge()) {
            yield* launch
            continue
          }
          if (running === 0) return yield* Effect.failCause(lastCause)
        }
      })
    ))
  }
  return { name, protect }
}

/**
 * Builds a hedge, failing with `InvalidOptionsError` for a bad option.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: HedgeOptions): Effect.Effect<Hedge, InvalidOptionsError> =>
  Effect.suspend(() => {
    const decoded = decodeHedge(options)
    return Either.isRight(decoded) ? Effect.succeed(build(options, decoded.right)) : Effect.fail(decoded.left)
  })

/**
 * Hedges `self` (see the module documentation). A bad option is an `InvalidOptionsError` defect;
 * use `make` to receive it as a failure instead.
 *
 * @since 0.1.0
 * @category combinators
 */
export const hedge: {
  (options: HedgeOptions): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: HedgeOptions): Effect.Effect<A, E, R>
} = ((...args: ReadonlyArray<any>) => {
  const dataFirst = Effect.isEffect(args[0])
  const options: HedgeOptions = dataFirst ? args[1] : args[0]
  const decoded = decodeHedge(options)
  const protect = Either.isRight(decoded)
    ? build(options, decoded.right).protect
    : () => Effect.die(decoded.left)
  return dataFirst ? protect(args[0]) : protect
}) as any
