/**
 * The load-shedding stage: a `LoadShedder` admits each request at its tier, with the time the
 * server first saw it (so a queue-delay shedder measures the wait), or answers `503 overloaded`.
 * The default shedder reads event-loop utilization, which protects from a cold start. A request's
 * tier comes from its route (`routes[pattern].priority`), then from a trusted header
 * (`priorityHeader`, values `critical`, `standard`, `sheddable`), then the shedder's default.
 * A response with status 503, a request an inner stage answered, and one whose client went away
 * are failed passes; every other response is a pass.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError, OverloadedError } from "../Errors.js"
import * as options_ from "../internal/options.js"
import type { Outcome, RequestRecord, Stage } from "../internal/server/record.js"
import * as reject from "../internal/server/reject.js"
import * as SyncAdmission from "../internal/syncAdmission.js"
import * as LoadShedder from "../LoadShedder.js"

/**
 * Per-route settings of the stage.
 *
 * @since 0.3.0
 * @category models
 */
export interface RouteOptions {
  /** `false` switches shedding off for the route */
  readonly enabled?: boolean
  readonly priority?: LoadShedder.Priority
}

/**
 * Options of `make`: a ready `shedder`, or the options of one (`signal`, or go-zero's
 * `cpuThreshold`; `window`, `buckets`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** names the shedder and the rejection metric (default `"http"`) */
  readonly name?: string
  readonly shedder?: LoadShedder.LoadShedder
  readonly signal?: LoadShedder.OverloadSignal
  /** per-mille of the CPU quota: go-zero's CPU signal (cannot be combined with `signal`) */
  readonly cpuThreshold?: number
  readonly window?: LoadShedder.Options["window"]
  readonly buckets?: number
  /** a request header a trusted proxy sets to the request's tier */
  readonly priorityHeader?: string
  readonly routes?: Readonly<Record<string, RouteOptions>>
}

const PrioritySchema = Schema.Literal("sheddable", "standard", "critical")

/**
 * The schema of `Options` (the shedder's own options are checked by `LoadShedder.make`).
 *
 * @since 0.3.0
 * @category schemas
 */
export const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  shedder: Schema.optional(Schema.Object),
  signal: Schema.optional(Schema.Object),
  cpuThreshold: Schema.optional(Schema.Unknown),
  window: Schema.optional(Schema.Unknown),
  buckets: Schema.optional(Schema.Unknown),
  priorityHeader: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9-]+$/))),
  routes: Schema.optional(Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ enabled: Schema.optional(Schema.Boolean), priority: Schema.optional(PrioritySchema) })
  }))
})

const decode = options_.decodeOptions("ResilientHttpServer.shedding", OptionsSchema, { exact: true })

/**
 * A shedding stage, with its shedder.
 *
 * @since 0.3.0
 * @category models
 */
export interface Shedding extends Stage {
  readonly kind: "shedding"
  readonly shedder: LoadShedder.LoadShedder
}

const isPriority = (s: string | undefined): s is LoadShedder.Priority =>
  s === "critical" || s === "standard" || s === "sheddable"

/**
 * Builds the stage; a shedder it builds lives in the current scope.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Shedding, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* decode(options)
    const name = options.name ?? "http"
    const shedder = options.shedder ?? (yield* LoadShedder.make({
      name,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.cpuThreshold === undefined ? {} : { cpuThreshold: options.cpuThreshold }),
      ...(options.window === undefined ? {} : { window: options.window }),
      ...(options.buckets === undefined ? {} : { buckets: options.buckets })
    }))
    const routes = new Map(Object.entries(options.routes ?? {}))
    const header = options.priorityHeader?.toLowerCase()
    const rejected = reject.rejecter(name)
    const overloaded = (record: RequestRecord) => (e: OverloadedError) =>
      rejected("overloaded", 503, e.message, record.route, Option.fromNullable(e.retryAfter))
    const admitted = (record: RequestRecord) => (ticket: LoadShedder.Ticket) => {
      record.ticket = ticket
    }
    // the toolkit's own shedders admit and settle in one synchronous step
    const sync = SyncAdmission.shedderOf(shedder)
    return {
      kind: "shedding",
      shedder,
      admit: (record: RequestRecord) => {
        const route = record.pattern === undefined ? undefined : routes.get(record.pattern)
        if (route?.enabled === false) return undefined
        let priority = route?.priority
        if (priority === undefined && header !== undefined) {
          const value = record.request.headers[header]
          if (isPriority(value)) priority = value
        }
        record.priority = priority
        if (sync !== undefined) {
          const start = sync.admit(priority, record.arrivedAt)
          if (typeof start !== "number") return Effect.mapError(start, overloaded(record))
          record.shedStart = start
          return undefined
        }
        return Effect.mapBoth(shedder.admit(priority, record.arrivedAt), {
          onFailure: overloaded(record),
          onSuccess: admitted(record)
        })
      },
      release: (record: RequestRecord, outcome: Outcome) => {
        const passed = outcome.status !== undefined && !record.rejected && outcome.status !== 503
        const start = record.shedStart
        if (start >= 0) {
          record.shedStart = -1
          if (passed) sync!.pass(start)
          else sync!.fail()
          return undefined
        }
        const ticket = record.ticket
        if (ticket === undefined) return undefined
        record.ticket = undefined
        return passed ? ticket.pass : ticket.fail
      }
    }
  })
