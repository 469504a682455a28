/**
 * Background task runners after go-zero's `threading` package, on fibers that belong to a scope.
 *
 * - {@link make}: a runner with `concurrency` slots. `schedule` waits for a free slot and starts the
 *   task in the background; `scheduleImmediately` fails with `TaskRunnerBusyError` when none is free;
 *   `wait` waits until every scheduled task has finished. A task that fails or dies is logged with
 *   its cause and frees its slot; it never takes the runner down. Closing the scope interrupts the
 *   tasks still running.
 * - {@link workerGroup}: `workers` copies of one job running side by side (go-zero `WorkerGroup`).
 * - {@link makeOrdered}: tasks run concurrently, results come out in submission order (go-zero
 *   `StableRunner`), e.g. for a queue consumer that must acknowledge in order.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TaskRunner } from "effect-resilience"
 *
 * declare const items: ReadonlyArray<string>
 * declare const handle: (item: string) => Effect.Effect<void>
 *
 * const program = Effect.gen(function*() {
 *   const runner = yield* TaskRunner.make(10)
 *   for (const item of items) yield* runner.schedule(handle(item))
 *   yield* runner.wait
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type InvalidOptionsError, TaskRunnerBusyError } from "./Errors.js"
import { decodeOptions, PositiveInt } from "./internal/options.js"
import * as Q from "./internal/waitQueue.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** tasks running now (slots taken) */
  readonly running: number
  /** callers of `schedule` waiting for a slot */
  readonly waiting: number
  /** tasks scheduled and not yet finished, waiting ones included: what `wait` waits for */
  readonly pending: number
  readonly concurrency: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TaskRunner {
  readonly concurrency: number
  /**
   * Waits for a free slot, then starts `task` in the background and returns. Once the runner's
   * scope is closed, the caller is interrupted.
   */
  readonly schedule: <A, E, R>(task: Effect.Effect<A, E, R>) => Effect.Effect<void, never, R>
  /** Starts `task` in the background if a slot is free right now; otherwise fails `TaskRunnerBusyError`. */
  readonly scheduleImmediately: <A, E, R>(task: Effect.Effect<A, E, R>) => Effect.Effect<void, TaskRunnerBusyError, R>
  /** Waits until every task scheduled so far (and any scheduled meanwhile) has finished. */
  readonly wait: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

const ConcurrencySchema = () => Schema.Struct({ concurrency: PositiveInt })
const decodeConcurrency = decodeOptions("TaskRunner", ConcurrencySchema)

const logFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Cause.isInterruptedOnly(cause)
    ? Effect.void
    : Effect.logWarning("task failed", cause).pipe(Effect.annotateLogs({ module: "TaskRunner" }))

/** `wait`: callers waiting until no task is pending, woken by `settled`. */
const idleWaiters = (permits: Q.Permits) => {
  let idle: Array<() => void> = []

  // a scheduled task either holds a slot or waits in the queue until it is done or gives up
  const pending = () => permits.active + permits.queue.length

  // called after a task finished or a waiting caller left: wakes `wait` once nothing is pending
  const settled = () => {
    if (pending() === 0 && idle.length > 0) {
      const wake = idle
      idle = []
      for (const f of wake) f()
    }
  }

  const wait: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (pending() === 0) return resume(Effect.void)
    const wake = () => resume(Effect.void)
    idle.push(wake)
    return Effect.sync(() => {
      idle = idle.filter((f) => f !== wake)
    })
  })
  return { pending, settled, wait }
}

/**
 * A runner with `concurrency` slots whose tasks live in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (concurrency: number): Effect.Effect<TaskRunner, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* decodeConcurrency({ concurrency })
    const outer = yield* Effect.scope
    // tasks live in a child scope, closed after `closed` is set (finalizers run last-added first)
    const tasks = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const permits = Q.makePermits(concurrency)
    let closed = false
    const busy = new TaskRunnerBusyError({ concurrency }, true)
    const { pending, settled, wait } = idleWaiters(permits)
    const finished = Effect.sync(() => {
      Q.release(permits)
      settled()
    })

    // called while holding a slot, in an uninterruptible region
    const start = <A, E, R>(task: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
      Effect.asVoid(
        Effect.forkIn(
          Effect.uninterruptible(
            Effect.ensuring(Effect.interruptible(Effect.catchAllCause(task, logFailure)), finished)
          ),
          tasks
        )
      )

    const schedule = <A, E, R>(task: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend((): Effect.Effect<void, never, R> => {
          if (closed) return Effect.interrupt
          if (Q.tryAcquire(permits)) return start(task)
          const waiter = Q.makeWaiter()
          Q.push(permits.queue, waiter)
          return Effect.matchCauseEffect(restore(Q.awaitPermit(waiter)), {
            onFailure: (cause) => {
              Q.abandon(permits, waiter)
              settled()
              return Effect.failCause(cause)
            },
            onSuccess: (): Effect.Effect<void, never, R> => {
              if (!waiter.granted) {
                settled()
                return Effect.interrupt // the runner closed while we waited
              }
              waiter.granted = false
              return start(task)
            }
          })
        })
      )

    const scheduleImmediately = <A, E, R>(task: Effect.Effect<A, E, R>): Effect.Effect<void, TaskRunnerBusyError, R> =>
      Effect.uninterruptible(Effect.suspend((): Effect.Effect<void, TaskRunnerBusyError, R> => {
        if (closed || !Q.tryAcquire(permits)) return Effect.fail(busy)
        return start(task)
      }))

    const stats = Effect.sync((): Stats => ({
      running: permits.active,
      waiting: permits.queue.length,
      pending: pending(),
      concurrency
    }))

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        Q.wakeAll(permits.queue)
      })
    )
    return { concurrency, schedule, scheduleImmediately, wait, stats } satisfies TaskRunner
  })

const WorkersSchema = () => Schema.Struct({ workers: PositiveInt })
const decodeWorkers = decodeOptions("TaskRunner.workerGroup", WorkersSchema)

/**
 * Runs `workers` copies of `job` side by side and waits for all of them (go-zero `WorkerGroup`).
 * A worker that fails or dies is logged with its cause; the others carry on. Interrupting the caller
 * interrupts every worker.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { TaskRunner } from "effect-resilience"
 *
 * const handle = (job: string) => Effect.log(`handled ${job}`)
 *
 * // four consumers draining one queue
 * const consumers = (jobs: Queue.Queue<string>) =>
 *   TaskRunner.workerGroup({ job: Effect.forever(Queue.take(jobs).pipe(Effect.flatMap(handle))), workers: 4 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const workerGroup = <A, E, R>(options: {
  readonly job: Effect.Effect<A, E, R>
  readonly workers: number
}): Effect.Effect<void, InvalidOptionsError, R> =>
  Effect.flatMap(decodeWorkers({ workers: options.workers }), ({ workers }) => {
    const job = Effect.catchAllCause(options.job, logFailure)
    return Effect.all(Array.from({ length: workers }, () => job), { concurrency: "unbounded", discard: true })
  })

/**
 * Runs its tasks concurrently but hands results out in the order the inputs were pushed
 * (go-zero `StableRunner`). `take` is meant for one consumer at a time.
 *
 * @since 0.1.0
 * @category models
 */
export interface OrderedRunner<I, O, E> {
  /** Submits `input`; waits while `buffer` results are not yet taken. `false` once the runner is closed. */
  readonly push: (input: I) => Effect.Effect<boolean>
  /** The next result in push order (its failure, if the task failed); `None` once closed and drained. */
  readonly take: Effect.Effect<Option.Option<O>, E>
  /** Every result in push order, ending after `close` once all are taken. */
  readonly results: Stream.Stream<O, E>
  /** No more pushes; results already pushed can still be taken. */
  readonly close: Effect.Effect<void>
}

const OrderedSchema = () =>
  Schema.Struct({
    concurrency: PositiveInt,
    buffer: Schema.optional(PositiveInt)
  })
const decodeOrdered = decodeOptions("TaskRunner.makeOrdered", OrderedSchema)

const END: unique symbol = Symbol.for("effect-resilience/TaskRunner/end")

/** Every result `take` gives, ending when it gives `None`. */
const resultsOf = <O, E>(take: Effect.Effect<Option.Option<O>, E>): Stream.Stream<O, E> =>
  Stream.repeatEffectOption(
    Effect.flatMap(
      Effect.mapError(take, Option.some),
      Option.match({
        onNone: () => Effect.fail(Option.none()),
        onSome: Effect.succeed
      })
    )
  )

/**
 * An {@link OrderedRunner} running `handle` on at most `concurrency` inputs at once, with at most
 * `buffer` results (default `concurrency * 10`) pushed and not yet taken. Closing the scope
 * interrupts the tasks still running; their `take` fails with the interruption.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { TaskRunner } from "effect-resilience"
 *
 * interface Message { readonly offset: number; readonly body: string }
 * declare const messages: ReadonlyArray<Message>
 * declare const decode: (message: Message) => Effect.Effect<Message>
 * declare const commit: (message: Message) => Effect.Effect<void>
 *
 * const program = Effect.gen(function*() {
 *   const runner = yield* TaskRunner.makeOrdered(decode, { concurrency: 8 })
 *   yield* Effect.forkScoped(Effect.forEach(messages, runner.push).pipe(Effect.zipRight(runner.close)))
 *   yield* runner.results.pipe(Stream.runForEach(commit))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeOrdered = <I, O, E, R>(
  handle: (input: I) => Effect.Effect<O, E, R>,
  options: { readonly concurrency: number; readonly buffer?: number | undefined }
): Effect.Effect<OrderedRunner<I, O, E>, InvalidOptionsError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decodeOrdered(options)
    const concurrency = decoded.concurrency
    const buffer = decoded.buffer ?? concurrency * 10
    const scope = yield* Effect.scope
    const context = yield* Effect.context<R>()
    const work = yield* Effect.makeSemaphore(concurrency)
    const room = yield* Effect.makeSemaphore(buffer)
    const slots = yield* Queue.unbounded<Deferred.Deferred<O, E> | typeof END>()
    let closed = false
    // a slot whose taker was interrupted while it waited: the next take resumes it
    let head: Deferred.Deferred<O, E> | undefined

    const run = (input: I, slot: Deferred.Deferred<O, E>) =>
      Effect.forkIn(
        Effect.flatMap(
          Effect.exit(Effect.interruptible(work.withPermits(1)(Effect.provide(handle(input), context)))),
          (exit) => Deferred.done(slot, exit)
        ),
        scope
      )

    const push = (input: I): Effect.Effect<boolean> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          if (closed) return Effect.succeed(false)
          return Effect.flatMap(restore(room.take(1)), () => {
            if (closed) return Effect.as(room.release(1), false)
            const slot = Deferred.unsafeMake<O, E>(FiberId.none)
            Queue.unsafeOffer(slots, slot)
            return Effect.as(run(input, slot), true)
          })
        })
      )

    const take: Effect.Effect<Option.Option<O>, E> = Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const next = head !== undefined ? Effect.succeed(head) : restore(Queue.take(slots))
        return Effect.flatMap(next, (slot): Effect.Effect<Option.Option<O>, E> => {
          if (slot === END) {
            Queue.unsafeOffer(slots, END)
            return Effect.succeed(Option.none())
          }
          head = slot
          return Effect.flatMap(restore(Effect.exit(Deferred.await(slot))), (exit) =>
            Effect.flatMap(Deferred.isDone(slot), (done): Effect.Effect<Option.Option<O>, E> => {
              // the taker was interrupted, not the task: keep the slot for the next take
              if (!done && Exit.isFailure(exit)) return Effect.failCause(exit.cause)
              head = undefined
              return Effect.zipRight(room.release(1), Exit.map(exit, Option.some))
            }))
        })
      })
    )

    const close = Effect.sync(() => {
      if (closed) {
        return
      }
      closed = true
      Queue.unsafeOffer(slots, END)
    })

    yield* Effect.addFinalizer(() =>
      close
    )
    return { push, take, results: resultsOf(take), close } satisfies OrderedRunner<I, O, E>
  })
