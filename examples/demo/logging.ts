/**
 * The demo's log lines: the toolkit's log messages (breaker state changes, warnings) of every demo
 * process, as one short line each, shown above the live view and kept for the report.
 */
import { Cause, HashMap, Logger } from "effect"

export interface LogLine {
  /** Epoch milliseconds. */
  readonly at: number
  readonly level: string
  readonly message: string
}

/** One short line from a log call: its message, its annotations and the first line of its cause. */
export const format = ({ annotations, cause, date, logLevel, message }: Logger.Logger.Options<unknown>): LogLine => {
  const parts = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : JSON.stringify(m))
  // `lastErrors` and the breaker/from/to annotations repeat what the message already says
  const notes = HashMap.toEntries(annotations)
    .filter(([k]) => !["lastErrors", "breaker", "from", "to"].includes(k))
    .map(([k, v]) =>
      `${k}=${typeof v === "number" ? Math.round(v * 100) / 100 : typeof v === "string" ? v : JSON.stringify(v)}`
    )
  const failure = Cause.isEmpty(cause) ? [] : [Cause.pretty(cause).split("\n")[0]]
  const full = [...parts, ...notes, ...failure].join(" ")
  return {
    at: date.getTime(),
    level: logLevel.label,
    message: full.length > 200 ? full.slice(0, 197) + "..." : full
  }
}

/** A logger that hands every formatted line to `f`. */
export const make = (f: (line: LogLine) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => f(format(options)))
