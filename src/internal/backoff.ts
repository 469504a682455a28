/**
 * Delay arithmetic for the backoff schedules, as pure functions over milliseconds. `attempt` is
 * the zero-based index of the retry being scheduled (0 = the delay before the first retry).
 * Randomness is passed in as a number in [0, 1) so the caller decides where it comes from.
 */

/** How a delay is randomised: not at all, fully, half-and-half, or by a symmetric fraction. */
export type Jitter = "none" | "full" | "equal" | number

/** `base + step · attempt`, capped. */
export const linear = (attempt: number, base: number, step: number, cap: number): number =>
  Math.min(cap, base + step * attempt)

/** `base · factor^attempt`, capped (the cap also guards against overflow to Infinity). */
export const exponential = (attempt: number, base: number, factor: number, cap: number): number => {
  const delay = base * Math.pow(factor, attempt)
  return Number.isFinite(delay) ? Math.min(cap, delay) : cap
}

/** The Fibonacci state: the two most recent multiples of the base. */
export interface FibonacciState {
  readonly previous: number
  readonly current: number
}

/** The first Fibonacci state: `base, base, 2·base, 3·base, 5·base, …`. */
export const fibonacciInitial = (base: number): FibonacciState => ({ previous: 0, current: base })

/** The delay for this state and the state for the next retry. */
export const fibonacci = (state: FibonacciState, cap: number): readonly [number, FibonacciState] => [
  Math.min(cap, state.current),
  { previous: state.current, current: Math.min(cap, state.previous + state.current) }
]

/**
 * Decorrelated jitter: `min(cap, base + random · (3 · previous − base))`, i.e. uniform in
 * `[base, 3 · previous)`, starting with `previous = base`.
 */
export const decorrelated = (previous: number, base: number, cap: number, random: number): number => {
  const upper = Math.max(base, previous * 3)
  return Math.min(cap, base + random * (upper - base))
}

/**
 * Applies jitter to a delay:
 * - `"none"`: the delay itself;
 * - `"full"`: uniform in `[0, delay)`;
 * - `"equal"`: `delay / 2` plus uniform in `[0, delay / 2)`;
 * - a fraction `f`: uniform in `[delay · (1 − f), delay · (1 + f))`.
 */
export const jitter = (delay: number, mode: Jitter, random: number): number => {
  switch (mode) {
    case "none":
      return delay
    case "full":
      return delay * random
    case "equal":
      return delay / 2 + (delay / 2) * random
    default:
      return delay * (1 - mode + 2 * mode * random)
  }
}

/** Whether a retry `delay` millis from now still starts within `maxElapsed` of `start`. */
export const withinElapsed = (start: number, now: number, delay: number, maxElapsed: number): boolean =>
  now - start + delay <= maxElapsed

/** The delay to use when the failure asks to wait at least `retryAfter`. */
export const atLeast = (delay: number, retryAfter: number | undefined): number =>
  retryAfter === undefined ? delay : Math.max(delay, retryAfter)
