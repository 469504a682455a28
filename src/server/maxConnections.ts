/**
 * The max-connections stage: more than `limit` requests in flight → `503 max_connections`
 * (go-zero's `MaxConns`, default 10,000). The slot is given back exactly once, when the request's
 * effect ends or when its client goes away, whichever comes first.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { InvalidOptionsError } from "../Errors.js"
import * as options_ from "../internal/options.js"
import type { RequestRecord, Stage } from "../internal/server/record.js"
import * as reject from "../internal/server/reject.js"

/**
 * Options of `make`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** the server's name, for `resilience_http_rejected_total{name}` (default `"http"`) */
  readonly name?: string
  /** requests in flight before `503 max_connections` (default 10,000) */
  readonly limit?: number
}

/**
 * The schema of `Options`.
 *
 * @since 0.3.0
 * @category schemas
 */
export const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  limit: Schema.optional(options_.PositiveInt)
})

const decode = options_.decodeOptions("ResilientHttpServer.maxConnections", OptionsSchema, { exact: true })

/**
 * A max-connections stage, with the count it keeps.
 *
 * @since 0.3.0
 * @category models
 */
export interface MaxConnections extends Stage {
  readonly kind: "maxConnections"
  /** requests holding a slot now */
  readonly inFlight: () => number
}

/**
 * Builds the stage.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<MaxConnections, InvalidOptionsError> =>
  Effect.map(decode(options), (decoded) => {
    const limit = decoded.limit ?? 10_000
    const rejected = reject.rejecter(decoded.name ?? "http")
    const message = `more than ${limit} requests in flight`
    let inFlight = 0
    return {
      kind: "maxConnections",
      inFlight: () => inFlight,
      admit: (record: RequestRecord) => {
        if (inFlight >= limit) {
          return Effect.fail(rejected("max_connections", 503, message, record.route, Option.none()))
        }
        inFlight++
        record.slot = true
        return undefined
      },
      release: (record: RequestRecord) => {
        if (record.slot) {
          record.slot = false
          inFlight--
        }
        return undefined
      }
    }
  })
