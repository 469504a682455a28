/**
 * Chaos engineering for Effect programs (the strategies Polly v8 calls chaos): inject faults,
 * latency, fake outcomes (an HTTP 503) and extra behaviour into a share of calls, to see the
 * protections around them work before production needs them.
 *
 * An `Injector` decides, for each call, whether to inject: it must be enabled (off unless
 * enabled, switchable at run time), the call must fall in an open window when a window schedule
 * is given, and a uniform draw from `Random` must fall below `rate`. Strategies say what happens
 * to an injected call: `fault`, `latency`, `outcome`, `behavior`, and for HTTP `httpStatus`
 * (server), `clientStatus` and `clientFault` (client). Time comes from `Clock` and randomness
 * from `Random`, so everything is deterministic under `TestClock` and `TestRandom`.
 *
 * When the injector is off a strategy costs one synchronous check and runs the effect untouched.
 * Every injection counts in `resilience_chaos_injections_total{name,kind}`.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * declare const queryUsers: Effect.Effect<ReadonlyArray<string>>
 *
 * const program = Effect.gen(function*() {
 *   const chaos = yield* Chaos.make({
 *     name: "users",
 *     enabled: true,
 *     rate: 0.05,
 *     // for one minute every ten minutes
 *     window: { schedule: Schedule.spaced("10 minutes"), duration: "1 minute" }
 *   })
 *   return yield* queryUsers.pipe(
 *     Chaos.latency(chaos, "2 seconds"),
 *     Chaos.fault(chaos, () => new Error("injected"))
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import { InvalidOptionsError } from "./Errors.js"
import * as internal from "./internal/chaos.js"
import { Name, parseDurationInput, PositiveDuration, Probability, toInvalidOptions } from "./internal/options.js"

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * When injection is allowed: a window opens each time `schedule` fires and stays open for
 * `duration`. The schedule starts when the injector is made and is stepped as a driver that is
 * always on time would step it (`Schedule.spaced("1 hour")`: windows at 1 h, 2 h, …;
 * `Schedule.cron("0 14 * * *")`: every day at 14:00). A schedule that ends closes the last
 * window for good.
 *
 * @since 0.2.0
 * @category models
 */
export interface Window {
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly duration: Duration.DurationInput
}

/**
 * Options of `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** names the injector in metrics and logs */
  readonly name: string
  /** injection happens only while enabled (default `false`: off unless enabled) */
  readonly enabled?: boolean | undefined
  /** share of calls injected, in [0, 1] (default 0.001, Polly's default: one call in a thousand) */
  readonly rate?: number | undefined
  /** inject only inside the windows of a schedule (default: always) */
  readonly window?: Window | undefined
}

/**
 * A snapshot of an injector.
 *
 * @since 0.2.0
 * @category models
 */
export interface Status {
  readonly name: string
  readonly enabled: boolean
  readonly rate: number
  /** `"none"` without a window schedule */
  readonly window: "none" | "open" | "closed"
  /** calls seen while enabled, inside a window or not */
  readonly decisions: number
  /** calls injected */
  readonly injections: number
}

/**
 * Decides, per call, whether to inject. Build one with `make`; strategies take it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Injector {
  readonly name: string
  /** whether the current call is injected (counts it in `status`) */
  readonly decide: Effect.Effect<boolean>
  /**
   * the decision as strategies take it, on the calling fiber: a plain boolean when it needs no
   * effect (off, outside a window, rate 0 or 1), otherwise the effect that draws from `Random`
   */
  readonly unsafeDecide: (fiber: Fiber.RuntimeFiber<unknown, unknown>) => boolean | Effect.Effect<boolean>
  readonly enable: Effect.Effect<void>
  readonly disable: Effect.Effect<void>
  /** changes the rate at run time; a rate outside [0, 1] fails with `InvalidOptionsError` */
  readonly setRate: (rate: number) => Effect.Effect<void, InvalidOptionsError>
  readonly status: Effect.Effect<Status>
}

/**
 * What a strategy returns: a combinator applying it to any effect. `A2`, `E2` and `R2` are what
 * an injected call may add (an outcome's value, a fault's error, a behaviour's requirements).
 *
 * @since 0.2.0
 * @category models
 */
export interface Injection<A2 = never, E2 = never, R2 = never> {
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A | A2, E | E2, R | R2>
}

/**
 * What a client strategy returns: a transform for `HttpClient.transform`, which also sees the
 * request. Every `Injection` that adds no value (`fault`, `latency`, `behavior`) is one too.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClientInjection<E2 = never, R2 = never> {
  <E, R>(
    send: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>,
    request: HttpClientRequest.HttpClientRequest
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, E | E2, R | R2>
}

/**
 * `resilience_chaos_injections_total{name,kind}`: calls injected, by injector and strategy
 * (`fault`, `latency`, `outcome`, `behavior`, `http-status`, `client-status`, `client-fault`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const injectionsTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_chaos_injections_total", {
  description: "calls into which chaos was injected",
  incremental: true
})

// ---------------------------------------------------------------------------------------------
// Injector
// ---------------------------------------------------------------------------------------------

const ScheduleFromSelf = Schema.declare(
  (u: unknown): u is Schedule.Schedule<unknown, unknown> => Schedule.isSchedule(u),
  { identifier: "Schedule", message: () => "expected a Schedule" }
)

const OptionsSchema = Schema.Struct({
  name: Name,
  enabled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  rate: Schema.optionalWith(Probability, { default: () => 0.001 }),
  window: Schema.optional(Schema.Struct({ schedule: ScheduleFromSelf, duration: PositiveDuration }))
})

/** Decodes like the other constructors, but an unknown key is an error too (a typo must not pass silently). */
const strictDecoder = <A, I>(module: string, schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "error" })
  return (input: unknown): Effect.Effect<A, InvalidOptionsError> => {
    const result = decode(input)
    return Either.isRight(result)
      ? Effect.succeed(result.right)
      : Effect.fail(toInvalidOptions(module, input, result.left))
  }
}

const decodeOptions = strictDecoder("Chaos", OptionsSchema)

const nextFireOf = (decision: ScheduleDecision.ScheduleDecision): number | undefined =>
  ScheduleDecision.isDone(decision) ? undefined : ScheduleIntervals.start(decision.intervals)

/**
 * Builds an injector, failing with `InvalidOptionsError` (naming the option) for a bad option or
 * an unknown key. With a window, the schedule starts now.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Injector, InvalidOptionsError> =>
  Effect.gen(function*() {
    const o = yield* decodeOptions(options)
    const name = o.name
    let window: internal.WindowState | undefined
    let schedule: Schedule.Schedule<unknown, unknown> | undefined
    if (o.window !== undefined) {
      schedule = o.window.schedule
      const now = yield* Clock.currentTimeMillis
      const [scheduleState, , decision] = yield* schedule.step(now, undefined, schedule.initial)
      window = internal.makeWindow(
        Duration.toMillis(o.window.duration),
        nextFireOf(decision) ?? Infinity,
        scheduleState
      )
    }
    const state: internal.InjectorState = { enabled: o.enabled, rate: o.rate, decisions: 0, injections: 0, window }
    const stepping = yield* Effect.makeSemaphore(1)

    /** Steps the window schedule through every firing up to `now`, one stepper at a time. */
    const advance = (w: internal.WindowState, s: Schedule.Schedule<unknown, unknown>, now: number) => {
      const loop: Effect.Effect<void> = Effect.suspend(() =>
        internal.isDue(w, now)
          ? Effect.flatMap(s.step(w.nextFire, undefined, w.scheduleState), ([next, , decision]) => {
            internal.fire(w, nextFireOf(decision), next)
            return loop
          })
          : Effect.void
      )
      const wasOpen = internal.isOpen(w, now)
      return stepping.withPermits(1)(loop).pipe(
        Effect.zipRight(Effect.suspend(() =>
          !wasOpen && internal.isOpen(w, now)
            ? Effect.logInfo("chaos window open").pipe(
              Effect.annotateLogs({ "chaos.name": name, "chaos.until": new Date(w.openUntil).toISOString() })
            )
            : Effect.void
        ))
      )
    }

    const unsafeDecide = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean | Effect.Effect<boolean> => {
      const services = fiber.currentDefaultServices
      const now = window === undefined ? 0 : Context.get(services, Clock.Clock).unsafeCurrentTimeMillis()
      switch (internal.decide(state, now)) {
        case "skip":
          return false
        case "inject":
          state.injections++
          return true
        case "draw":
          return Effect.map(Context.get(services, Random.Random).next, (uniform) => {
            const injected = internal.accept(state.rate, uniform)
            if (injected) state.injections++
            return injected
          })
        case "advance":
          return Effect.zipRight(advance(window!, schedule!, now), decide)
      }
    }
    const decide: Effect.Effect<boolean> = Effect.withFiberRuntime((fiber) => {
      const decision = unsafeDecide(fiber)
      return typeof decision === "boolean" ? Effect.succeed(decision) : decision
    })

    const log = (message: string) =>
      Effect.logInfo(message).pipe(
        Effect.annotateLogs({ "chaos.name": name, "chaos.enabled": state.enabled, "chaos.rate": state.rate })
      )
    const setEnabled = (enabled: boolean) =>
      Effect.suspend(() => {
        if (state.enabled === enabled) return Effect.void
        state.enabled = enabled
        return log(enabled ? "chaos enabled" : "chaos disabled")
      })
    const decodeRate = Schema.decodeUnknownEither(Probability)
    const setRate = (rate: number): Effect.Effect<void, InvalidOptionsError> =>
      Effect.suspend(() => {
        if (Either.isLeft(decodeRate(rate))) {
          return Effect.fail(
            new InvalidOptionsError({
              module: "Chaos",
              option: "rate",
              value: rate,
              reason: "expected a number between 0 and 1"
            })
          )
        }
        state.rate = rate
        return log("chaos rate changed")
      })
    const status: Effect.Effect<Status> = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => {
        const snapshot = (): Status => ({
          name,
          enabled: state.enabled,
          rate: state.rate,
          window: window === undefined ? "none" : internal.isOpen(window, now) ? "open" : "closed",
          decisions: state.decisions,
          injections: state.injections
        })
        return window !== undefined && internal.isDue(window, now)
          ? Effect.as(advance(window, schedule!, now), undefined).pipe(Effect.map(snapshot))
          : Effect.sync(snapshot)
      }
    )

    return {
      name,
      decide,
      unsafeDecide,
      enable: setEnabled(true),
      disable: setEnabled(false),
      setRate,
      status
    } satisfies Injector
  })

/**
 * Provides an injector under your own tag.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I>(tag: Context.Tag<I, Injector>, options: Options): Layer.Layer<I, InvalidOptionsError> =>
  Layer.effect(tag, make(options))

const windowConfig = Config.all({
  every: Config.option(Config.duration("every")),
  cron: Config.option(Config.string("cron")),
  timeZone: Config.option(Config.string("timeZone")),
  duration: Config.option(Config.duration("duration"))
}).pipe(
  Config.nested("window"),
  Config.mapOrFail(
    ({ cron, duration, every, timeZone }): Either.Either<Window | undefined, ConfigError.ConfigError> => {
      const invalid = (key: string, message: string) => Either.left(ConfigError.InvalidData(["window", key], message))
      if (Option.isNone(every) && Option.isNone(cron)) {
        return Option.isSome(duration)
          ? invalid("duration", "a window needs \"every\" or \"cron\"")
          : Either.right(undefined)
      }
      if (Option.isSome(every) && Option.isSome(cron)) return invalid("cron", "give \"every\" or \"cron\", not both")
      if (Option.isNone(duration)) return invalid("duration", "a window needs a \"duration\"")
      if (Option.isSome(every)) {
        return Either.right({ schedule: Schedule.spaced(every.value), duration: duration.value })
      }
      const parsed = Cron.parse(cron.pipe(Option.getOrThrow), Option.getOrUndefined(timeZone))
      return Either.isLeft(parsed)
        ? invalid("cron", parsed.left.message)
        : Either.right({ schedule: Schedule.cron(parsed.right), duration: duration.value })
    }
  )
)

/**
 * The options of an injector named `name`, read from configuration. Keys: `enabled` (default
 * `false`), `rate` (default 0.001), and an optional window: `window.every` (a duration) or
 * `window.cron` (a cron expression, with `window.timeZone`, default the system's), and
 * `window.duration`. Nest it to read under a prefix, e.g. environment variables
 * `CHAOS_enabled=true CHAOS_rate=0.1` with `Config.nested(Chaos.config("users"), "CHAOS")`.
 *
 * @since 0.2.0
 * @category config
 */
export const config = (name: string): Config.Config<Options> =>
  Config.all({
    enabled: Config.withDefault(Config.boolean("enabled"), false),
    rate: Config.option(Config.number("rate")),
    window: windowConfig
  }).pipe(Config.map(({ enabled, rate, window }): Options => ({
    name,
    enabled,
    ...(Option.isSome(rate) ? { rate: rate.value } : {}),
    ...(window === undefined ? {} : { window })
  })))

/**
 * Provides an injector whose options are read from `effect/Config` (see `config`); a value out
 * of range fails with `InvalidOptionsError`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, Injector>,
  options: Config.Config<Options>
): Layer.Layer<I, InvalidOptionsError | ConfigError.ConfigError> => Layer.effect(tag, Effect.flatMap(options, make))

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

type Kind = "fault" | "latency" | "outcome" | "behavior" | "http-status" | "client-status" | "client-fault"

/** The tagged counters of each injector, made once per injector and kind. */
const counters = new WeakMap<Injector, Map<Kind, Metric.Metric.Counter<number>>>()

const counterOf = (injector: Injector, kind: Kind): Metric.Metric.Counter<number> => {
  let byKind = counters.get(injector)
  if (byKind === undefined) {
    byKind = new Map()
    counters.set(injector, byKind)
  }
  let counter = byKind.get(kind)
  if (counter === undefined) {
    counter = Metric.tagged(Metric.tagged(injectionsTotal, "name", injector.name), "kind", kind)
    byKind.set(kind, counter)
  }
  return counter
}

type AnyEffect = Effect.Effect<any, any, any>

/**
 * The shell every strategy shares: one synchronous decision on the calling fiber, the counter,
 * and `inject` only for an injected call. Off, it returns `self` untouched.
 */
const strategy = <Args extends ReadonlyArray<unknown>>(
  injector: Injector,
  kind: Kind,
  inject: (self: AnyEffect, ...args: Args) => AnyEffect
) => {
  const increment = Metric.increment(counterOf(injector, kind))
  return (self: AnyEffect, ...args: Args): AnyEffect =>
    Effect.withFiberRuntime((fiber) => {
      const decision = injector.unsafeDecide(fiber)
      if (decision === false) return self
      if (decision === true) return Effect.zipRight(increment, inject(self, ...args))
      return Effect.flatMap(decision, (yes) => (yes ? Effect.zipRight(increment, inject(self, ...args)) : self))
    })
}

/** A strategy whose options were invalid: every call dies with the error, injected or not. */
const invalid = (error: InvalidOptionsError) => (_self: AnyEffect) => Effect.die(error)

/**
 * Both calling styles of a strategy: `make(injector, x)` is the combinator (built once), and
 * `(self, injector, x)` applies it at once.
 */
const dualStrategy = <X>(make: (injector: Injector, x: X) => (self: AnyEffect) => AnyEffect): any =>
(
  ...args: ReadonlyArray<any>
) => Effect.isEffect(args[0]) ? make(args[1], args[2])(args[0]) : make(args[0], args[1])

/**
 * Injected calls fail with the error `error()` makes, without running the effect (Polly's fault
 * strategy, as a typed failure; use `outcome` with `Effect.die` for a defect).
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * class ConnectionReset extends Data.TaggedError("ConnectionReset") {}
 * declare const chaos: Chaos.Injector
 * declare const call: Effect.Effect<string>
 *
 * const flaky = call.pipe(Chaos.fault(chaos, () => new ConnectionReset()))
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const fault: {
  <E2>(injector: Injector, error: () => E2): Injection<never, E2>
  <A, E, R, E2>(self: Effect.Effect<A, E, R>, injector: Injector, error: () => E2): Effect.Effect<A, E | E2, R>
} = dualStrategy((injector, error: () => unknown) => strategy(injector, "fault", () => Effect.failSync(error)))

/**
 * Injected calls wait `delay` on the `Clock` before running. `delay` is a duration, or an effect
 * choosing one per call (e.g. from `Random`); an invalid duration makes every call die with
 * `InvalidOptionsError`.
 *
 * The wait is interruptible even inside an uninterruptible region — an `HttpMiddleware` runs in
 * one — so a caller that gives up (a client that hangs up) never waits it out; the effect itself
 * keeps its own interruptibility.
 *
 * @since 0.2.0
 * @category strategies
 */
export const latency: {
  <R2 = never>(
    injector: Injector,
    delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, R2>
  ): Injection<never, never, R2>
  <A, E, R, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, R2>
  ): Effect.Effect<A, E, R | R2>
} = dualStrategy((injector, delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, unknown>) => {
  const invalidDelay = (value: unknown, reason: string) =>
    new InvalidOptionsError({ module: "Chaos.latency", option: "delay", value, reason })
  if (!Effect.isEffect(delay)) {
    const parsed = parseDurationInput(delay)
    if (Either.isLeft(parsed)) return invalid(invalidDelay(delay, parsed.left))
    const wait = Effect.interruptible(Effect.sleep(parsed.right))
    return strategy(injector, "latency", (self) => Effect.zipRight(wait, self))
  }
  return strategy(injector, "latency", (self) =>
    Effect.flatMap(delay, (chosen) => {
      const parsed = parseDurationInput(chosen)
      return Either.isLeft(parsed)
        ? Effect.die(invalidDelay(chosen, parsed.left))
        : Effect.zipRight(Effect.interruptible(Effect.sleep(parsed.right)), self)
    }))
})

/**
 * Injected calls get `outcome` instead of running the effect: a fake result, a failure, a
 * defect (`Effect.die`) or an HTTP response (Polly's outcome strategy).
 *
 * @since 0.2.0
 * @category strategies
 */
export const outcome: {
  <A2, E2 = never, R2 = never>(injector: Injector, outcome: Effect.Effect<A2, E2, R2>): Injection<A2, E2, R2>
  <A, E, R, A2, E2 = never, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    outcome: Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E | E2, R | R2>
} = dualStrategy((injector, replacement: AnyEffect) => strategy(injector, "outcome", () => replacement))

/**
 * Injected calls run `behavior` first, then the effect (Polly's behaviour strategy): restart a
 * dependency, fill a disk, drop a cache. A failing behaviour fails the call.
 *
 * @since 0.2.0
 * @category strategies
 */
export const behavior: {
  <X, E2 = never, R2 = never>(injector: Injector, behavior: Effect.Effect<X, E2, R2>): Injection<never, E2, R2>
  <A, E, R, X, E2 = never, R2 = never>(
    self: Effect.Effect<A, E, R>,
    injector: Injector,
    behavior: Effect.Effect<X, E2, R2>
  ): Effect.Effect<A, E | E2, R | R2>
} = dualStrategy((injector, extra: AnyEffect) => strategy(injector, "behavior", (self) => Effect.zipRight(extra, self)))

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/**
 * Options of `httpStatus` and `clientStatus`.
 *
 * @since 0.2.0
 * @category models
 */
export interface StatusOptions {
  /** sets `Retry-After` (whole seconds, rounded up) */
  readonly retryAfter?: Duration.DurationInput | undefined
  /** the message in the JSON body (default `"injected by chaos"`) */
  readonly message?: string | undefined
}

const StatusSchema = Schema.Number.pipe(
  Schema.filter((n) => (Number.isInteger(n) && n >= 200 && n <= 599) || "expected an HTTP status from 200 to 599")
)
const StatusOptionsSchema = Schema.Struct({
  status: StatusSchema,
  retryAfter: Schema.optional(PositiveDuration),
  message: Schema.optional(Schema.String)
})

interface PreparedStatus {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: {
    readonly error: { readonly code: "chaos_injected"; readonly status: number; readonly message: string }
  }
}

const prepareStatus = (
  module: string,
  status: number,
  options: StatusOptions
): PreparedStatus | InvalidOptionsError => {
  const input = { ...options, status }
  const decoded = Schema.decodeUnknownEither(StatusOptionsSchema, { errors: "first", onExcessProperty: "error" })(input)
  if (Either.isLeft(decoded)) return toInvalidOptions(module, input, decoded.left)
  const { message = "injected by chaos", retryAfter } = decoded.right
  const headers: Record<string, string> = { "cache-control": "no-store" }
  if (retryAfter !== undefined) headers["retry-after"] = String(Math.ceil(Duration.toMillis(retryAfter) / 1000))
  return { status, headers, body: { error: { code: "chaos_injected", status, message } } }
}

/**
 * For server handlers: injected requests are answered with `status` (e.g. 503) and a JSON body
 * `{"error": {"code": "chaos_injected", "status": …, "message": …}}` without running the
 * handler. Use it in `middleware`, or on one route's handler.
 *
 * @since 0.2.0
 * @category http
 */
export const httpStatus = (
  injector: Injector,
  status: number,
  options: StatusOptions = {}
): Injection<HttpServerResponse.HttpServerResponse> => {
  const prepared = prepareStatus("Chaos.httpStatus", status, options)
  if (prepared instanceof InvalidOptionsError) return invalid(prepared) as Injection<never>
  return strategy(
    injector,
    "http-status",
    () =>
      Effect.sync(() =>
        HttpServerResponse.unsafeJson(prepared.body, { status: prepared.status, headers: prepared.headers })
      )
  ) as Injection<HttpServerResponse.HttpServerResponse>
}

/**
 * An `HttpMiddleware` applying strategies to every request, the first one outermost:
 * `middleware(Chaos.latency(slow, "2 seconds"), Chaos.httpStatus(errors, 503))`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * const app = HttpRouter.empty.pipe(HttpRouter.get("/", HttpServerResponse.text("ok")))
 * const ServeLive = Layer.unwrapEffect(Effect.gen(function*() {
 *   const chaos = yield* Chaos.make({ name: "api", enabled: true, rate: 0.01 })
 *   return HttpServer.serve(app, Chaos.middleware(Chaos.httpStatus(chaos, 503)))
 * }))
 * ```
 *
 * @since 0.2.0
 * @category http
 */
export const middleware = (
  ...injections: ReadonlyArray<Injection<HttpServerResponse.HttpServerResponse, unknown, unknown>>
): HttpMiddleware.HttpMiddleware =>
  ((app) =>
    injections.reduceRight<AnyEffect>((inner, injection) => injection(inner), app)) as HttpMiddleware.HttpMiddleware

/**
 * For `HttpClient`: injected requests are not sent; the caller gets a response with `status`
 * (e.g. 503, or 429 with `retryAfter`) and the JSON body of `httpStatus`.
 *
 * @since 0.2.0
 * @category http
 */
export const clientStatus = (injector: Injector, status: number, options: StatusOptions = {}): ClientInjection => {
  const prepared = prepareStatus("Chaos.clientStatus", status, options)
  if (prepared instanceof InvalidOptionsError) return invalid(prepared) as ClientInjection
  const body = JSON.stringify(prepared.body)
  const headers = { ...prepared.headers, "content-type": "application/json" }
  return strategy(
    injector,
    "client-status",
    (_send, request: HttpClientRequest.HttpClientRequest) =>
      Effect.sync(() => HttpClientResponse.fromWeb(request, new Response(body, { status: prepared.status, headers })))
  ) as ClientInjection
}

/**
 * For `HttpClient`: injected requests are not sent and fail as a lost connection does — a
 * `RequestError` with reason `"Transport"` whose cause has code `ECONNRESET` — which retries
 * and breakers treat as a network failure.
 *
 * @since 0.2.0
 * @category http
 */
export const clientFault = (
  injector: Injector,
  options: { readonly message?: string | undefined } = {}
): ClientInjection<HttpClientError.RequestError> => {
  const message = options.message ?? "connection reset (injected by chaos)"
  return strategy(injector, "client-fault", (_send, request: HttpClientRequest.HttpClientRequest) =>
    Effect.fail(
      new HttpClientError.RequestError({
        request,
        reason: "Transport",
        cause: Object.assign(new Error(message), { code: "ECONNRESET" }),
        description: message
      })
    )) as ClientInjection<HttpClientError.RequestError>
}

/**
 * Applies a client strategy (`clientStatus`, `clientFault`, or any of `fault`, `latency`,
 * `behavior`) to every request of an `HttpClient`.
 *
 * @example
 * ```ts
 * import { HttpClient } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * // every HttpClient user in the app sees 10 % of calls answered 503
 * const ChaosClientLive = Layer.effect(
 *   HttpClient.HttpClient,
 *   Effect.gen(function*() {
 *     const chaos = yield* Chaos.make({ name: "downstream", enabled: true, rate: 0.1 })
 *     return (yield* HttpClient.HttpClient).pipe(Chaos.client(Chaos.clientStatus(chaos, 503)))
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category http
 */
export const client: {
  <E2, R2>(
    injection: Injection<never, E2, R2>
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | E2, R | R2>
  <E2, R2>(
    injection: ClientInjection<E2, R2>
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | E2, R | R2>
  <E, R, E2, R2>(
    self: HttpClient.HttpClient.With<E, R>,
    injection: Injection<never, E2, R2>
  ): HttpClient.HttpClient.With<E | E2, R | R2>
  <E, R, E2, R2>(
    self: HttpClient.HttpClient.With<E, R>,
    injection: ClientInjection<E2, R2>
  ): HttpClient.HttpClient.With<E | E2, R | R2>
} = dual(2, <E, R, E2, R2>(
  self: HttpClient.HttpClient.With<E, R>,
  injection: Injection<never, E2, R2> | ClientInjection<E2, R2>
) => HttpClient.transform(self, (send, request) => (injection as ClientInjection<E2, R2>)(send, request)))
