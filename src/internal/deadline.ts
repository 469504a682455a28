/**
 * Deadline arithmetic: a deadline is an absolute time in Clock millis (`Infinity` = none); a
 * timeout started at `now` is clamped to what is left of it.
 */
import * as Clock from "effect/Clock"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"

/** The current fiber's deadline; a child's tighter deadline never flows back into its parent. */
export const currentDeadline: FiberRef.FiberRef<number> = FiberRef.unsafeMake(Infinity, {
  fork: (parent) => parent,
  join: (parent) => parent
})

/** The timeout to arm: the requested millis, clamped to what remains of `deadline`. */
export const clamp = (requested: number, deadline: number, now: number): number => Math.min(requested, deadline - now)

/** The deadline the wrapped work runs under: never later than the enclosing one. */
export const nested = (deadline: number, now: number, effective: number): number => Math.min(deadline, now + effective)

/** What remains of `deadline` at `now` (never negative); `undefined` when there is no deadline. */
export const remaining = (deadline: number, now: number): number | undefined =>
  deadline === Infinity ? undefined : Math.max(0, deadline - now)

/**
 * A timer firing later than this after its due time means the event loop, not the work, was slow:
 * a quarter of the budget, and never less than 25 ms (ordinary timer jitter on a busy host).
 */
export const lagAllowance = (budget: number): number => Math.max(25, budget / 4)

/**
 * Why an armed timeout expired: `"lag"` when its timer fired more than `lagAllowance` late (the
 * process was blocked, an answer may have been waiting unread), `"deadline"` when the enclosing
 * deadline shortened the requested timeout, otherwise `"timeout"`.
 */
export const expiryReason = (
  requested: number,
  effective: number,
  armedAt: number,
  firedAt: number
): "timeout" | "deadline" | "lag" => {
  if (firedAt - (armedAt + effective) > lagAllowance(effective)) return "lag"
  return effective < requested ? "deadline" : "timeout"
}

/** Whether a retry `delay` millis from `now` would start after the deadline. */
export const pastDeadline = (deadline: number, now: number, delay: number): boolean => now + delay >= deadline

/** The timer half of the live clock's scheduler. */
export interface LiveScheduler {
  readonly unsafeSchedule: Clock.ClockScheduler["unsafeSchedule"]
}

/**
 * The live clock's timer scheduler, or `undefined` for any other clock (`TestClock` included):
 * the live clock has a `scheduler()` method whose effect is an already-completed `Exit`.
 */
export const liveScheduler = (clock: Clock.Clock): LiveScheduler | undefined => {
  // one clock is in use almost always: its answer is kept
  if (clock === lastClock) return lastScheduler
  lastScheduler = lookUpScheduler(clock)
  lastClock = clock
  return lastScheduler
}

let lastClock: Clock.Clock | undefined = undefined
let lastScheduler: LiveScheduler | undefined = undefined

const lookUpScheduler = (clock: Clock.Clock): LiveScheduler | undefined => {
  const scheduler = (clock as { readonly scheduler?: unknown }).scheduler
  if (typeof scheduler !== "function") return undefined
  const effect = scheduler.call(clock) as unknown
  return Exit.isExit(effect) && Exit.isSuccess(effect) ? effect.value as LiveScheduler : undefined
}

let hostClockClass: (abstract new(...args: Array<any>) => unknown) | undefined = undefined

/**
 * Whether `clock` is Effect's live clock (an instance of the class `Clock.make` builds), whose
 * timers are the host's `setTimeout`: not `TestClock`, and not a clock written by hand.
 */
export const isHostClock = (clock: Clock.Clock): boolean =>
  clock instanceof (hostClockClass ??= Object.getPrototypeOf(Clock.make()).constructor as new() => unknown)
