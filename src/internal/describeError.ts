/**
 * A short, log-friendly description of a failure: `Tag: message` for tagged errors and `Error`s,
 * JSON for other plain objects, `String(u)` for the rest (and when JSON fails, e.g. cycles).
 */
export const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : undefined
    const message = "message" in error && typeof error.message === "string" ? error.message : undefined
    if (tag !== undefined || message !== undefined) return [tag, message].filter(Boolean).join(": ")
    try {
      return JSON.stringify(error) ?? String(error)
    } catch {
      return String(error)
    }
  }
  return String(error)
}
