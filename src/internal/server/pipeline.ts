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
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as http from "../http.js"
import type { Outcome, RuntimeFiber, Stage } from "./record.js"
import { abandoned, nodeResponseOf, RequestRecord } from "./record.js"
import * as reject from "./reject.js"
import type { Resolved } from "./routes.js"

/** The status the platform gives the response of a request whose client went away. */
const clientClosed = 499

/** What the pipeline reports to the server around each request (metrics). */
export interface Observer {
  readonly started: () => void
  readonly finished: (record: RequestRecord, outcome: Outcome, now: number) => void
}

const recordKey = Symbol.for("effect-resilience/ResilientHttpServer/record")

const recordOf = (request: HttpServerRequest.HttpServerRequest): RequestRecord | undefined =>
  (request as unknown as { readonly [recordKey]?: RequestRecord })[recordKey]

/** The outcome of a request's exit: the status the client saw, or abandoned. */
const outcomeOf = <E>(
  record: RequestRecord,
  exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>
): Effect.Effect<Outcome> | Outcome => {
  if (record.timedOut) return { status: 503, reason: "request deadline" }
  if (Exit.isSuccess(exit)) {
    const status = exit.value.status
    return status === clientClosed ? abandoned : { status, reason: status }
  }
  if (Cause.isInterruptedOnly(exit.cause)) return abandoned
  return Effect.map(
    HttpServerError.causeResponse(exit.cause),
    ([response]) =>
      response.status === clientClosed ? abandoned : { status: response.status, reason: Cause.squash(exit.cause) }
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
    if (record.response !== undefined && record.onClose !== undefined) {
      record.response.removeListener("close", record.onClose)
    }
    let effects: Array<Effect.Effect<void>> | undefined
    for (let i = n - 1; i >= 0; i--) {
      const effect = stages[i].release(record, outcome)
      if (effect !== undefined) (effects ??= []).push(effect)
    }
    observer.finished(
      record,
      outcome,
      Context.get(record.fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
    )
    if (effects === undefined) return undefined
    return effects.length === 1 ? effects[0] : Effect.all(effects, { discard: true })
  }

  const settleExit = <E>(record: RequestRecord, exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>) => {
    if (record.settled) return Effect.void
    const outcome = outcomeOf(record, exit)
    if (Effect.isEffect(outcome)) {
      return Effect.flatMap(outcome, (o) => settle(record, o) ?? Effect.void)
    }
    return settle(record, outcome) ?? Effect.void
  }

  const responders = stages.filter((stage) => stage.respond !== undefined).reverse()
  const respond = (record: RequestRecord, response: HttpServerResponse.HttpServerResponse) => {
    if (responders.length > 0) {
      const now = record.clock.unsafeCurrentTimeMillis()
      for (const stage of responders) response = stage.respond!(record, response, now)
    }
    const spec = http.errorResponseSpec(response)
    return spec === undefined
      ? response
      : reject.response(spec.code, spec.status, spec.message, record.route, spec.retryAfter, spec.headers)
  }
  const sharedHook: HttpApp.PreResponseHandler = (request, response) => {
    const record = recordOf(request)
    return Effect.succeed(record === undefined ? response : respond(record, response))
  }
  const sharedHookOption = Option.some(sharedHook)

  const installHook = (fiber: RuntimeFiber): void => {
    const previous = fiber.getFiberRef(HttpApp.currentPreResponseHandlers)
    fiber.setFiberRef(
      HttpApp.currentPreResponseHandlers,
      previous._tag === "None"
        ? sharedHookOption
        : Option.some((request, response) =>
          Effect.flatMap(previous.value(request, response), (r) => sharedHook(request, r))
        )
    )
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
    installHook(record.fiber)
    return Effect.onExit(app, (exit) => settleExit(record, exit))
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
        // Release on close unless the response was fully written (then the request's exit
        // settles it): a client that went away may leave the request fiber waiting forever.
        const onClose = () => {
          if (response.writableFinished) return
          const effect = settle(record, abandoned)
          if (effect !== undefined) runFork(effect)
        }
        record.onClose = onClose
        response.once("close", onClose)
      }
      return admitFrom(record, 0, app)
    })
}
