/**
 * A shedder's admission step: reads the signal, asks the algorithm, counts and logs a drop. When
 * the signal can be read without an effect, the step also runs as one synchronous call (`now`),
 * which the server pipeline uses to admit without an effect per request.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { OverloadedError } from "../../Errors.js"
import * as Shedder from "../shedder.js"
import type * as Signal from "../shedderSignal.js"
import * as Metrics from "../sheddingMetrics.js"
import type { Decoded } from "./options.js"

export type Admitted = <A, E, R>(
  tier: number,
  arrivedAt: number | undefined,
  admitted: (start: number) => Effect.Effect<A, E, R>
) => Effect.Effect<A, E | OverloadedError, R>

/** Admission in one synchronous step: the start time of an admitted request, or the rejection. */
export type AdmitNow = (tier: number, arrivedAt: number | undefined) => number | Effect.Effect<never, OverloadedError>

/** What the shell hears from the admission step. */
export interface Hooks {
  readonly onAdmit: () => void
  readonly onDropped: (value: number, now: number) => void
}

/** The start time of an admitted request (`now`), or the rejection. */
type Step = (value: number, now: number, tier: number) => number | Effect.Effect<never, OverloadedError>

const stepOf = (decoded: Decoded, state: Shedder.State, hooks: Hooks): Step => {
  const { name } = decoded
  const rejected = Effect.fail(new OverloadedError({ shedder: name, reason: decoded.kind }, true))
  const shed = Shedder.priorities.map((p) => Metrics.shedRequestsOf(name, p))
  const { onAdmit, onDropped } = hooks

  const onDrop = (value: number, now: number, tier: number, wasHot: boolean): Effect.Effect<never, OverloadedError> => {
    shed[tier].unsafeUpdate(1, [])
    onDropped(value, now)
    if (wasHot) return rejected
    return Effect.zipRight(
      Effect.logWarning("load shedding started").pipe(
        Effect.annotateLogs({
          shedder: name,
          signal: decoded.kind,
          value,
          priority: Shedder.priorities[tier],
          flying: state.flying,
          avgFlying: state.avgFlying
        })
      ),
      rejected
    )
  }

  return (value, now, tier) => {
    const wasHot = state.droppedRecently[tier]
    if (!Shedder.allow(state, now, value, tier)) return onDrop(value, now, tier, wasHot)
    onAdmit()
    return now
  }
}

/**
 * The admission step: reads the signal and decides in one synchronous step when it can (`now`,
 * present when the signal can be read without an effect).
 */
export const admission = (
  decoded: Decoded,
  state: Shedder.State,
  signal: Signal.Reader,
  clock: Clock.Clock,
  hooks: Hooks
): { readonly run: Admitted; readonly now: AdmitNow | undefined } => {
  const step = stepOf(decoded, state, hooks)
  const record = signal.record

  const decide = <A, E, R>(
    value: number,
    now: number,
    tier: number,
    admitted: (start: number) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | OverloadedError, R> => {
    const decision = step(value, now, tier)
    return typeof decision === "number" ? admitted(decision) : decision
  }

  const unsafeRead = signal.unsafeRead
  if (unsafeRead === undefined) {
    return {
      run: (tier, arrivedAt, admitted) =>
        Effect.flatMap(signal.read, (value) =>
          Effect.suspend(() => {
            const now = clock.unsafeCurrentTimeMillis()
            if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
            return decide(value, now, tier, admitted)
          })),
      now: undefined
    }
  }
  const admitNow: AdmitNow = (tier, arrivedAt) => {
    const now = clock.unsafeCurrentTimeMillis()
    if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
    return step(unsafeRead(), now, tier)
  }
  return {
    run: (tier, arrivedAt, admitted) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        if (record !== undefined && arrivedAt !== undefined) record(now - arrivedAt, now)
        return decide(unsafeRead(), now, tier, admitted)
      }),
    now: admitNow
  }
}
