/**
 * The effectful shell of `AdaptiveLimiter`: the limit and in-flight count a limiter keeps, its
 * admission step, the samples that move the limit, and the limiter built over them.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type * as Subscribable from "effect/Subscribable"
import type { AdaptiveLimiter, ProtectOptions, Stats, Ticket } from "../AdaptiveLimiter.js"
import { InvalidOptionsError, OverloadedError } from "../Errors.js"
import * as Limit from "./adaptiveLimit.js"
import { onceGuard } from "./onceGuard.js"
import * as Metrics from "./sheddingMetrics.js"
import { EventView } from "./stateView.js"

/** A throwing predicate must not leave the request counted in flight: it counts as "not a drop". */
const dropped = <E>(isDrop: (error: E) => boolean, error: E): boolean => {
  try {
    return isDrop(error)
  } catch {
    return false
  }
}

const isTimeout = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "TimeoutError"

/** The decoded limits. */
export interface Base {
  readonly initialLimit: number
  readonly minLimit: number
  readonly maxLimit: number
}

/** The limits must nest: min ≤ initial ≤ max. */
export const checkBounds = (base: Base): Effect.Effect<void, InvalidOptionsError> => {
  if (base.minLimit > base.maxLimit) {
    return new InvalidOptionsError({
      module: "AdaptiveLimiter",
      option: "minLimit",
      value: base.minLimit,
      reason: `greater than maxLimit ${base.maxLimit}`
    })
  }
  if (base.initialLimit < base.minLimit || base.initialLimit > base.maxLimit) {
    return new InvalidOptionsError({
      module: "AdaptiveLimiter",
      option: "initialLimit",
      value: base.initialLimit,
      reason: `expected a value between minLimit ${base.minLimit} and maxLimit ${base.maxLimit}`
    })
  }
  return Effect.void
}

/** A limiter's mutable core: the limit, the in-flight count and the counts, and the steps that move them. */
export interface Core {
  readonly limit: () => number
  readonly stats: Effect.Effect<Stats>
  readonly view: Subscribable.Subscribable<Stats>
  /** admits (and runs `admitted` with the start time and the in-flight count) or rejects */
  readonly withAdmission: <A, E, R>(
    admitted: (start: bigint, inflight: number) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | OverloadedError, R>
  /** an admitted request ended and is a sample of the limit: `dropped` when it failed as a drop */
  readonly unsafeSample: (start: bigint, inflight: number, dropped: boolean) => void
  /** an admitted request ended without telling anything about the limit */
  readonly unsafeIgnore: () => void
}

export const makeCore = (
  name: string,
  algorithm: Limit.Algorithm,
  bounds: Limit.Bounds,
  state: Limit.State,
  clock: Clock.Clock,
  hub: PubSub.PubSub<number>
): Core => {
  const window = Limit.makeWindow(clock.unsafeCurrentTimeMillis())
  const shed = Metrics.shedRequests(name)
  const inFlightGauge = Metrics.requestsInFlight(name)
  const rejected = Effect.fail(new OverloadedError({ shedder: name, reason: "concurrency" }, true))
  let limit = Limit.limitOf(state, bounds)
  let inFlight = 0
  const counts = { admitted: 0, rejected: 0, passed: 0, failed: 0, ignored: 0 }

  const stats: Effect.Effect<Stats> = Effect.sync(() => ({ name, limit, inFlight, ...counts }))
  // the live view hears every move of the limit, with that move's value
  const events = new EventView<number, Stats>(
    stats,
    (next) => Effect.map(stats, (s) => s.limit === next ? s : { ...s, limit: next })
  )

  const unsafeSample = (start: bigint, inflight: number, dropped: boolean): void => {
    inFlight--
    inFlightGauge.unsafeUpdate(inFlight, [])
    const now = clock.unsafeCurrentTimeNanos()
    const rtt = Number(now - start) / 1e6
    const aggregate = Limit.record(window, { rtt, inflight, dropped }, Number(now / 1_000_000n))
    if (aggregate !== undefined) Limit.update(algorithm, state, aggregate, bounds)
    if (dropped) counts.failed++
    else counts.passed++
    const next = Limit.limitOf(state, bounds)
    if (next !== limit) {
      limit = next
      hub.unsafeOffer(next)
      events.offer(next)
    }
  }

  const unsafeIgnore = (): void => {
    inFlight--
    counts.ignored++
    inFlightGauge.unsafeUpdate(inFlight, [])
  }

  const withAdmission = <A, E, R>(
    admitted: (start: bigint, inflight: number) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | OverloadedError, R> =>
    Effect.suspend((): Effect.Effect<A, E | OverloadedError, R> => {
      if (inFlight >= limit) {
        counts.rejected++
        shed.unsafeUpdate(1, [])
        return rejected
      }
      inFlight++
      counts.admitted++
      inFlightGauge.unsafeUpdate(inFlight, [])
      return admitted(clock.unsafeCurrentTimeNanos(), inFlight)
    })

  return { limit: () => limit, stats, view: events.view, withAdmission, unsafeSample, unsafeIgnore }
}

/** The limiter over its core: tickets for `allow`, outcomes read from the exit for `protect`. */
export const limiterOf = (name: string, core: Core, hub: PubSub.PubSub<number>): AdaptiveLimiter => {
  const { unsafeIgnore, unsafeSample, withAdmission } = core
  const sample = (start: bigint, inflight: number, dropped: boolean) =>
    Effect.sync(() => unsafeSample(start, inflight, dropped))
  const ignore = Effect.sync(unsafeIgnore)

  const allow: Effect.Effect<Ticket, OverloadedError> = withAdmission((start, inflight) => {
    const once = onceGuard()
    return Effect.succeed<Ticket>({
      pass: once(sample(start, inflight, false)),
      fail: once(sample(start, inflight, true)),
      ignore: once(ignore)
    })
  })

  const protect = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: ProtectOptions<E>
  ): Effect.Effect<A, E | OverloadedError, R> => {
    const isDrop: (error: E) => boolean = options?.isDrop ?? isTimeout
    return Effect.uninterruptibleMask((restore) =>
      withAdmission((start, inflight) =>
        Effect.matchCauseEffect(restore(effect), {
          onFailure: (cause) => {
            if (cause._tag === "Fail" && dropped(isDrop, cause.error)) unsafeSample(start, inflight, true)
            else unsafeIgnore()
            return Effect.failCause(cause)
          },
          onSuccess: (a) => {
            unsafeSample(start, inflight, false)
            return Effect.succeed(a)
          }
        })
      )
    )
  }

  return {
    name,
    allow,
    protect,
    limit: Effect.sync(core.limit),
    changes: Stream.fromPubSub(hub),
    stats: core.stats,
    view: core.view
  }
}
