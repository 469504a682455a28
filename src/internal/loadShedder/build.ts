/**
 * The effectful shell around the shedding algorithm (`internal/shedder.ts`): tickets, `protect`,
 * the in-flight gauge, the live view and the periodic `shedding_stat` line.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError, OverloadedError } from "../../Errors.js"
import type { LoadShedder, Options, Priority, Stats, Ticket } from "../../LoadShedder.js"
import * as ResilienceMode from "../../ResilienceMode.js"
import { onceGuard } from "../onceGuard.js"
import * as ShadowView from "../shadow.js"
import * as Shedder from "../shedder.js"
import * as Signal from "../shedderSignal.js"
import * as Metrics from "../sheddingMetrics.js"
import { EventView } from "../stateView.js"
import * as SyncAdmission from "../syncAdmission.js"
import { admission } from "./admission.js"
import { decode, type Decoded, statInterval } from "./options.js"
import { disabled, statsOf } from "./stats.js"

/** The end of an admitted request: `pass` records its round-trip time, `fail` only leaves. */
interface Outcomes {
  readonly unsafePass: (start: number) => void
  readonly unsafeFail: () => void
  readonly ticketFrom: (start: number) => Effect.Effect<Ticket>
}

const outcomes = (state: Shedder.State, clock: Clock.Clock, updateGauge: () => void): Outcomes => {
  const unsafePass = (start: number): void => {
    Shedder.pass(state, start, clock.unsafeCurrentTimeMillis())
    updateGauge()
  }
  const unsafeFail = (): void => {
    Shedder.fail(state)
    updateGauge()
  }
  const failNow: Effect.Effect<void> = Effect.sync(unsafeFail)

  const ticketFrom = (start: number): Effect.Effect<Ticket> => {
    const once = onceGuard()
    return Effect.succeed<Ticket>({ pass: once(Effect.sync(() => unsafePass(start))), fail: once(failNow) })
  }
  return { unsafePass, unsafeFail, ticketFrom }
}

/** Logs `shedding_stat` with the counts since the last report, when there was traffic. */
const reporter = (decoded: Decoded, state: Shedder.State, signal: Signal.Reader): Effect.Effect<void> => {
  let last = { total: 0, passed: 0, dropped: 0 }
  return Effect.flatMap(signal.read, (value) =>
    Effect.suspend(() => {
      const dropped = Shedder.droppedTotal(state)
      const total = state.total - last.total
      const pass = state.passed - last.passed
      const drop = dropped - last.dropped
      last = { total: state.total, passed: state.passed, dropped }
      if (total === 0) return Effect.void
      return Effect.logInfo("shedding_stat").pipe(
        Effect.annotateLogs({ shedder: decoded.name, signal: decoded.kind, value, total, pass, drop })
      )
    }))
}

export const build = (
  decoded: Decoded,
  defaultTier: number,
  signal: Signal.Reader,
  clock: Clock.Clock
): { readonly shedder: LoadShedder; readonly report: Effect.Effect<void> } => {
  const { name } = decoded
  const state = Shedder.make(decoded.params, clock.unsafeCurrentTimeMillis())
  const inFlight = Metrics.requestsInFlight(name)
  const updateGauge = () => inFlight.unsafeUpdate(state.flying, [])
  // the live view hears every drop, as it was then; `stats` is defined below
  const events = new EventView<Stats, Stats>(Effect.suspend(() => stats), Effect.succeed)
  const { now: admitNow, run: withAdmission } = admission(decoded, state, signal, clock, {
    onAdmit: updateGauge,
    onDropped: (value, now) => {
      if (events.subscribers > 0) events.offer(statsOf(decoded, state, value, now))
    }
  })
  const { ticketFrom, unsafeFail, unsafePass } = outcomes(state, clock, updateGauge)

  const tierOf = (priority: Priority | undefined) => priority === undefined ? defaultTier : Shedder.tierIndex[priority]

  const admit = (priority?: Priority, arrivedAt?: number): Effect.Effect<Ticket, OverloadedError> =>
    withAdmission(tierOf(priority), arrivedAt, ticketFrom)

  const protect = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    priority?: Priority
  ): Effect.Effect<A, E | OverloadedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      withAdmission(tierOf(priority), undefined, (start) =>
        Effect.matchCauseEffect(restore(effect), {
          onFailure: (cause) => {
            unsafeFail()
            return Effect.failCause(cause)
          },
          onSuccess: (a) => {
            unsafePass(start)
            return Effect.succeed(a)
          }
        }))
    )

  const stats: Effect.Effect<Stats> = Effect.flatMap(
    signal.read,
    (value) => Effect.sync(() => statsOf(decoded, state, value, clock.unsafeCurrentTimeMillis()))
  )

  const shedder: LoadShedder = { name, allow: admit(), admit, protect, stats, view: events.view }
  if (admitNow !== undefined) {
    SyncAdmission.attach(
      shedder,
      {
        admit: (priority, arrivedAt) => admitNow(tierOf(priority), arrivedAt),
        pass: unsafePass,
        fail: unsafeFail
      } satisfies SyncAdmission.Shedder
    )
  }
  return { shedder, report: reporter(decoded, state, signal) }
}

/** Logs `shedding_stat` every `statInterval`, forever. */
export const reportEvery = (report: Effect.Effect<void>): Effect.Effect<never> =>
  Effect.forever(Effect.zipRight(Effect.sleep(statInterval), report))

/** `make` and `makePriority`: a shedder of `priority` by default, in the current mode. */
export const make = (
  options: Options,
  priority: Priority
): Effect.Effect<LoadShedder, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const decoded = yield* decode(options)
    const mode = yield* ResilienceMode.current
    if (!ResilienceMode.isSheddingEnabled(mode)) return disabled(decoded)
    const signal = yield* Signal.reader(decoded.kind)
    const clock = yield* Effect.clock
    const { report, shedder } = build(decoded, Shedder.tierIndex[priority], signal, clock)
    yield* Effect.forkScoped(reportEvery(report))
    return yield* ShadowView.attach(shedder, ShadowView.loadShedder)
  })
