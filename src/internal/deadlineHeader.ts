/**
 * The deadline budget on the wire: milliseconds in a plain header (`x-request-timeout: 250`), or
 * gRPC's `grpc-timeout` (at most 8 digits and a unit: `H` hours, `M` minutes, `S` seconds, `m`
 * millis, `u` micros, `n` nanos).
 */

/** How a budget is written: whole milliseconds, or gRPC's `grpc-timeout` format. */
export type Format = "millis" | "grpc"

const GRPC_MAX = 99_999_999

/** The header value for a budget of `millis` (≥ 0; sub-millisecond parts are dropped). */
export const format = (millis: number, fmt: Format): string => {
  const ms = Math.max(0, Math.floor(millis))
  if (fmt === "millis") return String(ms)
  // the finest unit whose value fits in 8 digits
  if (ms <= GRPC_MAX) return `${ms}m`
  const seconds = Math.ceil(ms / 1000)
  if (seconds <= GRPC_MAX) return `${seconds}S`
  return `${Math.min(GRPC_MAX, Math.ceil(seconds / 3600))}H`
}

const GRPC_UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }

/**
 * The budget in millis a header value carries, or `undefined` when it is malformed: plain
 * non-negative millis, or a `grpc-timeout` value (1–8 digits and a unit).
 */
export const parse = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d{1,15}$/.test(text)) return Number(text)
  const grpc = /^(\d{1,8})([HMSmun])$/.exec(text)
  return grpc === null ? undefined : Number(grpc[1]) * GRPC_UNITS[grpc[2]]
}
