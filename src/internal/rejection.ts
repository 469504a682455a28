/**
 * The tags of the errors that mean "the protected work never ran". Kept apart from `Errors.ts` so
 * the retry classification can read them without importing the error classes.
 */
import * as Predicate from "effect/Predicate"

const rejectionTags: ReadonlySet<string> = new Set([
  "CircuitOpenError",
  "BulkheadFullError",
  "RateLimitedError",
  "OverloadedError",
  "TaskRunnerBusyError"
])

/** Whether `u` carries the tag of a rejection. */
export const hasRejectionTag = (u: unknown): boolean =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && rejectionTags.has(u._tag)
