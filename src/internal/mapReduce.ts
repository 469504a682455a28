/**
 * The engine behind MapReduce: `workers` fibers pull items from a source and run a step on each.
 * An iterable is pulled synchronously by the workers themselves; a stream or a generator effect
 * runs in one more fiber that feeds a bounded queue (capacity `workers`, so it never runs far
 * ahead). All fibers run under `Effect.all`: the first failure or defect interrupts the others and
 * nothing returns before every fiber has stopped.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"

/** What items come from: an iterable, a stream, or an effect that emits them one by one. */
export type Source<A, E = never, R = never> =
  | Iterable<A>
  | Stream.Stream<A, E, R>
  | ((emit: (item: A) => Effect.Effect<void>) => Effect.Effect<void, E, R>)

const END: unique symbol = Symbol.for("effect-resilience/MapReduce/end")
type End = typeof END

const runAll = <E, R>(fibers: ReadonlyArray<Effect.Effect<void, E, R>>): Effect.Effect<void, E, R> =>
  fibers.length === 1 ? fibers[0] : Effect.all(fibers, { concurrency: "unbounded", discard: true })

/**
 * Runs `step` on every item of `source` with at most `workers` steps in flight, feeding each
 * result to the synchronous `after`.
 */
export const drive = <A, E, R, B, E2, R2>(
  source: Source<A, E, R>,
  workers: number,
  step: (item: A) => Effect.Effect<B, E2, R2>,
  after: (value: B) => void
): Effect.Effect<void, E | E2, R | R2> => {
  if (typeof source === "function" || (typeof source === "object" && Stream.StreamTypeId in source)) {
    return driveQueued(source as Stream.Stream<A, E, R>, workers, step, after)
  }
  return Effect.suspend(() => {
    const iterator = (source as Iterable<A>)[Symbol.iterator]()
    const loop = (): Effect.Effect<void, E2, R2> => {
      const next = iterator.next()
      if (next.done === true) return Effect.void
      return Effect.flatMap(step(next.value), (value) => {
        after(value)
        return loop()
      })
    }
    const worker = Effect.suspend(loop)
    // no more fibers than items when the size is known
    const size = Array.isArray(source) ? Math.max(1, Math.min(workers, source.length)) : workers
    return runAll(Array.from({ length: size }, () => worker)).pipe(
      Effect.onExit((exit) =>
        exit._tag === "Failure" && typeof iterator.return === "function"
          ? Effect.sync(() => iterator.return!())
          : Effect.void
      )
    )
  })
}

const driveQueued = <A, E, R, B, E2, R2>(
  source: Stream.Stream<A, E, R> | ((emit: (item: A) => Effect.Effect<void>) => Effect.Effect<void, E, R>),
  workers: number,
  step: (item: A) => Effect.Effect<B, E2, R2>,
  after: (value: B) => void
): Effect.Effect<void, E | E2, R | R2> =>
  Effect.flatMap(Queue.bounded<A | End>(workers), (queue) => {
    const produce: Effect.Effect<void, E, R> = typeof source === "function"
      ? source((item) => Effect.asVoid(Queue.offer(queue, item)))
      : Stream.runForEachChunk(source, (chunk) => Queue.offerAll(queue, chunk))
    const producer = Effect.zipRight(produce, Queue.offer(queue, END))
    const loop = (): Effect.Effect<void, E2, R2> =>
      Effect.flatMap(Queue.take(queue), (item) =>
        item === END
          // leave the end marker for the other workers
          ? Effect.asVoid(Queue.offer(queue, END))
          : Effect.flatMap(step(item), (value) => {
            after(value)
            return loop()
          }))
    const worker = Effect.suspend(loop)
    return runAll<E | E2, R | R2>([producer, ...Array.from({ length: workers }, () => worker)])
  })

/** A stream reading `queue` until the end marker. */
export const pipeOf = <B>(queue: Queue.Queue<B | End>): Stream.Stream<B> =>
  Stream.repeatEffectOption(
    Effect.flatMap(Queue.take(queue), (item) =>
      item === END
        // leave the end marker in place in case the pipe is read again, then end the stream
        ? Effect.zipRight(Queue.offer(queue, END), Effect.fail(Option.none()))
        : Effect.succeed(item))
  )

export { END }
export type { End }
