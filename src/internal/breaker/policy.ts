/**
 * Breaker policies: their option schemas, and the decoded `Spec` a breaker is built from. A spec
 * holds everything breakers of one policy share (parameters, predicates, the open period), so a
 * registry that builds many breakers from one policy decodes it once (`SpecCache`) and every
 * breaker carries only its own counting state.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Counts, OpenFor, Policy } from "../../CircuitBreaker.js"
import type { InvalidOptionsError } from "../../Errors.js"
import {
  decodeOptionsEither,
  Name,
  NonNegativeDuration,
  NonNegativeNumber,
  parseDurationInput,
  PositiveDuration,
  PositiveInt,
  PositiveNumber,
  Probability
} from "../options.js"
import * as Core from "./core.js"
import * as Machine from "./machine.js"

/** Marks a `Policy` value. */
export const PolicyTypeId: unique symbol = Symbol.for("effect-resilience/CircuitBreaker/Policy")

const isPositiveDurationInput = (u: unknown): boolean => {
  const parsed = parseDurationInput(u)
  return Either.isRight(parsed) && Duration.isFinite(parsed.right) && Duration.toMillis(parsed.right) > 0
}

const windowCheck = <A extends { readonly window: Duration.Duration; readonly buckets: number }>(o: A) =>
  Duration.toMillis(o.window) / o.buckets >= 1 ||
  { path: ["window"], message: `window must give each of the ${o.buckets} buckets at least 1 millisecond` }

/** The schemas and fields the policies share. */
const sharedFields = () => {
  const Fn = Schema.declare(
    (u: unknown): u is (...args: ReadonlyArray<any>) => any => typeof u === "function",
    { identifier: "Function", message: () => "expected a function" }
  )

  const OpenForSchema = Schema.declare(
    (u: unknown): u is OpenFor => Schedule.isSchedule(u) || isPositiveDurationInput(u),
    { identifier: "OpenFor", message: () => "expected a positive duration or a Schedule" }
  )

  const EffectSchema = Schema.declare(
    (u: unknown): u is Effect.Effect<unknown, unknown> => Effect.isEffect(u),
    { identifier: "Effect", message: () => "expected an Effect" }
  )

  const ProbeSchema = Schema.Struct({ effect: EffectSchema, every: PositiveDuration })

  const RampSchema = Schema.Struct({
    from: Probability.pipe(Schema.filter((n) => n > 0 || "expected a share above 0")),
    over: PositiveDuration
  })

  const common = {
    name: Name,
    isFailure: Schema.optional(Fn),
    isExcluded: Schema.optional(Fn),
    probe: Schema.optional(ProbeSchema),
    ramp: Schema.optional(RampSchema)
  }

  const machineFields = {
    ...common,
    openFor: Schema.optionalWith(OpenForSchema, { default: () => "60 seconds" as OpenFor }),
    halfOpenMaxCalls: Schema.optionalWith(PositiveInt, { default: () => 1 })
  }

  const slowFields = {
    slowCallDuration: Schema.optional(PositiveDuration),
    slowCallRateThreshold: Schema.optionalWith(Probability, { default: () => 1 })
  }
  return { Fn, common, machineFields, slowFields }
}

// every option is checked, and an option no policy knows (a typo, another policy's option) is an error
const exact = { exact: true }
const makeDecoders = () => {
  const { Fn, common, machineFields, slowFields } = sharedFields()
  const SreSchema = Schema.Struct({
    ...common,
    k: Schema.optionalWith(PositiveNumber, { default: () => 1.5 }),
    minK: Schema.optionalWith(PositiveNumber, { default: () => 1.1 }),
    protection: Schema.optionalWith(NonNegativeNumber, { default: () => 5 }),
    window: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(10) }),
    buckets: Schema.optionalWith(PositiveInt, { default: () => 40 }),
    forcePassAfter: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(1) })
  }).pipe(
    // below 1 the formula drops calls while every call succeeds: (1 − k) · accepts > protection
    Schema.filter((o) => o.k >= 1 || { path: ["k"], message: "k must be at least 1" }),
    Schema.filter((o) => o.minK <= o.k || { path: ["minK"], message: "minK must not exceed k" }),
    Schema.filter(windowCheck)
  )

  const ConsecutiveSchema = Schema.Struct({
    ...machineFields,
    threshold: Schema.optionalWith(PositiveInt, { default: () => 5 })
  })

  const CountWindowSchema = Schema.Struct({
    ...machineFields,
    ...slowFields,
    size: Schema.optionalWith(PositiveInt, { default: () => 100 }),
    minimumCalls: Schema.optional(PositiveInt),
    failureRateThreshold: Schema.optionalWith(Probability, { default: () => 0.5 })
  }).pipe(
    Schema.filter((o) =>
      o.minimumCalls === undefined || o.minimumCalls <= o.size ||
      { path: ["minimumCalls"], message: "minimumCalls must not exceed size" }
    )
  )

  const TimeWindowSchema = Schema.Struct({
    ...machineFields,
    ...slowFields,
    window: Schema.optionalWith(PositiveDuration, { default: () => Duration.seconds(10) }),
    buckets: Schema.optionalWith(PositiveInt, { default: () => 10 }),
    minimumCalls: Schema.optionalWith(PositiveInt, { default: () => 20 }),
    failureRateThreshold: Schema.optionalWith(Probability, { default: () => 0.5 })
  }).pipe(Schema.filter(windowCheck))

  const CustomSchema = Schema.Struct({
    ...machineFields,
    readyToTrip: Schema.optional(Fn),
    interval: Schema.optionalWith(NonNegativeDuration, { default: () => Duration.zero })
  })

  return {
    Sre: decodeOptionsEither("CircuitBreaker.sre", SreSchema, exact),
    Consecutive: decodeOptionsEither("CircuitBreaker.consecutive", ConsecutiveSchema, exact),
    CountWindow: decodeOptionsEither("CircuitBreaker.countWindow", CountWindowSchema, exact),
    TimeWindow: decodeOptionsEither("CircuitBreaker.timeWindow", TimeWindowSchema, exact),
    Custom: decodeOptionsEither("CircuitBreaker.custom", CustomSchema, exact)
  }
}

// the option schemas are built when the first policy is decoded rather than when the toolkit is
// imported, which every importer would pay whether it builds a breaker or not
let decodersBuilt: ReturnType<typeof makeDecoders> | undefined
const decoders = () => decodersBuilt ??= makeDecoders()

/** What breakers of one policy share; each breaker adds its name and its own core. */
export interface Spec {
  readonly isFailure: (error: unknown) => boolean
  readonly isExcluded: ((error: unknown) => boolean) | undefined
  /** a fresh core, empty at `now` */
  readonly makeCore: (now: number) => Core.Core
  /** state machines with a Schedule for `openFor`: its delays, one per successive trip */
  readonly openForDelays: Schedule.Schedule<Duration.Duration, unknown> | undefined
  /** slow calls are tracked: every call is timed from its admission */
  readonly timesCalls: boolean
  /** the active recovery probe, run while the breaker is not Closed */
  readonly probe: Probe | undefined
  /** the admission ramp after closing */
  readonly ramp: Ramp | undefined
}

/** A decoded recovery probe. */
export interface Probe {
  readonly effect: Effect.Effect<unknown, unknown>
  readonly everyMillis: number
}

/** A decoded admission ramp: `from` of calls admitted at the close, all of them `overMillis` later. */
export interface Ramp {
  readonly from: number
  readonly overMillis: number
}

interface Extras {
  readonly probe?: { readonly effect: Effect.Effect<unknown, unknown>; readonly every: Duration.Duration } | undefined
  readonly ramp?: { readonly from: number; readonly over: Duration.Duration } | undefined
}

const extrasOf = (o: Extras): Pick<Spec, "probe" | "ramp"> => ({
  probe: o.probe === undefined ? undefined : { effect: o.probe.effect, everyMillis: Duration.toMillis(o.probe.every) },
  ramp: o.ramp === undefined ? undefined : { from: o.ramp.from, overMillis: Duration.toMillis(o.ramp.over) }
})

const everyErrorFails = () => true

const defaultReadyToTrip = (c: Counts): boolean => c.consecutiveFailures > 5

const slowMillisOf = (o: { readonly slowCallDuration?: Duration.Duration | undefined }): number =>
  o.slowCallDuration === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(o.slowCallDuration)

const slowRateOf = (o: { readonly slowCallDuration?: Duration.Duration | undefined; slowCallRateThreshold: number }) =>
  o.slowCallDuration === undefined ? Number.POSITIVE_INFINITY : o.slowCallRateThreshold

interface MachineDecoded extends Extras {
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  readonly isExcluded?: ((error: unknown) => boolean) | undefined
  readonly openFor: OpenFor
  readonly halfOpenMaxCalls: number
}

const machineSpec = (
  o: MachineDecoded,
  rule: () => Machine.Rule,
  intervalMillis: number,
  slowMillis: number
): Spec => {
  const openFor = Schedule.isSchedule(o.openFor)
    ? o.openFor as Schedule.Schedule<unknown, unknown>
    : Duration.toMillis(Duration.decode(o.openFor as Duration.DurationInput))
  return {
    isFailure: o.isFailure ?? everyErrorFails,
    isExcluded: o.isExcluded,
    makeCore: (now) =>
      new Core.MachineCore(
        { intervalMillis, halfOpenMaxCalls: o.halfOpenMaxCalls, rule: rule() },
        typeof openFor === "number" ? openFor : 0,
        slowMillis,
        now
      ),
    openForDelays: typeof openFor === "number" ? undefined : Schedule.delays(openFor),
    timesCalls: Number.isFinite(slowMillis),
    ...extrasOf(o)
  }
}

const specOf = (policy: Policy): Either.Either<{ readonly name: string; readonly spec: Spec }, InvalidOptionsError> => {
  switch (policy._tag) {
    case "Sre":
      return Either.map(decoders().Sre(policy.options), (o) => {
        const params = {
          k: o.k,
          minK: o.minK,
          protection: o.protection,
          windowMillis: Duration.toMillis(o.window),
          buckets: o.buckets,
          forcePassAfterMillis: Duration.toMillis(o.forcePassAfter)
        }
        const spec: Spec = {
          isFailure: o.isFailure ?? everyErrorFails,
          isExcluded: o.isExcluded,
          makeCore: (now) => new Core.SreCore(params, now),
          openForDelays: undefined,
          timesCalls: false,
          ...extrasOf(o)
        }
        return { name: o.name, spec }
      })
    case "Consecutive":
      return Either.map(decoders().Consecutive(policy.options), (o) => ({
        name: o.name,
        spec: machineSpec(o, () => Machine.consecutiveRule(o.threshold), 0, Number.POSITIVE_INFINITY)
      }))
    case "CountWindow":
      return Either.map(decoders().CountWindow(policy.options), (o) => ({
        name: o.name,
        spec: machineSpec(
          o,
          () =>
            Machine.countWindowRule(o.size, {
              minimumCalls: o.minimumCalls ?? o.size,
              failureRateThreshold: o.failureRateThreshold,
              slowCallRateThreshold: slowRateOf(o)
            }),
          0,
          slowMillisOf(o)
        )
      }))
    case "TimeWindow":
      return Either.map(decoders().TimeWindow(policy.options), (o) => ({
        name: o.name,
        spec: machineSpec(
          o,
          () =>
            Machine.timeWindowRule(Duration.toMillis(o.window), o.buckets, {
              minimumCalls: o.minimumCalls,
              failureRateThreshold: o.failureRateThreshold,
              slowCallRateThreshold: slowRateOf(o)
            }, 0),
          0,
          slowMillisOf(o)
        )
      }))
    case "Custom":
      return Either.map(decoders().Custom(policy.options), (o) => ({
        name: o.name,
        spec: machineSpec(
          o,
          () => Machine.customRule(o.readyToTrip ?? defaultReadyToTrip),
          Duration.toMillis(o.interval),
          Number.POSITIVE_INFINITY
        )
      }))
  }
}

/** Decodes a policy: its breaker's name and spec, or the first invalid option. */
export const decode = specOf

const CACHE_LIMIT = 256

/**
 * Decodes policies that differ only in `name` once. A registry's `policy(name)` usually returns
 * the same options for every name; decoding them with Schema costs far more than building the
 * breaker. Options are compared by value for primitives and by identity for functions and
 * objects, so a policy function that builds a new object (a `Duration`, a `Schedule`) per call
 * is simply decoded each time.
 */
export class SpecCache {
  private readonly specs = new Map<string, Spec>()
  private readonly ids = new WeakMap<object, number>()
  private nextId = 0

  private idOf(o: object): number {
    let id = this.ids.get(o)
    if (id === undefined) {
      id = this.nextId++
      this.ids.set(o, id)
    }
    return id
  }

  private fingerprint(policy: Policy): string {
    const options = policy.options as unknown as Record<string, unknown>
    let key = policy._tag
    for (const field of Object.keys(options).sort()) {
      if (field === "name") continue
      const value = options[field]
      key += typeof value === "object" && value !== null || typeof value === "function"
        ? `|${field}#${this.idOf(value)}`
        : `|${field}:${typeof value}:${String(value)}`
    }
    return key
  }

  decode(policy: Policy): Either.Either<{ readonly name: string; readonly spec: Spec }, InvalidOptionsError> {
    const name = policy.options.name
    const key = this.fingerprint(policy)
    const cached = this.specs.get(key)
    if (cached !== undefined && typeof name === "string" && name.length > 0) return Either.right({ name, spec: cached })
    const decoded = specOf(policy)
    if (Either.isRight(decoded)) {
      if (this.specs.size >= CACHE_LIMIT) this.specs.clear()
      this.specs.set(key, decoded.right.spec)
    }
    return decoded
  }
}
