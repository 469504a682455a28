/**
 * The effectful shell of a chaos injector: reads the clock only when there is a window, draws
 * from the fiber's `Random` only for a rate strictly between 0 and 1, steps the window schedule
 * lazily (one stepper at a time), and logs switches and windows opening.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import type { Injector, Status, Window } from "../Chaos.js"
import { InvalidOptionsError } from "../Errors.js"
import * as internal from "./chaos.js"
import { Probability } from "./options.js"

/** Options after decoding. */
export interface Decoded {
  readonly name: string
  readonly enabled: boolean
  readonly rate: number
  readonly window?:
    | { readonly schedule: Schedule.Schedule<unknown, unknown>; readonly duration: Duration.Duration }
    | undefined
}

/** A window schedule and how to bring it up to a given time. */
interface Windows {
  readonly state: internal.WindowState
  readonly advance: (now: number) => Effect.Effect<void>
}

const nextFireOf = (decision: ScheduleDecision.ScheduleDecision): number | undefined =>
  ScheduleDecision.isDone(decision) ? undefined : ScheduleIntervals.start(decision.intervals)

/** Starts the window schedule now; `advance` steps it through every firing up to `now`. */
const startWindows = (
  name: string,
  window: NonNullable<Decoded["window"]>
): Effect.Effect<Windows> =>
  Effect.gen(function*() {
    const schedule = window.schedule
    const now = yield* Clock.currentTimeMillis
    const [initial, , decision] = yield* schedule.step(now, undefined, schedule.initial)
    const state = internal.makeWindow(Duration.toMillis(window.duration), nextFireOf(decision) ?? Infinity, initial)
    const stepping = yield* Effect.makeSemaphore(1)
    const loop = (now: number): Effect.Effect<void> =>
      Effect.suspend(() =>
        internal.isDue(state, now)
          ? Effect.flatMap(schedule.step(state.nextFire, undefined, state.scheduleState), ([next, , decision]) => {
            internal.fire(state, nextFireOf(decision), next)
            return loop(now)
          })
          : Effect.void
      )
    const advance = (now: number) => {
      const wasOpen = internal.isOpen(state, now)
      return Effect.zipRight(
        stepping.withPermits(1)(loop(now)),
        Effect.suspend(() =>
          !wasOpen && internal.isOpen(state, now)
            ? Effect.logInfo("chaos window open").pipe(
              Effect.annotateLogs({ "chaos.name": name, "chaos.until": new Date(state.openUntil).toISOString() })
            )
            : Effect.void
        )
      )
    }
    return { state, advance }
  })

/** The per-call decision, synchronous whenever it can be. */
const decider = (state: internal.InjectorState, windows: Windows | undefined) => {
  const unsafeDecide = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean | Effect.Effect<boolean> => {
    const services = fiber.currentDefaultServices
    const now = windows === undefined ? 0 : Context.get(services, Clock.Clock).unsafeCurrentTimeMillis()
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
        return Effect.zipRight(windows!.advance(now), decide)
    }
  }
  const decide: Effect.Effect<boolean> = Effect.withFiberRuntime((fiber) => {
    const decision = unsafeDecide(fiber)
    return typeof decision === "boolean" ? Effect.succeed(decision) : decision
  })
  return { unsafeDecide, decide }
}

let rateDecoder: ((u: unknown) => Either.Either<number, ParseResult.ParseError>) | undefined
/** Compiled on first use, not on import. */
const decodeRate = (u: unknown) => (rateDecoder ??= Schema.decodeUnknownEither(Probability))(u)

/** Run-time switches, each logged at info. */
const controls = (name: string, state: internal.InjectorState) => {
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
  return { enable: setEnabled(true), disable: setEnabled(false), setRate }
}

const statusOf = (name: string, state: internal.InjectorState, windows: Windows | undefined): Effect.Effect<Status> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const snapshot = (): Status => ({
      name,
      enabled: state.enabled,
      rate: state.rate,
      window: windows === undefined ? "none" : internal.isOpen(windows.state, now) ? "open" : "closed",
      decisions: state.decisions,
      injections: state.injections
    })
    return windows !== undefined && internal.isDue(windows.state, now)
      ? Effect.map(windows.advance(now), snapshot)
      : Effect.sync(snapshot)
  })

/** Builds an injector from decoded options; with a window, its schedule starts now. */
export const make = (o: Decoded): Effect.Effect<Injector> =>
  Effect.gen(function*() {
    const windows = o.window === undefined ? undefined : yield* startWindows(o.name, o.window)
    const state: internal.InjectorState = {
      enabled: o.enabled,
      rate: o.rate,
      decisions: 0,
      injections: 0,
      window: windows?.state
    }
    return {
      name: o.name,
      ...decider(state, windows),
      ...controls(o.name, state),
      status: statusOf(o.name, state, windows)
    }
  })

/** The `window.*` keys of `Chaos.config`: `every` or `cron` (with `timeZone`), and `duration`. */
export const windowConfig = Config.all({
  every: Config.option(Config.duration("every")),
  cron: Config.option(Config.string("cron")),
  timeZone: Config.option(Config.string("timeZone")),
  duration: Config.option(Config.duration("duration"))
}).pipe(
  Config.nested("window"),
  Config.mapOrFail(
    ({ cron, duration, every, timeZone }): Either.Either<Window | undefined, ConfigError.ConfigError> => {
      const bad = (key: string, message: string) => Either.left(ConfigError.InvalidData(["window", key], message))
      if (Option.isNone(every) && Option.isNone(cron)) {
        return Option.isSome(duration)
          ? bad("duration", "a window needs \"every\" or \"cron\"")
          : Either.right(undefined)
      }
      if (Option.isSome(every) && Option.isSome(cron)) return bad("cron", "give \"every\" or \"cron\", not both")
      if (Option.isNone(duration)) return bad("duration", "a window needs a \"duration\"")
      if (Option.isSome(every)) {
        return Either.right({ schedule: Schedule.spaced(every.value), duration: duration.value })
      }
      const parsed = Cron.parse(cron.pipe(Option.getOrThrow), Option.getOrUndefined(timeZone))
      return Either.isLeft(parsed)
        ? bad("cron", parsed.left.message)
        : Either.right({ schedule: Schedule.cron(parsed.right), duration: duration.value })
    }
  )
)
