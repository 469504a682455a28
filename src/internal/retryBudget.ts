/**
 * Retry budget accounting over a rolling window: retries may be at most `ratio` of the requests
 * seen in the window plus `minPerSecond` for every second of the window. Pure functions over a
 * mutable window, run by the caller inside one synchronous step.
 */
import * as RollingWindow from "./rollingWindow.js"

const REQUESTS = 0
const RETRIES = 1

export interface BudgetParams {
  readonly ratio: number
  readonly minPerSecond: number
  readonly windowMillis: number
}

export interface BudgetState {
  readonly window: RollingWindow.RollingWindow
}

export const make = (params: BudgetParams, buckets: number, now: number): BudgetState => ({
  window: RollingWindow.make(buckets, params.windowMillis / buckets, 2, now)
})

/** Counts one original request. */
export const recordRequest = (state: BudgetState, now: number): void => {
  RollingWindow.add(state.window, now, REQUESTS, 1)
}

/** How many retries the window allows in total right now. */
export const capacity = (state: BudgetState, params: BudgetParams): number =>
  params.ratio * RollingWindow.sum(state.window, REQUESTS) + params.minPerSecond * (params.windowMillis / 1000)

/** Withdraws one retry if the budget allows it; `false` (and nothing recorded) when it is spent. */
export const tryRetry = (state: BudgetState, params: BudgetParams, now: number): boolean => {
  RollingWindow.advance(state.window, now)
  if (RollingWindow.sum(state.window, RETRIES) + 1 > capacity(state, params)) return false
  RollingWindow.add(state.window, now, RETRIES, 1)
  return true
}

export interface BudgetStats {
  readonly requests: number
  readonly retries: number
  readonly capacity: number
}

export const stats = (state: BudgetState, params: BudgetParams, now: number): BudgetStats => {
  RollingWindow.advance(state.window, now)
  return {
    requests: RollingWindow.sum(state.window, REQUESTS),
    retries: RollingWindow.sum(state.window, RETRIES),
    capacity: capacity(state, params)
  }
}
