/**
 * How a breaker counts an outcome: the one place that decides success, failure or neither, for
 * `protect` (from the effect's cause) and for a permit's `failure(reason)`.
 */
import * as Cause from "effect/Cause"
import * as Option from "effect/Option"
import { TimeoutError } from "../../Errors.js"

export const SUCCESS = 0
export const FAILURE = 1
export const IGNORE = 2
export type Outcome = typeof SUCCESS | typeof FAILURE | typeof IGNORE

/**
 * A failure with `error`: a `TimeoutError` fails (the downstream did not answer in time, whatever
 * `isFailure` says) unless it is self-inflicted — the caller's own deadline (`reason: "deadline"`) or
 * this process's event-loop lag (`reason: "lag"`) ended the wait, which says nothing about the
 * downstream and counts as neither; an excluded error counts as neither; otherwise `isFailure`
 * decides, and `false` counts as a success (the downstream answered, e.g. a 404).
 */
export const classifyError = <E>(
  error: E,
  isFailure: (error: E) => boolean,
  isExcluded: ((error: unknown) => boolean) | undefined
): Outcome => {
  if (error instanceof TimeoutError) return error.selfInflicted ? IGNORE : FAILURE
  if (isExcluded !== undefined && isExcluded(error)) return IGNORE
  return isFailure(error) ? FAILURE : SUCCESS
}

/**
 * A failed effect: interruption alone counts as neither (the caller went away, the downstream said
 * nothing); a defect fails; a typed failure is classified by `classifyError`.
 */
export const classifyCause = <E>(
  cause: Cause.Cause<E>,
  isFailure: (error: E) => boolean,
  isExcluded: ((error: unknown) => boolean) | undefined
): Outcome => {
  if (Cause.isInterruptedOnly(cause)) return IGNORE
  const failure = Cause.failureOption(cause)
  return Option.isNone(failure) ? FAILURE : classifyError(failure.value, isFailure, isExcluded)
}

const alwaysFails = () => true

/** A permit reported failed by its holder, who already decided the error is a failure. */
export const classifyReported = (reason: unknown): Outcome => classifyError(reason, alwaysFails, undefined)

/** What a failure records as its reason: the error, or the defect. */
export const reasonOf = <E>(cause: Cause.Cause<E>): unknown => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) ? failure.value : Cause.squash(cause)
}
