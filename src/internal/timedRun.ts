/**
 * A timed run on the caller's own fiber: no fiber and no Runtime per call.
 *
 * The work runs as `uninterruptible(matchCause(interruptible(work)))`, so the outcome handler runs
 * however the work ends. When time is up the timer interrupts the caller's fiber with an
 * interruptor id made for this run alone. The interruption unwinds the work only — its finalizers
 * run, as with any interruption — and stops at the handler, which is uninterruptible: there the
 * run takes back exactly its own interruption, by identity, from the fiber's pending
 * interruptions (any other interruptor, an enclosing timeout or the caller's parent, stays and
 * takes effect as usual), and answers with the timeout. The clean-up is one step after the handler,
 * so the fiber has taken in every interruption sent to it before the clean-up looks.
 *
 * On the host's clock the timer is a push on the shared timer heap at the start (`timerHeap.ts`),
 * taken off when the work ends first. On another live clock it is armed only once the current
 * synchronous stretch is over (a microtask after the start), with what is left of the budget then,
 * so synchronous work never arms a host timer of its own.
 *
 * Fiber refs: the work runs with the tighter deadline, which is always undone afterwards. Other
 * changes the work makes stay on success and are undone on failure, as when a forked fiber is
 * joined only on success.
 *
 * Beyond the public `RuntimeFiber` interface this reads, from the running fiber itself (as Effect's
 * own operators do): `setFiberRef` / `setFiberRefs`, its refs (`_fiberRefs`, swapped in place
 * between two values that differ in the deadline alone, which the fiber's caches do not derive
 * from), its children (an interruption reaches every
 * child, so a caller with children of its own is not run this way) and its request-batching steps
 * (a batched request moves the rest of the fiber's stack to another fiber). `usable` says whether
 * all of them are there; when it says no, the caller runs the work on a forked fiber instead.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import type * as FiberRefs from "effect/FiberRefs"
import * as GlobalValue from "effect/GlobalValue"
import { isHostClock, type LiveScheduler } from "./deadline.js"
import * as TimerHeap from "./timerHeap.js"

/** The running fiber as its own code sees it (Effect 3's FiberRuntime). */
interface OwnFiber extends Fiber.RuntimeFiber<unknown, unknown> {
  setFiberRef<X>(fiberRef: FiberRef.FiberRef<X>, value: X): void
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  readonly _children: ReadonlySet<unknown> | null
  readonly _steps: ReadonlyArray<unknown>
  _fiberRefs: FiberRefs.FiberRefs
}

/**
 * Set when the key below was not registered by Effect (another version, a renamed key): the ref
 * made here would then not be the fiber's, a take-back would do nothing, and no run may use it.
 */
let notEffects = false

/** The fiber's pending interruptions: Effect 3 keeps them in a FiberRef registered under this key. */
export const interruptedCause: FiberRef.FiberRef<Cause.Cause<never>> = GlobalValue.globalValue(
  Symbol.for("effect/FiberRef/currentInterruptedCause"),
  () => {
    notEffects = true
    return FiberRef.unsafeMake<Cause.Cause<never>>(Cause.empty, { fork: () => Cause.empty, join: (parent) => parent })
  }
)

/**
 * Whether the work can run on `fiber` itself: Effect's own ref of pending interruptions was found,
 * the fiber has the methods used here, no live child
 * (a timeout's interruption would reach it) and no request-batching step in progress.
 */
export const usable = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => {
  if (notEffects) return false
  const own = fiber as OwnFiber
  if (typeof own.setFiberRef !== "function" || typeof own.setFiberRefs !== "function") return false
  if (own._fiberRefs === undefined) return false
  const children = own._children
  if (children === undefined || (children !== null && children.size > 0)) return false
  const steps = own._steps
  return Array.isArray(steps) && steps.length === 0
}

/** `cause` without the interruptions by `id` (compared by identity); the same object when it has none. */
export const withoutInterruptionsBy = (cause: Cause.Cause<never>, id: FiberId.FiberId): Cause.Cause<never> => {
  switch (cause._tag) {
    case "Interrupt":
      return cause.fiberId === id ? Cause.empty : cause
    case "Sequential":
    case "Parallel": {
      const left = withoutInterruptionsBy(cause.left, id)
      const right = withoutInterruptionsBy(cause.right, id)
      if (left === cause.left && right === cause.right) return cause
      if (Cause.isEmptyType(left)) return right
      if (Cause.isEmptyType(right)) return left
      return cause._tag === "Sequential" ? Cause.sequential(left, right) : Cause.parallel(left, right)
    }
    default:
      return cause
  }
}

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
 * timer. Transient: the microtask that the first push schedules empties it, so no run stays here
 * past the stretch it started in.
 */
let toArm: Array<TimedRun<any, any, any>> = []

const armPending = (): void => {
  const runs = toArm
  toArm = []
  for (let i = 0; i < runs.length; i++) runs[i].arm()
}

/**
 * The failure a run returns when its time is up: given the run's `tag` (what the caller passed,
 * opaque here), its budget in millis, when it started and when the timer fired (Clock millis).
 */
export type OnTimeout = (tag: any, millis: number, startedAt: number, firedAt: number) => Effect.Effect<never, any>

/**
 * An effect timed again and again (built once per guarded effect): the work wrapped in
 * `Effect.interruptible`, and the fiber refs its last run started with, before and after its
 * deadline was set. A run on the same fiber, from the same refs, with the same deadline (a caller
 * in a loop, within the same millisecond) takes those refs again instead of copying the fiber's
 * refs to set the deadline. Fiber refs are immutable values: sharing them is safe. The fiber is
 * known by its id alone: a guarded effect kept for later must not keep a fiber that has ended.
 */
export class Guarded<A, E, R> {
  readonly interruptibleSelf: Effect.Effect<A, E, R>
  /** the id of the fiber the last run set its deadline on (−1: none yet) */
  fiberId = -1
  before: FiberRefs.FiberRefs | undefined = undefined
  inner = Number.NaN
  withDeadline: FiberRefs.FiberRefs | undefined = undefined
  constructor(self: Effect.Effect<A, E, R>) {
    this.interruptibleSelf = Effect.interruptible(self)
  }
}

/** One timed run, with the state its timer and its outcome handlers share. */
class TimedRun<A, E, R> {
  /** this run's interruptor, made when time is up: compared by identity, never shared */
  id: FiberId.FiberId | undefined = undefined
  /** when the timer fired (Clock millis), or -1 while it has not */
  firedAt = -1
  done = false
  cancel: (() => unknown) | undefined = undefined
  /** the timer fiber on a clock that is not the live one */
  timer: Fiber.RuntimeFiber<void> | undefined = undefined
  /** the fiber refs before the run, and right after the deadline was set */
  readonly before: FiberRefs.FiberRefs
  readonly withDeadline: FiberRefs.FiberRefs

  constructor(
    guarded: Guarded<A, E, R>,
    readonly fiber: OwnFiber,
    readonly deadlineRef: FiberRef.FiberRef<number>,
    readonly outerDeadline: number,
    innerDeadline: number,
    /** the budget in millis, from `startedAt` (Clock millis) */
    readonly millis: number,
    readonly startedAt: number,
    readonly clock: Clock.Clock,
    /** the live clock's timers, or `undefined` for any other clock (the timer is then a fiber) */
    readonly scheduler: LiveScheduler | undefined,
    readonly tag: unknown,
    readonly onTimeout: OnTimeout
  ) {
    // the fiber's own refs, read without `getFiberRefs()`, which copies them on every call
    const before = this.before = fiber._fiberRefs
    if (innerDeadline !== outerDeadline) {
      const fiberId = fiber.id().id
      if (guarded.fiberId === fiberId && guarded.before === before && guarded.inner === innerDeadline) {
        // refs that differ from the current ones in the deadline alone: the fiber's caches of its
        // services, scheduler and context stay valid, so they are not refreshed
        fiber._fiberRefs = guarded.withDeadline!
      } else {
        fiber.setFiberRef(deadlineRef, innerDeadline)
        guarded.fiberId = fiberId
        guarded.before = before
        guarded.inner = innerDeadline
        guarded.withDeadline = fiber._fiberRefs
      }
    }
    this.withDeadline = fiber._fiberRefs
  }

  /** the timer heap's fields (`timerHeap.ts`), used on the host's own clock */
  due = 0
  queued = false
  fire(): void {
    this.expire()
  }

  expire(): void {
    if (this.done || this.firedAt >= 0) return
    this.firedAt = this.clock.unsafeCurrentTimeMillis()
    this.fiber.unsafeInterruptAsFork(this.id = FiberId.runtime(-1, this.firedAt))
  }

  arm(): void {
    if (this.done) return
    const left = Math.max(0, this.startedAt + this.millis - this.clock.unsafeCurrentTimeMillis())
    // on the host's own clock one shared timer serves every run; any other clock gets its own
    if (isHostClock(this.clock)) TimerHeap.schedule(this, left)
    else this.cancel = this.scheduler!.unsafeSchedule(expireOf(this), Duration.millis(left))
  }

  /** Arms the timer (or schedules its arming) and returns the guarded work. */
  start(interruptibleSelf: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    const work = Effect.uninterruptible(Effect.matchCauseEffect(interruptibleSelf, handlersOf(this)))
    if (this.scheduler !== undefined) {
      // the host's clock: a push on the shared timer heap now costs less than a microtask to
      // defer it, and the whole budget is left (the clock was read just now)
      if (isHostClock(this.clock)) TimerHeap.schedule(this, this.millis)
      else if (toArm.push(this) === 1) queueMicrotask(armPending)
      return work
    }
    // any other clock (TestClock): the timer is a fiber sleeping on the clock
    const sleep = Effect.zipRight(this.clock.sleep(Duration.millis(this.millis)), Effect.sync(expireOf(this)))
    return Effect.flatMap(Effect.forkDaemon(Effect.interruptible(sleep)), (timer) => {
      this.timer = timer
      return work
    })
  }

  /** Stops the timer; the result once a timer fiber (if any) is gone. */
  private finish<X, Y>(result: Effect.Effect<X, Y>): Effect.Effect<X, Y> {
    this.done = true
    if (this.queued) TimerHeap.cancel(this)
    else if (this.cancel !== undefined) this.cancel()
    return this.timer === undefined ? result : Effect.zipRight(Fiber.interrupt(this.timer), result)
  }

  succeeded(a: A): Effect.Effect<A, E, R> {
    if (this.firedAt >= 0) return Effect.suspend(() => this.expired(Exit.succeed(a)))
    this.keepChanges()
    return this.finish(Exit.succeed(a))
  }

  failed(cause: Cause.Cause<E>): Effect.Effect<A, E, R> {
    if (this.firedAt >= 0) return Effect.suspend(() => this.expired(Exit.failCause(cause)))
    this.undoChanges(this.fiber.getFiberRef(interruptedCause))
    return this.finish(Exit.failCause(cause))
  }

  /** After a success: the work's fiber-ref changes stay, its deadline goes. */
  private keepChanges(): void {
    const fiber = this.fiber
    // a pointer swap when the work changed nothing else
    if (fiber._fiberRefs === this.withDeadline) {
      // the refs differ from those before in the deadline alone (see the constructor)
      if (this.withDeadline !== this.before) fiber._fiberRefs = this.before
    } else if (fiber.getFiberRef(this.deadlineRef) !== this.outerDeadline) {
      fiber.setFiberRef(this.deadlineRef, this.outerDeadline)
    }
  }

  /** After a failure: the work's fiber-ref changes are undone; `pending` interruptions are kept. */
  private undoChanges(pending: Cause.Cause<never>): void {
    const fiber = this.fiber
    fiber.setFiberRefs(this.before)
    if (!Cause.isEmptyType(pending)) fiber.setFiberRef(interruptedCause, pending)
  }

  /**
   * The end of a run whose timer fired, a step after the handler: the fiber has taken in the
   * timer's interruption by now, and this run takes it back. A result the work finished with
   * stands (the interruption came too late to stop it); an interruption by this run alone
   * becomes the timeout; any other pending interruption is kept and goes on.
   */
  private expired(exit: Exit.Exit<A, E>): Effect.Effect<A, E> {
    const id = this.id!
    const fiber = this.fiber
    const left = withoutInterruptionsBy(fiber.getFiberRef(interruptedCause), id)
    if (Exit.isSuccess(exit)) {
      fiber.setFiberRef(interruptedCause, left)
      this.keepChanges()
      return this.finish(exit)
    }
    this.undoChanges(left)
    if (!Cause.isInterrupted(exit.cause)) return this.finish(exit)
    if (!Cause.isEmptyType(left)) {
      const rest = withoutInterruptionsBy(exit.cause as Cause.Cause<never>, id)
      return this.finish(Exit.failCause(Cause.isEmptyType(rest) ? left : rest))
    }
    return this.finish(this.onTimeout(this.tag, this.millis, this.startedAt, this.firedAt))
  }
}

/**
 * Runs the work on the current fiber, which `usable` accepted and which is interruptible; must be
 * called by the fiber itself, from `Effect.withFiberRuntime`. `guarded` is the work (built once per
 * guarded effect, not per run). The work runs under `innerDeadline`; `onTimeout(tag, …)` is the
 * failure when time is up.
 */
export const runTimed = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  guarded: Guarded<A, E, R>,
  deadlineRef: FiberRef.FiberRef<number>,
  outerDeadline: number,
  innerDeadline: number,
  millis: number,
  startedAt: number,
  clock: Clock.Clock,
  scheduler: LiveScheduler | undefined,
  tag: unknown,
  onTimeout: OnTimeout
): Effect.Effect<A, E, R> =>
  new TimedRun<A, E, R>(
    guarded,
    fiber as OwnFiber,
    deadlineRef,
    outerDeadline,
    innerDeadline,
    millis,
    startedAt,
    clock,
    scheduler,
    tag,
    onTimeout
  ).start(guarded.interruptibleSelf)
