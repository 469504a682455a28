/**
 * Map-reduce on fibers, after go-zero's `mr` package: items come from a source, at most `workers`
 * mappers run at once, and their results are reduced into one value.
 *
 * Everything runs in fibers that belong to the caller: the first failure (or `cancel(error)`)
 * interrupts every other mapper and the source, defects propagate with their full cause, and no
 * fiber outlives the call — on success, failure, cancellation or interruption alike.
 *
 * Two shapes are offered:
 * - {@link mapReduce} / {@link forEach}: Effect-style. `map` returns an effect, `reduce` is a pure
 *   fold run as each mapped value arrives (in completion order).
 * - {@link mapReduceWriter} / {@link mapReduceVoid}: go-zero-style, for code ported from Go. The
 *   mapper writes zero or more values through a `Writer`; the reducer reads them as a `Stream` and
 *   writes its result exactly once: no write fails with `NoOutputError`, a second write is a defect
 *   (go-zero panics with "more than one element written in reducer").
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { MapReduce } from "effect-resilience"
 *
 * class BannedUser extends Data.TaggedError("BannedUser")<{ readonly id: number }> {}
 * const userIds = [1, 2, 3, 13, 42]
 * const fetchUser = (id: number) => Effect.succeed({ banned: id === 13, score: id * 10 })
 *
 * const total = MapReduce.mapReduce({
 *   source: userIds,
 *   map: (id, cancel) => fetchUser(id).pipe(Effect.flatMap((u) => u.banned ? cancel(new BannedUser({ id })) : Effect.succeed(u.score))),
 *   initial: 0,
 *   reduce: (sum, score) => sum + score,
 *   workers: 10
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import { type InvalidOptionsError, NoOutputError } from "./Errors.js"
import * as internal from "./internal/mapReduce.js"
import { decodeOptionsEither, PositiveInt } from "./internal/options.js"

/**
 * Where items come from: any `Iterable` (an array, a `Set`, a generator function's result), a
 * `Stream`, or an effect that emits items one by one (go-zero's `generate(source)`); `emit` waits
 * while the mappers are busy, so a generator never runs far ahead.
 *
 * @since 0.1.0
 * @category models
 */
export type Source<A, E = never, R = never> = internal.Source<A, E, R>

/**
 * Stops the whole map-reduce with `error`: yield it from a mapper or reducer
 * (`return yield* cancel(new MyError())`). The first cancellation wins; everything else is interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export type Cancel = <E>(error: E) => Effect.Effect<never, E>

/**
 * Where go-zero-style mappers and reducers put their output.
 *
 * @since 0.1.0
 * @category models
 */
export interface Writer<A> {
  readonly write: (value: A) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const cancel: Cancel = Effect.fail

/**
 * The default number of concurrent mappers (go-zero's default).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultWorkers = 16

const WorkersSchema = () => Schema.Struct({ workers: PositiveInt })
const decodeWorkers = decodeOptionsEither("MapReduce", WorkersSchema)

const withWorkers = <A, E, R>(
  workers: number | undefined,
  f: (workers: number) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | InvalidOptionsError, R> => {
  if (workers === undefined) return f(defaultWorkers)
  const decoded = decodeWorkers({ workers })
  return decoded._tag === "Left" ? Effect.fail(decoded.left) : f(decoded.right.workers)
}

const noop = (): void => {}

/**
 * Maps every item with at most `workers` mappers in flight and folds the mapped values with
 * `reduce`, starting from `initial`. Values are folded as they arrive, in completion order.
 *
 * @since 0.1.0
 * @category combinators
 */
export const mapReduce = <A, B, S, E = never, R = never, E2 = never, R2 = never>(options: {
  readonly source: Source<A, E, R>
  readonly map: (item: A, cancel: Cancel) => Effect.Effect<B, E2, R2>
  readonly initial: S
  readonly reduce: (accumulator: S, value: B) => S
  /** at most this many mappers run at once (default 16) */
  readonly workers?: number | undefined
}): Effect.Effect<S, E | E2 | InvalidOptionsError, R | R2> =>
  withWorkers(options.workers, (workers) =>
    Effect.suspend(() => {
      const { map, reduce } = options
      let accumulator = options.initial
      return Effect.map(
        internal.drive(options.source, workers, (item: A) => map(item, cancel), (value) => {
          accumulator = reduce(accumulator, value)
        }),
        () => accumulator
      )
    }))

/**
 * Runs `f` on every item with at most `workers` in flight; no output (go-zero `ForEach`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const forEach = <A, E = never, R = never, E2 = never, R2 = never>(options: {
  readonly source: Source<A, E, R>
  readonly f: (item: A, cancel: Cancel) => Effect.Effect<unknown, E2, R2>
  readonly workers?: number | undefined
}): Effect.Effect<void, E | E2 | InvalidOptionsError, R | R2> =>
  withWorkers(options.workers, (workers) => {
    const { f } = options
    return internal.drive(options.source, workers, (item: A) => f(item, cancel), noop)
  })

const MORE_THAN_ONE = "more than one element written in reducer"

/**
 * go-zero's `MapReduce`: `mapper` writes zero or more values per item; `reducer` reads them all as
 * a stream and writes the result exactly once. No write fails with `NoOutputError`; a second write
 * is a defect. A failure or `cancel` anywhere interrupts everything else; when the reducer returns,
 * mappers still running are interrupted.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { MapReduce } from "effect-resilience"
 *
 * const sum = MapReduce.mapReduceWriter({
 *   source: [1, 2, 3, 4],
 *   mapper: (n: number, writer: MapReduce.Writer<number>) => writer.write(n * n),
 *   reducer: (pipe, writer: MapReduce.Writer<number>) =>
 *     Stream.runFold(pipe, 0, (a, b) => a + b).pipe(Effect.flatMap(writer.write))
 * })
 * ```
 *
 * @since 0.1.0
 * @category go-zero
 */
export const mapReduceWriter = <
  A,
  B,
  C,
  E = never,
  R = never,
  E2 = never,
  R2 = never,
  E3 = never,
  R3 = never
>(options: {
  readonly source: Source<A, E, R>
  readonly mapper: (item: A, writer: Writer<B>, cancel: Cancel) => Effect.Effect<void, E2, R2>
  readonly reducer: (pipe: Stream.Stream<B>, writer: Writer<C>, cancel: Cancel) => Effect.Effect<void, E3, R3>
  readonly workers?: number | undefined
}): Effect.Effect<C, E | E2 | E3 | NoOutputError | InvalidOptionsError, R | R2 | R3> =>
  withWorkers(options.workers, (workers) =>
    Effect.flatMap(Queue.bounded<B | internal.End>(workers), (collector) => {
      const { mapper, reducer } = options
      const mapperWriter: Writer<B> = { write: (value) => Effect.asVoid(Queue.offer(collector, value)) }
      let written = false
      let output: C | undefined
      const outputWriter: Writer<C> = {
        write: (value) =>
          Effect.suspend(() => {
            if (written) return Effect.die(new Error(MORE_THAN_ONE))
            written = true
            output = value
            return Effect.void
          })
      }
      const mapping = Effect.zipRight(
        internal.drive(options.source, workers, (item: A) => mapper(item, mapperWriter, cancel), noop),
        Queue.offer(collector, internal.END)
      )
      const reducing = reducer(internal.pipeOf(collector), outputWriter, cancel)
      return Effect.scoped(
        Effect.flatMap(Effect.forkScoped(mapping), (mappingFiber) =>
          // a mapping failure interrupts the reducer; the reducer ending interrupts the mappers
          Effect.raceFirst(reducing, Effect.zipRight(Fiber.join(mappingFiber), Effect.never)))
      ).pipe(
        Effect.flatMap(() => written ? Effect.succeed(output as C) : Effect.fail(new NoOutputError({}, true)))
      )
    }))

/**
 * go-zero's `MapReduceVoid`: like {@link mapReduceWriter}, but the reducer writes nothing.
 *
 * @since 0.1.0
 * @category go-zero
 */
export const mapReduceVoid = <
  A,
  B,
  E = never,
  R = never,
  E2 = never,
  R2 = never,
  E3 = never,
  R3 = never
>(options: {
  readonly source: Source<A, E, R>
  readonly mapper: (item: A, writer: Writer<B>, cancel: Cancel) => Effect.Effect<void, E2, R2>
  readonly reducer: (pipe: Stream.Stream<B>, cancel: Cancel) => Effect.Effect<void, E3, R3>
  readonly workers?: number | undefined
}): Effect.Effect<void, E | E2 | E3 | InvalidOptionsError, R | R2 | R3> => {
  const { reducer } = options
  // the reducer always writes once when it returns, so `NoOutputError` cannot arise here
  return mapReduceWriter<A, B, void, E, R, E2, R2, E3, R3>({
    source: options.source,
    mapper: options.mapper,
    reducer: (pipe, writer, cancel) => Effect.zipRight(reducer(pipe, cancel), writer.write(undefined)),
    workers: options.workers
  }) as Effect.Effect<void, E | E2 | E3 | InvalidOptionsError, R | R2 | R3>
}

type ErrorOf<Effects extends ReadonlyArray<Effect.Effect<any, any, any>>> = [Effects[number]] extends [never] ? never
  : Effect.Effect.Error<Effects[number]>
type ContextOf<Effects extends ReadonlyArray<Effect.Effect<any, any, any>>> = [Effects[number]] extends [never] ? never
  : Effect.Effect.Context<Effects[number]>

/**
 * Runs every effect concurrently and returns their results in order; the first failure interrupts
 * the rest (go-zero `Finish`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const finish = <const Effects extends ReadonlyArray<Effect.Effect<any, any, any>>>(
  ...effects: Effects
): Effect.Effect<
  { -readonly [K in keyof Effects]: Effect.Effect.Success<Effects[K]> },
  ErrorOf<Effects>,
  ContextOf<Effects>
> => Effect.all(effects, { concurrency: "unbounded" }) as any

/**
 * Runs every effect concurrently, discarding results; the first failure interrupts the rest
 * (go-zero `FinishVoid`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const finishVoid = <const Effects extends ReadonlyArray<Effect.Effect<any, any, any>>>(
  ...effects: Effects
): Effect.Effect<void, ErrorOf<Effects>, ContextOf<Effects>> =>
  Effect.all(effects, { concurrency: "unbounded", discard: true }) as any
