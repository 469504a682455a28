/**
 * A timed run of an effect on the caller's own fiber: no fork, no Runtime per call.
 *
 * The work runs inside `uninterruptible(matchCause(interruptible(work)))`, so the outcome handler
 * runs however the work ends. The timer is armed only if the work is still running once the
 * current synchronous stretch is over (a microtask after the start), so synchronous work never
 * touches a timer. When time is up the timer interrupts the caller's fiber with an interruptor id
 * of this run's own; the handler, uninterruptible, sees the work interrupted by that id alone,
 * removes the interruption from the fiber and returns the timeout instead. Fiber-ref changes made
 * by the work stay on success (as `Fiber.join` would bring them back) and are undone on failure;
 * the deadline set for the work is always undone.
 *
 * Two things of Effect 3's fiber runtime are reached beyond the public `RuntimeFiber` interface:
 * the fiber's own `setFiberRef` / `setFiberRefs` (called only by the fiber itself, from the handler
 * and the setup step, as the runtime's own operators do) and the FiberRef holding the fiber's
 * interruptors, registered under a global key. A fiber with live children of its own is not run
 * this way (an interruption reaches every child of the interrupted fiber): the caller falls back
 * to a forked run.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import type * as FiberRefs from "effect/FiberRefs"
import * as GlobalValue from "effect/GlobalValue"
import type { LiveScheduler } from "./deadline.js"

/** The running fiber, as its own code sees it (Effect 3's FiberRuntime). */
export interface OwnFiber extends Fiber.RuntimeFiber<unknown, unknown> {
  setFiberRef<X>(fiberRef: FiberRef.FiberRef<X>, value: X): void
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  readonly _children: ReadonlySet<unknown> | null
}

/** The fiber's interruptors (Effect 3 keeps them in a FiberRef registered under this key). */
const interruptedCause: FiberRef.FiberRef<Cause.Cause<never>> = GlobalValue.globalValue(
  Symbol.for("effect/FiberRef/currentInterruptedCause"),
  () => FiberRef.unsafeMake<Cause.Cause<never>>(Cause.empty, { fork: () => Cause.empty, join: (parent) => parent })
)

/** Whether the fiber has live children, which an interruption of the fiber would reach too. */
export const hasChildren = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => {
  const children = (fiber as OwnFiber)._children
  return children !== null && children !== undefined && children.size > 0
}

/** Whether `cause` holds nothing but interruptions by `id` (compared by identity). */
const onlyInterruptedBy = (cause: Cause.Cause<unknown>, id: FiberId.FiberId): boolean => {
  switch (cause._tag) {
    case "Empty":
      return true
    case "Interrupt":
      return cause.fiberId === id
    case "Sequential":
    case "Parallel":
      return onlyInterruptedBy(cause.left, id) && onlyInterruptedBy(cause.right, id)
    default:
      return false
  }
}

/** `cause` without the interruption by `id`, when that is all it holds; otherwise `cause` unchanged. */
const withoutInterruptionBy = (cause: Cause.Cause<never>, id: FiberId.FiberId): Cause.Cause<never> =>
  onlyInterruptedBy(cause, id) ? Cause.empty : cause

// Builds the outcome handlers from two arguments: closures passed as arguments stay anonymous,
// which measures cheaper than named ones under loaders that preserve function names (tsx).
const handlers = <A, E, R>(
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<A, E, R>,
  onSuccess: (a: A) => Effect.Effect<A, E, R>
) => ({ onFailure, onSuccess })

const handlersOf = <A, E, R>(run: TimedRun<A, E, R>) =>
  handlers<A, E, R>((cause) => run.failed(cause), (a) => run.succeeded(a))

const expireOf = (run: TimedRun<any, any, any>) => (): void => run.expire()

/**
 * Runs waiting for the end of the current synchronous stretch, when those still running arm their
 * timer. Transient: it is emptied by the microtask that one push schedules, and no run stays in it
 * past that.
 */
let toArm: Array<TimedRun<any, any, any>> = []

const armPending = (): void => {
  const runs = toArm
  toArm = []
  for (const run of runs) run.arm()
}

/**
 * One timed run, with the state its timer and its outcome handlers share. `onTimeout` builds the
 * failure returned when time is up.
 */
export class TimedRun<A, E, R> {
  /** this run's interruptor, made when time is up: compared by identity, never shared */
  id: FiberId.FiberId | undefined = undefined
  expired = false
  /** when the timer fired (Clock millis): a late timer means lag */
  firedAt = -1
  done = false
  cancel: (() => unknown) | undefined = undefined
  /** the timer fiber on a clock that is not the live one */
  timer: Fiber.RuntimeFiber<void> | undefined = undefined
  snapshot: FiberRefs.FiberRefs | undefined = undefined
  withDeadline: FiberRefs.FiberRefs | undefined = undefined

  constructor(
    readonly fiber: OwnFiber,
    readonly self: Effect.Effect<A, E, R>,
    readonly deadlineRef: FiberRef.FiberRef<number>,
    readonly outerDeadline: number,
    readonly innerDeadline: number,
    readonly millis: number,
    readonly clock: Clock.Clock,
    readonly scheduler: LiveScheduler | undefined,
    readonly onTimeout: (firedAt: number) => Effect.Effect<never, E>
  ) {}

  expire(): void {
    if (this.done) return
    this.expired = true
    this.firedAt = this.clock.unsafeCurrentTimeMillis()
    this.fiber.unsafeInterruptAsFork(this.id = FiberId.runtime(-1, 0))
  }

  arm(): void {
    if (!this.done) this.cancel = this.scheduler!.unsafeSchedule(expireOf(this), Duration.millis(this.millis))
  }

  /** The uninterruptible part: sets the deadline, arms the timer, runs the work interruptibly. */
  start(): Effect.Effect<A, E, R> {
    const fiber = this.fiber
    this.snapshot = fiber.getFiberRefs()
    fiber.setFiberRef(this.deadlineRef, this.innerDeadline)
    this.withDeadline = fiber.getFiberRefs()
    const work = Effect.matchCauseEffect(Effect.interruptible(this.self), handlersOf(this))
    if (this.scheduler !== undefined) {
      if (toArm.push(this) === 1) queueMicrotask(armPending)
      return work
    }
    // any other clock (TestClock): the timer is a fiber sleeping on the clock
    return Effect.flatMap(
      Effect.forkDaemon(
        Effect.interruptible(
          Effect.zipRight(this.clock.sleep(Duration.millis(this.millis)), Effect.sync(expireOf(this)))
        )
      ),
      (timer) => {
        this.timer = timer
        return work
      }
    )
  }

  private end(): boolean {
    this.done = true
    if (this.cancel !== undefined) this.cancel()
    return this.expired
  }

  succeeded(a: A): Effect.Effect<A, E, R> {
    const fiber = this.fiber
    if (this.end()) {
      fiber.setFiberRef(interruptedCause, withoutInterruptionBy(fiber.getFiberRef(interruptedCause), this.id!))
    }
    // the work's fiber-ref changes stay; its deadline goes (a pointer swap when nothing else changed)
    if (fiber.getFiberRefs() === this.withDeadline) fiber.setFiberRefs(this.snapshot!)
    else fiber.setFiberRef(this.deadlineRef, this.outerDeadline)
    return this.timer === undefined ? Effect.succeed(a) : Effect.as(Fiber.interrupt(this.timer), a)
  }

  failed(cause: Cause.Cause<E>): Effect.Effect<A, E, R> {
    const fiber = this.fiber
    const expired = this.end()
    const interruptors = fiber.getFiberRef(interruptedCause)
    const left = expired ? withoutInterruptionBy(interruptors, this.id!) : interruptors
    // the work's fiber-ref changes are undone, as when a forked fiber fails and is not joined
    fiber.setFiberRefs(this.snapshot!)
    if (!Cause.isEmpty(left)) fiber.setFiberRef(interruptedCause, left)
    const result = expired && Cause.isEmpty(left) && Cause.isInterrupted(cause)
      ? this.onTimeout(this.firedAt)
      : Effect.failCause(cause)
    return this.timer === undefined ? result : Effect.zipRight(Fiber.interrupt(this.timer), result)
  }
}

/** Runs `run.start()` uninterruptibly (the work inside is interruptible again). */
export const runTimed = <A, E, R>(run: TimedRun<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.uninterruptible(Effect.suspend(() => run.start()))
