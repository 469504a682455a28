/**
 * The per-request record of the resilient server: one object that owns what every stage took for
 * the request (max-connections slot, breaker permit, shedder ticket, rate-limit reservation,
 * deadline timer) and gives it all back exactly once — when the request's effect ends, or when the
 * Node response closes first (a client that went away: the request fiber may never finish, because
 * the platform's write to a closed socket never settles).
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Clock from "effect/Clock"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as FiberRef from "effect/FiberRef"
import type * as FiberRefs from "effect/FiberRefs"
import type * as RuntimeFlags from "effect/RuntimeFlags"
import type { Permit } from "../../CircuitBreaker.js"
import type { Priority, Ticket } from "../../LoadShedder.js"
import type { Reservation } from "../../RateLimiter.js"
import type { RawDecision } from "../ratelimit/core.js"

/**
 * How a request ended, as the stages account for it. `status` is what the client saw;
 * `undefined` means abandoned (the client went away, or the server interrupted the handler while
 * shutting down): an abandoned request says nothing about the route's health.
 */
export interface Outcome {
  readonly status: number | undefined
  /** what a failure is remembered by (the handler's error, or the status) */
  readonly reason: unknown
}

/** The outcome of a request whose client went away. */
export const abandoned: Outcome = { status: undefined, reason: undefined }

/**
 * One stage of the server. `admit` takes what the stage needs for the request (storing it on the
 * record) and either returns `undefined` (admitted synchronously), or an effect that admits or
 * fails with the response to answer instead. `release` gives back what `admit` stored, exactly
 * once, and returns an effect only when it has work that must run as one.
 */
export interface Stage {
  /** which stage this is; a server holds at most one of each kind */
  readonly kind: StageKind
  readonly admit: (
    record: RequestRecord
  ) => Effect.Effect<void, HttpServerResponse.HttpServerResponse> | undefined
  readonly release: (record: RequestRecord, outcome: Outcome) => Effect.Effect<void> | undefined
  /** adjusts the response of an admitted request before it is written (headers, a timeout's answer) */
  readonly respond?: (
    record: RequestRecord,
    response: HttpServerResponse.HttpServerResponse,
    now: number
  ) => HttpServerResponse.HttpServerResponse
}

/** The stage kinds, outermost first in go-zero's order. */
export type StageKind = "maxConnections" | "breaker" | "shedding" | "rateLimit" | "deadline"

/** The fiber runtime's own synchronous `FiberRef` write (what `FiberRef.set` runs). */
export interface RuntimeFiber extends Fiber.RuntimeFiber<unknown, unknown> {
  setFiberRef<A>(fiberRef: FiberRef.FiberRef<A>, value: A): void
  /** the fiber's runtime flags as it runs (interruptible or not) */
  readonly currentRuntimeFlags: RuntimeFlags.RuntimeFlags
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  /** the fiber's own refs (`getFiberRefs()` copies them on every call) */
  readonly _fiberRefs?: FiberRefs.FiberRefs
}

/** The deadline stage's timer of a request: `cancel` stops it from firing. */
export interface DeadlineTimer {
  cancel(): void
}

/** The part of a Node `ServerResponse` the record listens to and writes headers on. */
export interface NodeResponseLike {
  readonly writableFinished: boolean
  /** set once the response or its socket closed (its `close` event does not fire again) */
  readonly destroyed: boolean
  readonly headersSent: boolean
  on(event: "close", listener: () => void): unknown
  /** a header the platform's `writeHead` merges with the response's own (which win) */
  setHeader(name: string, value: string): unknown
}

/**
 * Everything the stages know and hold for one request. Fields are written by the stage named in
 * their comment and cleared by its `release`.
 */
export class RequestRecord {
  /** the route key: the router's matched pattern, a configured pattern, or the fallback name */
  route: string
  /** the configured `routes` pattern the request matched, if any (per-route settings) */
  pattern: string | undefined
  /** set once every stage has given back what it held */
  settled = false
  /** a stage answered the request itself: stages outside it count it as neither outcome */
  rejected = false
  /** max connections: a slot is held */
  slot = false
  /** breaker: the permit to settle */
  permit: Permit | undefined = undefined
  /** shedding: the tier, and the ticket to settle or the start time of a synchronous admission (-1: none) */
  priority: Priority | undefined = undefined
  ticket: Ticket | undefined = undefined
  shedStart = -1
  /** rate limit: the decision (or its headers), and a reservation still waiting to be acted on */
  limitDecision: RawDecision | undefined = undefined
  headers: Record<string, string> | undefined = undefined
  reservation: Reservation | undefined = undefined
  /**
   * deadline: the timer, the deadline it armed (the handler's `Timeout.currentDeadline`, written by
   * the pipeline as the handler starts), its length, and whether it fired
   */
  timer: DeadlineTimer | undefined = undefined
  deadlineAt = Infinity
  deadlineMillis = 0
  timedOut = false
  /** the deadline's timer fired late (this process's event loop was busy): a self-inflicted timeout */
  timedOutLate = false
  /** the Node response whose `close` ends the request when the fiber does not */
  response: NodeResponseLike | undefined = undefined

  constructor(
    readonly request: HttpServerRequest.HttpServerRequest,
    readonly fiber: RuntimeFiber,
    /** the request fiber's clock */
    readonly clock: Clock.Clock,
    /** Clock millis when the middleware first saw the request */
    readonly arrivedAt: number,
    route: string,
    pattern: string | undefined
  ) {
    this.route = route
    this.pattern = pattern
  }
}

/**
 * The Node `ServerResponse` behind a request served by `@effect/platform-node` (its request keeps
 * it as `response`; an upgrade request keeps a lazy function instead, which is left alone).
 */
export const nodeResponseOf = (request: HttpServerRequest.HttpServerRequest): NodeResponseLike | undefined => {
  const response = (request as unknown as { readonly response?: unknown }).response
  return typeof response === "object" && response !== null &&
      typeof (response as NodeResponseLike).on === "function" &&
      typeof (response as NodeResponseLike).setHeader === "function"
    ? response as NodeResponseLike
    : undefined
}
