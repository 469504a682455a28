/**
 * Timeouts that interrupt the work they guard, and deadline budgets that propagate: inside
 * `deadline(total)` (or an outer `within`) every nested `within` is clamped to what is left, so a
 * request with 30 s for everything cannot give its database call 5 s when only 2 s remain.
 *
 * The budget travels in a `FiberRef`, so fibers forked by the work inherit it. The work runs on
 * the caller's own fiber (no fiber or `Runtime` per call); fiber-ref changes it makes stay on
 * success and are undone on failure. Each level arms exactly one timer and removes it when the
 * work ends first (on the host's clock a push on one shared timer heap, so work that completes
 * synchronously never touches a host timer); when time is up the work is interrupted — by an
 * interruptor of this call's own, which the call takes back once the work has stopped — and its
 * finalizers have run before the `TimeoutError` is returned; the caller carries on. A caller with live child fibers of its own (which an
 * interruption of the caller would reach) runs the work on a forked fiber instead.
 *
 * Time comes from the `Clock` service: with the live clock the timer is a callback on the
 * clock's own scheduler (no extra fiber); with any other clock — `TestClock` included — it is a
 * fiber sleeping on `Clock.sleep`, interrupted and awaited when the work ends first.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeout } from "effect-resilience"
 *
 * declare const queryDb: Effect.Effect<string>
 * declare const callInventory: Effect.Effect<string>
 *
 * const handler = Effect.gen(function*() {
 *   const stock = yield* callInventory.pipe(Timeout.within("10 seconds"))
 *   const row = yield* queryDb.pipe(Timeout.within({ duration: "5 seconds", operation: "db" }))
 *   return [stock, row]
 * }).pipe(Timeout.deadline("28 seconds"))
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import type * as FiberStatus from "effect/FiberStatus"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import { InvalidOptionsError, TimeoutError } from "./Errors.js"
import * as internal from "./internal/deadline.js"
import { parseDurationInput } from "./internal/options.js"
import * as Timed from "./internal/timedRun.js"

/**
 * The absolute deadline (Clock millis, `Infinity` for none) of the current fiber. A child's
 * tighter deadline never flows back into its parent.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentDeadline: FiberRef.FiberRef<number> = internal.currentDeadline

/**
 * Options of `within` and `deadline`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeoutOptions {
  readonly duration: Duration.DurationInput
  /** names the operation in the `TimeoutError` and the `name` label of `resilience_timeouts_total` */
  readonly operation?: string | undefined
}

/**
 * `resilience_timeouts_total{name}`: operations that timed out (`name` is the `operation`, or
 * `"default"`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeoutsTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_timeouts_total", {
  description: "operations that timed out",
  incremental: true
})

interface Prepared {
  readonly millis: number
  readonly operation: string | undefined
  readonly counter: Metric.Metric.Counter<number>
}

const prepare = (module: string, input: Duration.DurationInput | TimeoutOptions): Prepared | InvalidOptionsError => {
  const options: TimeoutOptions = typeof input === "object" && input !== null && "duration" in input
    ? input
    : { duration: input as Duration.DurationInput }
  const parsed = parseDurationInput(options.duration)
  if (parsed._tag === "Left") {
    return new InvalidOptionsError({ module, option: "duration", value: options.duration, reason: parsed.left })
  }
  return {
    millis: Duration.toMillis(parsed.right),
    operation: options.operation,
    counter: Metric.tagged(timeoutsTotal, "name", options.operation ?? "default")
  }
}

const ClockTag = Clock.Clock

/** How an armed timer ended: when it was armed and when it fired (Clock millis). */
interface Expiry {
  readonly armedAt: number
  readonly firedAt: number
}

const timedOut = (prepared: Prepared, millis: number, expiry?: Expiry): Effect.Effect<never, TimeoutError> => {
  const reason = expiry === undefined
    ? (millis < prepared.millis ? "deadline" : "timeout")
    : internal.expiryReason(prepared.millis, millis, expiry.armedAt, expiry.firedAt)
  return Effect.zipRight(
    Metric.increment(prepared.counter),
    Effect.fail(
      new TimeoutError(
        {
          duration: Duration.millis(millis),
          reason,
          ...(prepared.operation === undefined ? {} : { operation: prepared.operation }),
          ...(reason === "lag" && expiry !== undefined
            ? { lateBy: Duration.millis(expiry.firedAt - expiry.armedAt - millis) }
            : {})
        },
        true
      )
    )
  )
}

/**
 * How many `within` levels are starting their work on the current JavaScript stack right now.
 * Each level that starts its work at once runs it inside the caller's stack frame, so deeply
 * nested timeouts (recursive work, each step with its own timeout) would overflow the stack;
 * past `maxImmediateDepth` the work is started on the scheduler instead (correct, a little
 * slower). A re-entrancy guard, balanced by `try`/`finally`: it holds no state between calls.
 */
let immediateDepth = 0
const maxImmediateDepth = 64

const startWork = <A, E, R>(runtime: Runtime.Runtime<R>, self: Effect.Effect<A, E, R>): Fiber.RuntimeFiber<A, E> => {
  if (immediateDepth >= maxImmediateDepth) return Runtime.runFork(runtime, self, { immediate: false })
  immediateDepth++
  try {
    return Runtime.runFork(runtime, self)
  } finally {
    immediateDepth--
  }
}

/**
 * Runs `self` with the tighter deadline and a timer. The common path runs it on the caller's own
 * fiber (`internal/timedRun.ts`); a caller with live child fibers of its own (which interrupting
 * the caller would reach) runs it on a forked fiber instead. Inside an uninterruptible region the
 * work is not cut short: it only gets the deadline.
 */
const run = <A, E, R>(self: Effect.Effect<A, E, R>, prepared: Prepared): Effect.Effect<A, E | TimeoutError, R> => {
  // built once per guarded effect: the part of the timed run that is the same every time
  const guarded = new Timed.Guarded(self)
  return Effect.withFiberRuntime<A, E | TimeoutError, R>((parent, status) => {
    const clock = Context.get(parent.currentDefaultServices, ClockTag)
    const now = clock.unsafeCurrentTimeMillis()
    const deadline = parent.getFiberRef(currentDeadline)
    const effective = internal.clamp(prepared.millis, deadline, now)
    if (effective === Infinity) return self
    if (effective <= 0) return timedOut(prepared, Math.max(0, effective))
    const inner = internal.nested(deadline, now, effective)
    if (!RuntimeFlags.interruption(status.runtimeFlags)) return Effect.locally(self, currentDeadline, inner)
    if (!Timed.usable(parent)) return runForked(self, prepared, parent, status, clock, inner, now, effective)
    return Timed.runTimed<A, E | TimeoutError, R>(
      parent,
      guarded,
      currentDeadline,
      deadline,
      inner,
      effective,
      now,
      clock,
      internal.liveScheduler(clock),
      prepared,
      expired
    )
  })
}

/** The `TimeoutError` of a timed run whose timer fired (`Timed.OnTimeout`). */
const expired: Timed.OnTimeout = (prepared: Prepared, millis, armedAt, firedAt) =>
  timedOut(prepared, millis, { armedAt, firedAt })

/**
 * Starts `self` at once on a fiber of its own (so it can be interrupted without touching the
 * caller's children), with the caller's context, flags and fiber refs plus the tighter deadline.
 * Work that completes synchronously is finished before a timer is even armed.
 */
const runForked = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  prepared: Prepared,
  parent: Fiber.RuntimeFiber<A, E | TimeoutError>,
  status: FiberStatus.Running,
  clock: Clock.Clock,
  inner: number,
  now: number,
  effective: number
): Effect.Effect<A, E | TimeoutError, R> => {
  const parentId = parent.id()
  const runtime = Runtime.make({
    context: parent.currentContext as Context.Context<R>,
    runtimeFlags: status.runtimeFlags,
    fiberRefs: FiberRefs.updateAs(parent.getFiberRefs(), { fiberId: parentId, fiberRef: currentDeadline, value: inner })
  })
  const work = startWork(runtime, self)
  const early = work.unsafePoll()
  // synchronous work is done already: no timer, no suspension of the caller
  if (early !== null) return join(work, early)
  const scheduler = internal.liveScheduler(clock)
  const timeout = Duration.millis(effective)
  // until the wait below is registered, stop the work if the caller ends first
  const orphaned = () => work.unsafeInterruptAsFork(parentId)
  parent.addObserver(orphaned)
  return Effect.async<A, E | TimeoutError>((resume) => {
    parent.removeObserver(orphaned)
    // when the timer fired (Clock millis), or -1 while it has not: a late timer means lag
    let firedAt = -1
    const expire = () => {
      firedAt = clock.unsafeCurrentTimeMillis()
      work.unsafeInterruptAsFork(parentId)
    }
    const onExit = (exit: Exit.Exit<A, E>): Effect.Effect<A, E | TimeoutError> =>
      firedAt >= 0 && Exit.isFailure(exit) && Cause.isInterrupted(exit.cause)
        ? timedOut(prepared, effective, { armedAt: now, firedAt })
        : join(work, exit)
    if (scheduler !== undefined) {
      const cancel = scheduler.unsafeSchedule(expire, timeout)
      work.addObserver((exit) => {
        if (firedAt < 0) cancel()
        resume(onExit(exit))
      })
      return Effect.suspend(() => {
        cancel()
        return Fiber.interrupt(work)
      })
    }
    // any other clock (TestClock): the timer is a fiber sleeping on the clock
    const timer = Runtime.runFork(
      runtime,
      Effect.interruptible(Effect.zipRight(clock.sleep(timeout), Effect.sync(expire)))
    )
    work.addObserver((exit) => resume(Effect.zipRight(Fiber.interrupt(timer), onExit(exit))))
    return Effect.zipRight(Fiber.interrupt(timer), Fiber.interrupt(work))
  })
}

/** The work's result, with the fiber refs it changed flowing back to the caller (as `Fiber.join` does). */
const join = <A, E>(work: Fiber.RuntimeFiber<A, E>, exit: Exit.Exit<A, E>): Effect.Effect<A, E> =>
  Exit.isSuccess(exit) ? Effect.zipRight(Fiber.inheritAll(work), exit) : exit

const isOptionsFirst = (args: ReadonlyArray<unknown>) => Effect.isEffect(args[0])

const apply =
  (prepared: Prepared | InvalidOptionsError) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimeoutError, R> =>
    prepared instanceof InvalidOptionsError ? Effect.die(prepared) : run(self, prepared)

/**
 * Fails with `TimeoutError` (carrying the duration that was armed) if `self` has not finished
 * within `duration`, and interrupts it — its finalizers run before the failure is returned.
 * Inside a deadline the duration is clamped to what remains; when nothing remains the work is
 * not started. A `duration` that is negative, `NaN` or not a duration is a defect
 * (`InvalidOptionsError`).
 *
 * Fiber-ref changes made by the work flow back to the caller when it succeeds (as with
 * `Effect.timeout`), not when it fails. Work that is uninterruptible when time is up runs to its
 * end first; the caller then receives the `TimeoutError`, as `Effect.timeout` does. Inside an
 * uninterruptible region the work is not cut short at all.
 *
 * @since 0.1.0
 * @category combinators
 */
export const within: {
  (
    duration: Duration.DurationInput | TimeoutOptions
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput | TimeoutOptions
  ): Effect.Effect<A, E | TimeoutError, R>
} = ((...args: ReadonlyArray<any>) => {
  // the options are decoded once, when the combinator is built, not on every run
  if (isOptionsFirst(args)) return apply(prepare("Timeout.within", args[1]))(args[0])
  return apply(prepare("Timeout.within", args[0]))
}) as any

/**
 * Starts a deadline budget of `total` for `self`: `self` fails with `TimeoutError` when the
 * budget is spent, every `within` inside it is clamped to what remains, and `remaining` reports
 * it. A nested deadline can shorten the budget, never extend it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const deadline: {
  (
    total: Duration.DurationInput | TimeoutOptions
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    total: Duration.DurationInput | TimeoutOptions
  ): Effect.Effect<A, E | TimeoutError, R>
} = ((...args: ReadonlyArray<any>) => {
  if (isOptionsFirst(args)) return apply(prepare("Timeout.deadline", deadlineOptions(args[1])))(args[0])
  return apply(prepare("Timeout.deadline", deadlineOptions(args[0])))
}) as any

const deadlineOptions = (total: Duration.DurationInput | TimeoutOptions): TimeoutOptions =>
  typeof total === "object" && total !== null && "duration" in total
    ? { duration: total.duration, operation: total.operation ?? "deadline" }
    : { duration: total as Duration.DurationInput, operation: "deadline" }

/**
 * What is left of the current deadline, or `None` outside any deadline or `within`.
 *
 * @since 0.1.0
 * @category getters
 */
export const remaining: Effect.Effect<Option.Option<Duration.Duration>> = Effect.clockWith((clock) =>
  Effect.map(FiberRef.get(currentDeadline), (deadline) => {
    const left = internal.remaining(deadline, clock.unsafeCurrentTimeMillis())
    return left === undefined ? Option.none() : Option.some(Duration.millis(left))
  })
)
