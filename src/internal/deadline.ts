/**
 * Deadline arithmetic: a deadline is an absolute time in Clock millis (`Infinity` = none); a
 * timeout started at `now` is clamped to what is left of it.
 */

/** The timeout to arm: the requested millis, clamped to what remains of `deadline`. */
export const clamp = (requested: number, deadline: number, now: number): number => Math.min(requested, deadline - now)

/** The deadline the wrapped work runs under: never later than the enclosing one. */
export const nested = (deadline: number, now: number, effective: number): number => Math.min(deadline, now + effective)

/** What remains of `deadline` at `now` (never negative); `undefined` when there is no deadline. */
export const remaining = (deadline: number, now: number): number | undefined =>
  deadline === Infinity ? undefined : Math.max(0, deadline - now)
