/**
 * Synchronous admission steps of the toolkit's own load shedders and rate limiters, for callers
 * that keep what they were given themselves (the HTTP server's per-request record): one plain
 * function call on the happy path instead of an effect per admission and per release.
 *
 * A primitive attaches its steps as a non-enumerable property, so an object spread over it (a
 * shadow-mode view, a user's wrapper) does not carry them: such an object is called through its
 * public effects, as any other implementation is.
 */
import type * as Effect from "effect/Effect"
import type { OverloadedError } from "../Errors.js"
import type { Priority } from "../LoadShedder.js"
import type { RawDecision } from "./ratelimit/core.js"

const key = Symbol.for("effect-resilience/syncAdmission")

/** A load shedder's steps. Only the first of `pass` / `fail` for one admission may be called. */
export interface Shedder {
  /**
   * Admits a request of `priority` that arrived at `arrivedAt` (clock millis): the start time to
   * give `pass`, or the effect that rejects it (the drop is already counted).
   */
  readonly admit: (priority: Priority | undefined, arrivedAt: number) => number | Effect.Effect<never, OverloadedError>
  /** the request completed well: its round-trip time from `start` is recorded */
  readonly pass: (start: number) => void
  /** the request did not complete well: it only leaves the in-flight count */
  readonly fail: () => void
}

/** A rate limiter's step over a store that decides in this process. */
export interface Limiter {
  /** takes one token for `key` at the clock's time (counted in the limiter's metrics) */
  readonly take: (key: string) => RawDecision
}

/** Attaches `steps` to `target`, out of reach of an object spread. */
export const attach = <A extends object, S>(target: A, steps: S): A =>
  Object.defineProperty(target, key, { value: steps, enumerable: false })

/** The shedder's synchronous steps, if it was built with them. */
export const shedderOf = (shedder: object): Shedder | undefined => (shedder as { readonly [key]?: Shedder })[key]

/** The limiter's synchronous step, if its store decides in this process. */
export const limiterOf = (limiter: object): Limiter | undefined => (limiter as { readonly [key]?: Limiter })[key]
