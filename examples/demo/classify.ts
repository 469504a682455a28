/**
 * Maps an HTTP answer to the protection that produced it, by status code and JSON rejection body.
 */
import type { Outcome } from "./model.js"

export interface Classified {
  readonly outcome: Outcome
  readonly by: string
}

const parse = (body: string): unknown => {
  try {
    return JSON.parse(body)
  } catch {
    return undefined
  }
}

const str = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

const record = (u: unknown): Record<string, unknown> | undefined =>
  typeof u === "object" && u !== null && !Array.isArray(u) ? (u as Record<string, unknown>) : undefined

/** Collects every string that may name the rejecting error: `_tag`, `error`, `code`, `type`, `reason`, nested `error`. */
const rejectionFields = (json: unknown): { tags: Array<string>; obj: Record<string, unknown> } => {
  const top = record(json) ?? {}
  const nested = record(top.error) ?? {}
  const obj = { ...top, ...nested }
  const tags = [top._tag, top.error, top.code, top.type, nested._tag, nested.code, nested.type]
    .map(str)
    .filter((s): s is string => s !== undefined)
  return { tags, obj }
}

const has = (tags: ReadonlyArray<string>, ...needles: ReadonlyArray<string>) =>
  tags.some((t) => needles.some((n) => t.toLowerCase().includes(n.toLowerCase())))

/**
 * Classifies one answer. `status` 0 means the request failed at the network level. The rejection
 * body is `{ "error": { "code": "circuit_open" | "overloaded" | "max_connections" | "rate_limited" |
 * "timeout" | …, "route": …, "breaker"?: … } }`; a bare `_tag` of an error class is understood too.
 */
export const classify = (status: number, body: string): Classified => {
  if (status === 0) return { outcome: "failed", by: "network" }
  if (status >= 200 && status < 300) return { outcome: "ok", by: "ok" }
  const { obj, tags } = rejectionFields(parse(body))
  const code = str(obj.code) ?? str(obj._tag)
  if (status === 429 || has(tags, "RateLimited", "rate_limited")) {
    return { outcome: "rateLimited", by: "rate-limit" }
  }
  if (has(tags, "CircuitOpen", "circuit_open")) {
    const breaker = str(obj.breaker) ?? str(obj.route) ?? "?"
    return { outcome: "breakerOpen", by: `breaker:${breaker}` }
  }
  if (has(tags, "Overloaded", "overloaded", "max_connections", "BulkheadFull", "bulkhead")) {
    return { outcome: "shed", by: code ?? "overloaded" }
  }
  if (has(tags, "Timeout") || status === 504) return { outcome: "timeout", by: "timeout" }
  if (status >= 500) return { outcome: "failed", by: code ?? `http-${status}` }
  return { outcome: "clientError", by: code ?? `http-${status}` }
}
