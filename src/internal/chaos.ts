/**
 * Chaos injection decisions as plain state: the switch, the rate and the windows a schedule
 * opens. The shell reads the clock and draws from `Random`; these functions decide.
 *
 * A window opens each time the window schedule fires and stays open for `durationMillis`. The
 * schedule is stepped lazily, at the first decision at or after its next firing, with the firing
 * time as "now", so the windows are those of a driver that always runs on time, however seldom
 * decisions are made.
 */

/** The mutable state of one injector. */
export interface InjectorState {
  enabled: boolean
  rate: number
  /** calls seen while enabled, inside a window or not */
  decisions: number
  /** calls injected */
  injections: number
  readonly window: WindowState | undefined
}

/** Where the window schedule is. Times are Clock millis. */
export interface WindowState {
  readonly durationMillis: number
  /** the latest window: open in `[openFrom, openUntil)` */
  openFrom: number
  openUntil: number
  /** when the schedule fires next; `Infinity` once it is done */
  nextFire: number
  /** the schedule's own state, to step it from */
  scheduleState: unknown
}

export const makeWindow = (durationMillis: number, nextFire: number, scheduleState: unknown): WindowState => ({
  durationMillis,
  openFrom: -Infinity,
  openUntil: -Infinity,
  nextFire,
  scheduleState
})

/** Whether `now` falls in the latest window. */
export const isOpen = (window: WindowState, now: number): boolean => now >= window.openFrom && now < window.openUntil

/** Whether the schedule fired at or before `now` and must be stepped before deciding. */
export const isDue = (window: WindowState, now: number): boolean => now >= window.nextFire

/**
 * Records the firing at `window.nextFire` (a window opens there) and where the schedule goes
 * next. A schedule that does not move forward (its next firing is not after this one) is done:
 * it could only fire again at the same instant, forever.
 */
export const fire = (window: WindowState, next: number | undefined, scheduleState: unknown): void => {
  const at = window.nextFire
  window.openFrom = at
  window.openUntil = at + window.durationMillis
  window.nextFire = next === undefined || !(next > at) ? Infinity : next
  window.scheduleState = scheduleState
}

/** What the shell must do for one decision. */
export type Decision =
  /** not injected: run the effect untouched */
  | "skip"
  /** injected */
  | "inject"
  /** injected with probability `rate`: draw a uniform number and ask `accept` */
  | "draw"
  /** the window schedule is due: step it, then decide again */
  | "advance"

/**
 * The decision for a call at `now` (`now` is read only when there is a window). Counts the call
 * in `decisions` unless it returns `"advance"` (the shell decides again after stepping).
 */
export const decide = (state: InjectorState, now: number): Decision => {
  if (!state.enabled) return "skip"
  const window = state.window
  if (window !== undefined && isDue(window, now)) return "advance"
  state.decisions++
  if (window !== undefined && !isOpen(window, now)) return "skip"
  const rate = state.rate
  if (rate >= 1) return "inject"
  if (rate <= 0) return "skip"
  return "draw"
}

/** Polly's rule: a uniform draw in [0, 1) injects when it is below the rate. */
export const accept = (rate: number, uniform: number): boolean => uniform < rate
