/**
 * The request path of the resilient server: a record per request, the stages' admissions outermost
 * first, the handler, and one settlement — from the request's exit, or from the Node response's
 * `close` when the client goes away first.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Timeout from "../../Timeout.js"
import * as http from "../http.js"
import type { NodeResponseLike, Outcome, RuntimeFiber, Stage } from "./record.js"
import { abandoned, nodeResponseOf, RequestRecord } from "./record.js"
import * as reject from "./reject.js"
import type { Resolved } from "./routes.js"

/** The status the platform gives the response of a request whose client went away. */
const clientClosed = 499

/** `Effect.matchCauseEffect` with its handlers as arguments. */
const matchCause = <A, E, R, A2, E2, R2, A3, E3, R3>(
  self: Effect.Effect<A, E, R>,
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<A2, E2, R2>,
  onSuccess: (a: A) => Effect.Effect<A3, E3, R3>
): Effect.Effect<A2 | A3, E2 | E3, R | R2 | R3> => Effect.matchCauseEffect(self, { onFailure, onSuccess })

/** What the pipeline reports to the server around each request (metrics). */
export interface Observer {
  readonly started: () => void
  readonly finished: (record: RequestRecord, outcome: Outcome, now: number) => void
}

const recordKey = Symbol.for("effect-resilience/ResilientHttpServer/record")

/** A Node response that knows its request's record (read by the shared `close` listener). */
type TaggedResponse = NodeResponseLike & { [recordKey]?: RequestRecord }

const recordOf = (request: HttpServerRequest.HttpServerRequest): RequestRecord | undefined =>
  (request as unknown as { readonly [recordKey]?: RequestRecord })[recordKey]

const timedOut: Outcome = { status: 503, reason: "request deadline" }

// the outcome of a response with `status`, one object per status
const byStatus = new Map<number, Outcome>()
const outcomeOfStatus = (status: number): Outcome => {
  let outcome = byStatus.get(status)
  if (outcome === undefined) {
    outcome = { status, reason: status }
    byStatus.set(status, outcome)
  }
  return outcome
}

/** The outcome of a request whose handler answered `response`. */
const outcomeOfResponse = (record: RequestRecord, response: HttpServerResponse.HttpServerResponse): Outcome =>
  record.timedOut ? timedOut : response.status === clientClosed ? abandoned : outcomeOfStatus(response.status)

/** The outcome of a request that failed with `cause`: the status the client saw, or abandoned. */
const outcomeOfCause = <E>(record: RequestRecord, cause: Cause.Cause<E>): Effect.Effect<Outcome> | Outcome => {
  if (record.timedOut) return timedOut
  if (Cause.isInterruptedOnly(cause)) return abandoned
  return Effect.map(
    HttpServerError.causeResponse(cause),
    ([response]) =>
      response.status === clientClosed ? abandoned : { status: response.status, reason: Cause.squash(cause) }
  )
}

/**
 * Builds the middleware running `stages` (outermost first) around an app. One pre-response hook,
 * shared by every request, lets the stages adjust an admitted request's response (innermost
 * first) and names the route in the rejection body of an error that escaped the handler.
 */
export const make = (options: {
  readonly stages: ReadonlyArray<Stage>
  readonly resolve: (request: HttpServerRequest.HttpServerRequest) => Resolved
  readonly observer: Observer
  readonly runtime: Runtime.Runtime<never>
}) => {
  const { observer, resolve, stages } = options
  const n = stages.length
  const runFork = Runtime.runFork(options.runtime)

  /** Gives back everything the record holds, innermost stage first; at most once. */
  const settle = (record: RequestRecord, outcome: Outcome): Effect.Effect<void> | undefined => {
    if (record.settled) return undefined
    record.settled = true
    let effects: Array<Effect.Effect<void>> | undefined
    for (let i = n - 1; i >= 0; i--) {
      const effect = stages[i].release(record, outcome)
      if (effect !== undefined) (effects ??= []).push(effect)
    }
    observer.finished(record, outcome, record.clock.unsafeCurrentTimeMillis())
    if (effects === undefined) return undefined
    return effects.length === 1 ? effects[0] : Effect.all(effects, { discard: true })
  }

  const settleFailure = <E>(record: RequestRecord, cause: Cause.Cause<E>): Effect.Effect<void> => {
    if (record.settled) return Effect.void
    const outcome = outcomeOfCause(record, cause)
    if (Effect.isEffect(outcome)) {
      return Effect.flatMap(outcome, (o) => settle(record, o) ?? Effect.void)
    }
    return settle(record, outcome) ?? Effect.void
  }

  const onSuccess = (record: RequestRecord, response: HttpServerResponse.HttpServerResponse) => {
    const released = record.settled ? undefined : settle(record, outcomeOfResponse(record, response))
    return released === undefined ? Effect.succeed(response) : Effect.as(released, response)
  }

  /** Settles the record when the app ends; the app's exit passes through unchanged. */
  const settleOnEnd = <E, R>(
    record: RequestRecord,
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
    // Already uninterruptible (the platform runs its handler so): a plain match runs its handlers
    // however the app ends, interruption included. Otherwise the region is made uninterruptible.
    // (The handlers are passed as arguments: a closure named by a binding costs a `name` write per
    // request under transpilers that keep names.)
    if (!RuntimeFlags.interruptible(record.fiber.currentRuntimeFlags)) {
      return matchCause(
        app,
        (cause) => Effect.zipRight(settleFailure(record, cause), Effect.failCause(cause)),
        (response) => onSuccess(record, response)
      )
    }
    return Effect.uninterruptibleMask((restore) =>
      matchCause(
        restore(app),
        (cause) => Effect.zipRight(settleFailure(record, cause), Effect.failCause(cause)),
        (response) => onSuccess(record, response)
      )
    )
  }

  const responders = stages.filter((stage) => stage.respond !== undefined).reverse()
  const respond = (record: RequestRecord, response: HttpServerResponse.HttpServerResponse) => {
    if (responders.length > 0) {
      const now = record.clock.unsafeCurrentTimeMillis()
      for (const stage of responders) response = stage.respond!(record, response, now)
    }
    // only the toolkit's rejection errors map to a response of their own, all 4xx or 5xx
    const spec = response.status < 400 ? undefined : http.errorResponseSpec(response)
    return spec === undefined
      ? response
      : reject.response(spec.code, spec.status, spec.message, record.route, spec.retryAfter, spec.headers)
  }
  const sharedHook: HttpApp.PreResponseHandler = (request, response) => {
    const record = recordOf(request)
    return Effect.succeed(record === undefined ? response : respond(record, response))
  }
  const sharedHookOption = Option.some(sharedHook)

  /**
   * Gives the request fiber the response hook and, when a deadline stage set one, the request's
   * deadline as `Timeout.currentDeadline` (what nested timeouts in the handler are clamped to):
   * both in one copy of the fiber's refs, where a `FiberRef` write copies them each time.
   */
  const installLocals = (record: RequestRecord): void => {
    const fiber = record.fiber
    const previous = fiber.getFiberRef(HttpApp.currentPreResponseHandlers)
    const hook = previous._tag === "None"
      ? sharedHookOption
      : Option.some<HttpApp.PreResponseHandler>((request, response) =>
        Effect.flatMap(previous.value(request, response), (r) => sharedHook(request, r))
      )
    if (record.deadlineAt === Infinity) {
      fiber.setFiberRef(HttpApp.currentPreResponseHandlers, hook)
      return
    }
    const id = fiber.id()
    fiber.setFiberRefs(FiberRefs.updateManyAs(fiber._fiberRefs ?? fiber.getFiberRefs(), {
      entries: [
        [HttpApp.currentPreResponseHandlers, [[id, hook]]],
        [Timeout.currentDeadline, [[id, record.deadlineAt]]]
      ]
    }))
  }

  // Releases on close unless the response was fully written (then the request's end settles it):
  // a client that went away may leave the request fiber waiting forever. One listener for every
  // response, which finds its record on the response; it stays after the request is settled,
  // where it does nothing.
  function onClose(this: TaggedResponse): void {
    const record = this[recordKey]
    if (record === undefined || record.settled || this.writableFinished) return
    const effect = settle(record, abandoned)
    if (effect !== undefined) runFork(effect)
  }

  const rejected = (record: RequestRecord, response: HttpServerResponse.HttpServerResponse) => {
    record.rejected = true
    return Effect.as(settle(record, { status: response.status, reason: response.status }) ?? Effect.void, response)
  }

  const run = <E, R>(
    record: RequestRecord,
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
    // the client went away while the request waited: its handler never runs
    if (record.settled) return Effect.interrupt
    installLocals(record)
    return settleOnEnd(record, app)
  }

  /** Admits through stages `from`…, then runs the app. */
  const admitFrom = <E, R>(
    record: RequestRecord,
    from: number,
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
    for (let i = from; i < n; i++) {
      const admission = stages[i].admit(record)
      if (admission === undefined) continue
      const next = i + 1
      return Effect.matchEffect(admission, {
        onFailure: (response) => rejected(record, response),
        onSuccess: () => {
          if (record.settled) {
            // the client went away while this stage waited: give back what it just took
            return Effect.zipRight(stages[i].release(record, abandoned) ?? Effect.void, Effect.interrupt)
          }
          return admitFrom(record, next, app)
        }
      })
    }
    return run(record, app)
  }

  return <E, R>(
    app: HttpApp.Default<E, R>
  ): HttpApp.Default<E, R> =>
    Effect.withFiberRuntime((fiber) => {
      const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const { pattern, route } = resolve(request)
      const record = new RequestRecord(
        request,
        fiber as RuntimeFiber,
        clock,
        clock.unsafeCurrentTimeMillis(),
        route,
        pattern
      )
      ;(request as unknown as { [recordKey]?: RequestRecord })[recordKey] = record
      observer.started()
      const response = nodeResponseOf(request)
      if (response !== undefined) {
        if (response.destroyed) {
          // the client went away before the middleware saw the request: nothing is admitted
          settle(record, abandoned)
          return Effect.interrupt
        }
        record.response = response
        ;(response as TaggedResponse)[recordKey] = record
        response.on("close", onClose)
      }
      return admitFrom(record, 0, app)
    })
}
