/**
 * The overload signal a load shedder reads: decoding a signal choice into the shedder's
 * parameters (threshold, priority threshold, how the limit scales, the waiting allowance), and
 * finding the signal's service — the one in context, or a live sampler in the shedder's scope.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CpuUsage from "../CpuUsage.js"
import type { InvalidOptionsError } from "../Errors.js"
import * as EventLoopDelay from "../EventLoopDelay.js"
import * as EventLoopUtilization from "../EventLoopUtilization.js"
import * as QueueDelay from "../QueueDelay.js"
import { decodeOptions, NonNegativeDuration, PositiveDuration } from "./options.js"
import * as Shedder from "./shedder.js"

export type Kind = "cpu" | "event-loop-utilization" | "event-loop-delay" | "queue-delay"

/** A signal choice as the user writes it. */
export type Choice =
  | { readonly _tag: "Cpu"; readonly threshold?: number }
  | {
    readonly _tag: "EventLoopUtilization"
    readonly threshold?: number
    readonly allowance?: Duration.DurationInput
  }
  | {
    readonly _tag: "EventLoopDelay"
    readonly threshold?: Duration.DurationInput
    readonly allowance?: Duration.DurationInput
  }
  | {
    readonly _tag: "QueueDelay"
    readonly threshold?: Duration.DurationInput
    readonly allowance?: Duration.DurationInput
  }

/** Buckets `maxPass` averages over with an event-loop signal: half a second of 100 ms buckets. */
const eventLoopPassSpan = 5

/** The defaults of each signal. */
export const signalDefaults = {
  cpu: { threshold: 900 },
  eventLoopUtilization: { threshold: 0.9, allowance: Duration.millis(50) },
  eventLoopDelay: { threshold: Duration.millis(25), allowance: Duration.millis(50) },
  queueDelay: { threshold: Duration.millis(5), allowance: Duration.millis(50) }
} as const

/** The shedder's parameters that depend on the signal. */
export type SignalParams = Pick<
  Shedder.Params,
  "threshold" | "priorityThreshold" | "factor" | "allowanceMillis" | "averageGuard" | "tierShares" | "passSpan"
>

export interface Decoded {
  readonly kind: Kind
  readonly params: SignalParams
}

const CpuThreshold = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 0 && n < 1000) || "expected an integer in [0, 999]")
)
const Utilization = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0 && n < 1) || "expected a number in (0, 1)")
)

const ChoiceSchema = () =>
  Schema.Union(
    Schema.Struct({ _tag: Schema.Literal("Cpu"), threshold: Schema.optional(CpuThreshold) }),
    Schema.Struct({
      _tag: Schema.Literal("EventLoopUtilization"),
      threshold: Schema.optional(Utilization),
      allowance: Schema.optional(NonNegativeDuration)
    }),
    ...(["EventLoopDelay", "QueueDelay"] as const).map((tag) =>
      Schema.Struct({
        _tag: Schema.Literal(tag),
        threshold: Schema.optional(PositiveDuration),
        allowance: Schema.optional(NonNegativeDuration)
      })
    )
  )

const decodeChoice = decodeOptions("LoadShedder", () => Schema.Struct({ signal: ChoiceSchema() }))

const millis = (d: Duration.Duration | undefined, fallback: Duration.Duration) => Duration.toMillis(d ?? fallback)

/** go-zero's priority threshold: halfway between the threshold and the maximum. */
const halfwayTo = (max: number, threshold: number) => (threshold + max) / 2

/** Decodes a signal choice; a bad field fails with `InvalidOptionsError` naming `signal.<field>`. */
export const decode = (choice: Choice): Effect.Effect<Decoded, InvalidOptionsError> =>
  Effect.map(decodeChoice({ signal: choice }), ({ signal }): Decoded => {
    switch (signal._tag) {
      case "Cpu": {
        const threshold = signal.threshold ?? signalDefaults.cpu.threshold
        return {
          kind: "cpu",
          params: {
            threshold,
            priorityThreshold: Math.floor(halfwayTo(1000, threshold)),
            factor: { _tag: "bounded", max: 1000 },
            allowanceMillis: 0,
            averageGuard: true,
            tierShares: Shedder.goZeroTierShares,
            passSpan: 1
          }
        }
      }
      case "EventLoopUtilization": {
        const threshold = signal.threshold ?? signalDefaults.eventLoopUtilization.threshold
        return {
          kind: "event-loop-utilization",
          params: {
            threshold,
            priorityThreshold: halfwayTo(1, threshold),
            factor: { _tag: "none" },
            allowanceMillis: millis(signal.allowance, signalDefaults.eventLoopUtilization.allowance),
            averageGuard: false,
            tierShares: Shedder.eventLoopTierShares,
            passSpan: eventLoopPassSpan
          }
        }
      }
      case "EventLoopDelay":
      case "QueueDelay": {
        const defaults = signal._tag === "EventLoopDelay" ? signalDefaults.eventLoopDelay : signalDefaults.queueDelay
        const threshold = millis(signal.threshold, defaults.threshold)
        return {
          kind: signal._tag === "EventLoopDelay" ? "event-loop-delay" : "queue-delay",
          params: {
            threshold,
            priorityThreshold: 2 * threshold,
            factor: { _tag: "ratio" },
            allowanceMillis: millis(signal.allowance, defaults.allowance),
            averageGuard: false,
            tierShares: Shedder.eventLoopTierShares,
            passSpan: eventLoopPassSpan
          }
        }
      }
    }
  })

/** A signal the shedder can read. */
export interface Reader {
  readonly kind: Kind
  /** the value now, synchronously, when the service can give it */
  readonly unsafeRead: (() => number) | undefined
  readonly read: Effect.Effect<number>
  /** records a request's wait (queue delay only) */
  readonly record: ((waitMillis: number, now: number) => void) | undefined
}

const serviceOr = <I, S>(
  tag: Context.Tag<I, S>,
  live: Layer.Layer<I>
): Effect.Effect<S, never, Scope.Scope> =>
  Effect.flatMap(Effect.serviceOption(tag), (found) =>
    Option.isSome(found)
      ? Effect.succeed(found.value)
      : Effect.map(Layer.build(live), (context) => Context.get(context, tag)))

/** The service of `kind` from context, or a live one owned by the current scope. */
export const reader = (kind: Kind): Effect.Effect<Reader, never, Scope.Scope> => {
  switch (kind) {
    case "cpu":
      return Effect.map(serviceOr(CpuUsage.CpuUsage, CpuUsage.layer), (s) => ({
        kind,
        unsafeRead: s.unsafeCurrent,
        read: s.current,
        record: undefined
      }))
    case "event-loop-utilization":
      return Effect.map(
        serviceOr(EventLoopUtilization.EventLoopUtilization, EventLoopUtilization.layer),
        (s) => ({ kind, unsafeRead: s.unsafeCurrent, read: s.current, record: undefined })
      )
    case "event-loop-delay":
      return Effect.map(
        serviceOr(EventLoopDelay.EventLoopDelay, EventLoopDelay.layer),
        (s) => ({ kind, unsafeRead: s.unsafeCurrent, read: s.current, record: undefined })
      )
    case "queue-delay":
      return Effect.map(
        serviceOr(QueueDelay.QueueDelay, QueueDelay.layer),
        (s) => ({ kind, unsafeRead: s.unsafeCurrent, read: s.current, record: s.unsafeRecord })
      )
  }
}
