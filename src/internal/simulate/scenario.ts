/**
 * The simulator's scenario file: a policy stack (the keys of `Config`), a modelled downstream and
 * service, and a traffic profile in phases. Decoded with `effect/Schema`, so a bad field fails
 * naming its path.
 */
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "../../Errors.js"

// The schemas are built when the first scenario is decoded rather than when the toolkit is imported
// (the root import includes the simulator, and most programs never decode a scenario).

const numbers = () => {
  const NonNegative = Schema.Number.pipe(
    Schema.filter((n) => (Number.isFinite(n) && n >= 0) || "expected a number ≥ 0")
  )
  const Positive = Schema.Number.pipe(Schema.filter((n) => (Number.isFinite(n) && n > 0) || "expected a number > 0"))
  const Share = Schema.Number.pipe(Schema.filter((n) => (n > 0 && n <= 1) || "expected a number in (0, 1]"))
  const Probability = Schema.Number.pipe(Schema.filter((n) => (n >= 0 && n <= 1) || "expected a number in [0, 1]"))
  return { NonNegative, Positive, Share, Probability }
}

const downstreamSchemas = ({ NonNegative, Positive, Probability }: ReturnType<typeof numbers>) => {
  /** How long the downstream takes to answer, in milliseconds. */
  const Latency = Schema.Union(
    Schema.Struct({ distribution: Schema.Literal("constant"), ms: NonNegative }),
    Schema.Struct({ distribution: Schema.Literal("uniform"), minMs: NonNegative, maxMs: NonNegative }),
    Schema.Struct({ distribution: Schema.Literal("exponential"), meanMs: Positive }),
    Schema.Struct({ distribution: Schema.Literal("lognormal"), medianMs: Positive, p99Ms: Positive })
  )

  /** The downstream's behaviour; a phase overrides any of these fields. */
  const Downstream = Schema.Struct({
    latency: Schema.optionalWith(Latency, { default: () => ({ distribution: "constant" as const, ms: 20 }) }),
    /** share of calls that fail after their latency */
    errorRate: Schema.optionalWith(Probability, { default: () => 0 }),
    /** share of calls that hang for `hangMs` instead */
    hangRate: Schema.optionalWith(Probability, { default: () => 0 }),
    hangMs: Schema.optionalWith(NonNegative, { default: () => 10_000 }),
    /** down: every call fails after `downLatencyMs` */
    down: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    downLatencyMs: Schema.optionalWith(NonNegative, { default: () => 1 }),
    /** calls served at once; the rest wait in line (unbounded unless `queueLimit`) */
    capacity: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 1_000_000 }),
    /** calls that may wait; beyond it a call fails at once */
    queueLimit: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 1_000_000 })
  })

  const DownstreamPatch = Schema.partial(Schema.Struct(Downstream.fields).pipe(Schema.typeSchema))

  const User = Schema.Struct({
    id: Schema.String,
    weight: Positive,
    /** the rate-limit tier (a key of `tiers`); without one, the stack's `RateLimit` */
    tier: Schema.optional(Schema.String)
  })

  const Phase = Schema.Struct({
    name: Schema.String,
    durationSeconds: Positive,
    /** offered requests per second (open loop) */
    rps: NonNegative,
    /** when set, the rate moves linearly from `rps` to this over the phase */
    rampToRps: Schema.optional(NonNegative),
    downstream: Schema.optional(DownstreamPatch),
    /** the users who send this phase's requests, instead of `traffic.users` (e.g. a warm-up's own) */
    users: Schema.optional(Schema.NonEmptyArray(User))
  })
  return { Latency, Downstream, User, Phase }
}

const serviceSchemas = ({ NonNegative, Positive, Share }: ReturnType<typeof numbers>) => {
  /**
   * The service's own event loop: every request is work on it, in arrival order, so an overloaded
   * service answers late and its overload signals rise.
   */
  const Service = Schema.Struct({
    /** CPU time an admitted request takes on the loop, ms: half before the downstream call, half after */
    cpuMsPerRequest: Schema.optionalWith(NonNegative, { default: () => 0 }),
    /** CPU time a rejection takes (parse, decide, answer 503 or 429), ms; default a quarter of `cpuMsPerRequest` */
    cpuMsPerRejection: Schema.optional(NonNegative),
    /** CPU time the client's handling of one try's answer (or its timeout) takes, ms */
    cpuMsPerTry: Schema.optionalWith(NonNegative, { default: () => 0 }),
    /** the CPU quota the CPU signal divides by */
    cores: Schema.optionalWith(Positive, { default: () => 1 }),
    /**
     * the share of one core the process gets while it has work (busy neighbours): one share, or
     * one per step of `everyMs` from the start (a trace of what a real process got; past its end,
     * the last share)
     */
    cpuShare: Schema.optionalWith(
      Schema.Union(
        Share,
        Schema.Struct({ everyMs: Positive, shares: Schema.NonEmptyArray(Share) })
      ),
      { default: () => 1 }
    ),
    /** with a `cpuShare` under 1: the time slice the host's scheduler gives the process, ms */
    sliceMs: Schema.optionalWith(Positive, { default: () => 4 })
  })

  /** The load shedder's signal, as `LoadShedder`'s signal constructors take it. */
  const Shedder = Schema.Struct({
    signal: Schema.Literal("eventLoopUtilization", "eventLoopDelay", "queueDelay", "cpu"),
    /** a ratio in (0, 1) for utilization, ms for delays, per-mille for the CPU */
    threshold: Schema.optional(Schema.Number),
    /** the wait per request the flight limit allows for, ms (not for the CPU signal) */
    allowanceMs: Schema.optional(NonNegative)
  })

  const RateLimitTier = Schema.Struct({ rate: Positive, burst: Schema.Int.pipe(Schema.positive()) })

  /**
   * The service's client for the downstream, as `ResilientHttpClient` options: a per-try timeout,
   * retries with exponential backoff and full jitter, a breaker for the host (the stack's `Breaker`
   * settings) and a bulkhead.
   */
  const Client = Schema.Struct({
    timeoutMs: Schema.optional(Positive),
    retries: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 0 }),
    backoff: Schema.optionalWith(
      Schema.Struct({
        baseMs: Schema.optionalWith(Positive, { default: () => 100 }),
        capMs: Schema.optionalWith(Positive, { default: () => 2000 })
      }),
      { default: () => ({ baseMs: 100, capMs: 2000 }) }
    ),
    breaker: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    bulkhead: Schema.optional(Schema.Struct({
      maxConcurrent: Schema.Int.pipe(Schema.positive()),
      maxQueue: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 0 }),
      queueTimeoutMs: Schema.optionalWith(NonNegative, { default: () => 0 })
    }))
  })
  return { Service, Shedder, RateLimitTier, Client }
}

const makeScenario = () => {
  const n = numbers()
  const { Downstream, Phase, User } = downstreamSchemas(n)
  const { Client, RateLimitTier, Service, Shedder } = serviceSchemas(n)
  const Scenario = Schema.Struct({
    name: Schema.String,
    seed: Schema.optionalWith(Schema.Int, { default: () => 1 }),
    /** the keys of `Config` (`Name`, `Timeout`, `MaxConns`, `CpuThreshold`, `RateLimit`, `Breaker`, `Middlewares`) */
    stack: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
    /** per-user rate limits by tier, token buckets: users name their tier */
    tiers: Schema.optionalWith(Schema.Record({ key: Schema.String, value: RateLimitTier }), { default: () => ({}) }),
    /** how the service calls the downstream (default: one try, no timeout of its own) */
    client: Schema.optionalWith(Client, { default: () => Schema.decodeSync(Client)({}) }),
    /** policies decide and count but admit everything */
    shadow: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    service: Schema.optionalWith(Service, { default: () => Schema.decodeSync(Service)({}) }),
    /** the load shedder's signal when `stack` does not set `CpuThreshold` (default: the library's default shedder) */
    shedder: Schema.optional(Shedder),
    downstream: Schema.optionalWith(Downstream, { default: () => Schema.decodeSync(Downstream)({}) }),
    traffic: Schema.optionalWith(
      Schema.Struct({
        arrivals: Schema.optionalWith(Schema.Literal("poisson", "uniform"), { default: () => "poisson" as const }),
        /** a number of equally busy users, or weighted users: the rate-limit key of each request */
        users: Schema.optionalWith(Schema.Union(Schema.Int.pipe(Schema.positive()), Schema.Array(User)), {
          default: () => 100
        })
      }),
      { default: () => ({ arrivals: "poisson" as const, users: 100 }) }
    ),
    phases: Schema.NonEmptyArray(Phase)
  })
  return Scenario
}

type Downstreams = ReturnType<typeof downstreamSchemas>
type Services = ReturnType<typeof serviceSchemas>

/** How long the downstream takes to answer, in milliseconds. */
export type Latency = Downstreams["Latency"]["Type"]
/** The downstream's behaviour; a phase overrides any of these fields. */
export type Downstream = Downstreams["Downstream"]["Type"]
export type Phase = Downstreams["Phase"]["Type"]
/** The service's own event loop. */
export type Service = Services["Service"]["Type"]
/** The load shedder's signal, as `LoadShedder`'s signal constructors take it. */
export type Shedder = Services["Shedder"]["Type"]
export type Client = Services["Client"]["Type"]
type ScenarioSchema = ReturnType<typeof makeScenario>
export type Scenario = ScenarioSchema["Type"]
export type ScenarioInput = ScenarioSchema["Encoded"]

let built: ScenarioSchema | undefined

/** Decodes a parsed scenario file, failing with `InvalidOptionsError` naming the field. */
export const decode = (input: unknown): Effect.Effect<Scenario, InvalidOptionsError> =>
  Schema.decodeUnknown(built ??= makeScenario(), { errors: "all", onExcessProperty: "error" })(input).pipe(
    Effect.mapError((error) =>
      new InvalidOptionsError({
        module: "Simulator",
        option: "scenario",
        value: undefined,
        reason: ParseResult.TreeFormatter.formatErrorSync(error)
      })
    )
  )
