/**
 * The deadline stage: starts the request's deadline — the route's timeout (default 3 seconds,
 * go-zero's), clamped to the caller's own budget when it sends one (`x-request-timeout` in
 * milliseconds, or gRPC's `grpc-timeout` form such as `250m` or `2S`) and to any enclosing
 * deadline. A request with no budget left is answered `504 deadline_exceeded` at once, without
 * running the handler. When the deadline passes the handler is interrupted and the client gets
 * `503 timeout`; nested `Timeout.within` calls in the handler are clamped to it. A handler failing
 * with `TimeoutError` gets `503 timeout` when the deadline is spent, `504 upstream_timeout`
 * otherwise. One timer per request, cancelled when the request ends or its client goes away.
 *
 * @since 0.3.0
 */
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { InvalidOptionsError } from "../Errors.js"
import * as deadline_ from "../internal/deadline.js"
import * as http from "../internal/http.js"
import * as options_ from "../internal/options.js"
import type { DeadlineTimer, RequestRecord, Stage } from "../internal/server/record.js"
import * as reject from "../internal/server/reject.js"
import * as TimerHeap from "../internal/timerHeap.js"
import * as Timeout from "../Timeout.js"

/**
 * Options of `make`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** names the metrics (default `"http"`) */
  readonly name?: string
  /** the request deadline (default 3 seconds); `false`: only a caller's budget sets one */
  readonly timeout?: Duration.DurationInput | false
  /** the header carrying the caller's budget (default `"x-request-timeout"`); `false`: ignore */
  readonly budgetHeader?: string | false
  /** per-route timeouts by configured pattern; `false` switches the route's own deadline off */
  readonly routes?: Readonly<Record<string, Duration.DurationInput | false>>
}

const Timeout_ = Schema.Union(options_.PositiveDuration, Schema.Literal(false))

/**
 * The schema of `Options`.
 *
 * @since 0.3.0
 * @category schemas
 */
export const OptionsSchema = Schema.Struct({
  name: Schema.optional(options_.Name),
  timeout: Schema.optional(Timeout_),
  budgetHeader: Schema.optional(
    Schema.Union(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9-]+$/)), Schema.Literal(false))
  ),
  routes: Schema.optional(Schema.Record({ key: Schema.String, value: Timeout_ }))
})

const decode = options_.decodeOptions("ResilientHttpServer.deadline", OptionsSchema, { exact: true })

/**
 * A deadline stage.
 *
 * @since 0.3.0
 * @category models
 */
export interface Deadline extends Stage {
  readonly kind: "deadline"
}

/**
 * A handler's `TimeoutError` this close to the request deadline is the deadline's own: timers
 * fire on millisecond boundaries, so a nested timeout clamped to the deadline may fire one
 * millisecond before the request's timer.
 */
const slackMillis = 1

/**
 * Builds the stage.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Deadline, InvalidOptionsError> =>
  Effect.map(decode(options), (decoded) => {
    const name = decoded.name ?? "http"
    const millisOf = (d: Duration.Duration | false) => d === false ? Infinity : Duration.toMillis(d)
    const timeout = millisOf(decoded.timeout ?? Duration.seconds(3))
    const routes = new Map(Object.entries(decoded.routes ?? {}).map(([p, d]) => [p, millisOf(d)] as const))
    const budgetHeader = decoded.budgetHeader === false
      ? undefined
      : (decoded.budgetHeader ?? "x-request-timeout").toLowerCase()
    const rejected = reject.rejecter(name)
    const timeouts = Metric.tagged(Timeout.timeoutsTotal, "name", name)

    // the clock's scheduler, looked up once per clock
    let lastClock: Clock.Clock | undefined
    let lastScheduler: deadline_.LiveScheduler | undefined
    const schedulerOf = (clock: Clock.Clock): deadline_.LiveScheduler | undefined => {
      if (clock !== lastClock) {
        lastClock = clock
        lastScheduler = deadline_.liveScheduler(clock)
      }
      return lastScheduler
    }

    // The request is marked timed out before its fiber is interrupted, so the response hook knows
    // for certain that the platform's empty 503 is this deadline's.
    const fire = (record: RequestRecord): void => {
      record.timer = undefined
      // released already (a timer fiber woke as it was being interrupted)
      if (record.deadlineAt === Infinity) return
      record.timedOut = true
      // a timer this late says the process, not the route, was slow (see Timeout's "lag")
      record.timedOutLate = record.clock.unsafeCurrentTimeMillis() - record.deadlineAt >
        deadline_.lagAllowance(record.deadlineMillis)
      timeouts.unsafeUpdate(1, noTags)
      record.fiber.unsafeInterruptAsFork(record.fiber.id())
    }

    const budgetOf = (record: RequestRecord): number => {
      if (budgetHeader === undefined) return Infinity
      const headers = record.request.headers
      const budget = http.parseBudget(headers[budgetHeader]) ?? http.parseBudget(headers["grpc-timeout"])
      return budget === undefined ? Infinity : record.arrivedAt + budget
    }

    const answer = (record: RequestRecord) =>
      rejected(
        "timeout",
        503,
        `request did not complete within ${Duration.format(Duration.millis(record.deadlineMillis))}`,
        record.route,
        Option.none()
      )

    return {
      kind: "deadline",
      admit: (record: RequestRecord) => {
        const own = record.pattern !== undefined && routes.has(record.pattern) ? routes.get(record.pattern)! : timeout
        const budget = budgetOf(record)
        if (own === Infinity && budget === Infinity) return undefined
        const fiber = record.fiber
        const clock = record.clock
        const now = clock.unsafeCurrentTimeMillis()
        const outer = fiber.getFiberRef(Timeout.currentDeadline)
        const deadlineAt = Math.min(now + own, budget, outer)
        const left = deadlineAt - now
        if (left <= 0) {
          return Effect.fail(
            rejected("deadline_exceeded", 504, "the caller's time budget is spent", record.route, Option.none())
          )
        }
        record.deadlineAt = deadlineAt
        record.deadlineMillis = left
        // the request's fiber gets the deadline (`Timeout.currentDeadline`) when its handler starts
        const timer = new Timer(record, fire)
        record.timer = timer
        if (deadline_.isHostClock(clock)) {
          // one host timer for every request: a heap push now, a mark when the request ends
          TimerHeap.schedule(timer, left)
          return undefined
        }
        const scheduler = schedulerOf(clock)
        if (scheduler !== undefined) {
          timer.cancelScheduled = scheduler.unsafeSchedule(() => timer.fire(), Duration.millis(left))
          return undefined
        }
        // not the live clock (tests): a fiber sleeping on that clock
        return Effect.map(
          Effect.forkDaemon(Effect.zipRight(Effect.sleep(left), Effect.sync(() => timer.fire()))),
          (f) => {
            timer.sleeper = f
          }
        )
      },
      release: (record: RequestRecord) => {
        if (record.deadlineAt === Infinity) return undefined
        record.deadlineAt = Infinity
        const timer = record.timer
        record.timer = undefined
        if (timer !== undefined) timer.cancel()
        // the request fiber's deadline is not restored: the request is over, and one FiberRef
        // write fewer per request is measurable
        return undefined
      },
      respond: (record, response, now) => {
        // only an empty 503 (the platform's answer to the interrupted handler) or a 504 (a
        // handler's own timeout) can be the deadline's
        if (record.deadlineMillis === 0 || (response.status !== 503 && response.status !== 504)) return response
        const spent = record.timedOut || now >= record.deadlineAt - slackMillis
        const upstream = http.upstreamTimeoutMessage(response)
        if (upstream !== undefined) {
          return spent
            ? answer(record)
            : rejected("upstream_timeout", 504, upstream, record.route, Option.none())
        }
        if (response.status === 503 && spent && isEmpty(response)) {
          record.timedOut = true
          return answer(record)
        }
        return response
      }
    }
  })

const noTags: ReadonlyArray<never> = []

/**
 * The deadline timer of one request: an entry of the shared timer heap on the host's clock, a
 * scheduled callback on another live clock, or a fiber sleeping on a test clock.
 */
class Timer implements TimerHeap.Entry, DeadlineTimer {
  due = 0
  queued = false
  cancelScheduled: (() => void) | undefined = undefined
  sleeper: Fiber.RuntimeFiber<void> | undefined = undefined
  constructor(readonly record: RequestRecord, readonly onFire: (record: RequestRecord) => void) {}
  fire(): void {
    this.onFire(this.record)
  }
  cancel(): void {
    if (this.queued) TimerHeap.cancel(this)
    else if (this.cancelScheduled !== undefined) this.cancelScheduled()
    else if (this.sleeper !== undefined) this.sleeper.unsafeInterruptAsFork(this.record.fiber.id())
  }
}

const isEmpty = (response: HttpServerResponse.HttpServerResponse): boolean => response.body._tag === "Empty"
