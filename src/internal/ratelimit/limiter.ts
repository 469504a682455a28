/**
 * The limiter behind `RateLimiter.make`: take, acquire (fail or wait), protect and reserve over a
 * store's `Stepper`, with the metrics. Stores that decide in-process offer a synchronous step, used
 * with one clock read and no further effect.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { InvalidOptionsError, RateLimitedError } from "../../Errors.js"
import type { StoreError } from "../../Errors.js"
import type { Algorithm, Decision, RateLimiter, Reservation } from "../../RateLimiter.js"
import type { Stepper } from "../../RateLimiterStore.js"
import { decodeOptions, NonNegativeDuration } from "../options.js"
import * as SyncAdmission from "../syncAdmission.js"
import type { Definition, RawDecision } from "./core.js"
import { toDuration, Verdict } from "./core.js"

const allowedKey = MetricKey.counter("resilience_rate_limit_allowed_total", {
  description: "requests a rate limiter admitted",
  incremental: true
})
const exceededKey = MetricKey.counter("resilience_rate_limit_exceeded_total", {
  description: "requests a rate limiter refused",
  incremental: true
})
/** `resilience_rate_limit_allowed_total{name}`, shared by single limits and `RateLimiter.all` */
export const allowedTotal = Metric.fromMetricKey(allowedKey)
/** `resilience_rate_limit_exceeded_total{name}`, shared by single limits and `RateLimiter.all` */
export const exceededTotal = Metric.fromMetricKey(exceededKey)

const noTags: ReadonlyArray<MetricLabel.MetricLabel> = []

/**
 * `update(1)` on a limiter's two counters. Counters made from the key already tagged with the
 * name cache their registry entry on first use; tagging at each update would look it up again.
 */
export const countersFor = (name: string): { readonly allowed: () => void; readonly exceeded: () => void } => {
  const labels = [MetricLabel.make("name", name)]
  const allowed = Metric.fromMetricKey(MetricKey.taggedWithLabels(allowedKey, labels))
  const exceeded = Metric.fromMetricKey(MetricKey.taggedWithLabels(exceededKey, labels))
  return { allowed: () => allowed.unsafeUpdate(1, noTags), exceeded: () => exceeded.unsafeUpdate(1, noTags) }
}

const decodeMaxDelay = decodeOptions("RateLimiter", Schema.Struct({ maxDelay: NonNegativeDuration }))

export interface Config {
  readonly clock: import("effect/Clock").Clock
  readonly onExceeded: "fail" | "wait"
  readonly maxWaitMs: number
  readonly deadline: Effect.Effect<Option.Option<Duration.Duration>>
}

const ms = (d: Duration.Duration): number => Duration.toMillis(d)

/** How a limiter turns a store's answer into a decision, an admission or a failure, counting each. */
interface Outcomes {
  readonly countAllowed: () => void
  readonly countExceeded: () => void
  readonly toError: (key: string, raw: RawDecision) => RateLimitedError
  readonly decided: (raw: RawDecision) => Decision
  readonly admitted: (key: string, raw: RawDecision) => Effect.Effect<void, RateLimitedError>
  /** whether `cost` is a whole number ≥ 0 within the capacity */
  readonly validCost: (cost: number) => boolean
  /** the failure for a cost `validCost` refused */
  readonly badCost: (key: string, cost: number) => Effect.Effect<never, RateLimitedError>
}

const outcomesFor = (name: string, def: Definition): Outcomes => {
  const capacity = def.capacity
  const { allowed: countAllowed, exceeded: countExceeded } = countersFor(name)

  const toError = (key: string, raw: RawDecision): RateLimitedError =>
    new RateLimitedError({
      limiter: name,
      key,
      limit: raw.limit,
      remaining: raw.remaining,
      retryAfter: toDuration(raw.retryAfterMs),
      resetAfter: toDuration(raw.resetAfterMs)
    }, true)
  const tooCostly = (key: string): Effect.Effect<never, RateLimitedError> =>
    Effect.suspend(() => {
      countExceeded()
      return Effect.fail(
        new RateLimitedError(
          { limiter: name, key, limit: def.limit, remaining: 0, retryAfter: Duration.infinity },
          true
        )
      )
    })

  const decided = (raw: RawDecision): Decision => {
    if (raw.allowed) countAllowed()
    else countExceeded()
    return asDecision(raw)
  }
  const admitted = (key: string, raw: RawDecision): Effect.Effect<void, RateLimitedError> => {
    if (raw.allowed) {
      countAllowed()
      return Exit.void
    }
    countExceeded()
    return Exit.fail(toError(key, raw))
  }

  // a cost above the capacity can never be admitted: fail at once; a cost that is not a whole number ≥ 0 is a bug
  const badCost = (key: string, cost: number): Effect.Effect<never, RateLimitedError> =>
    cost > capacity && Number.isSafeInteger(cost)
      ? tooCostly(key)
      : Effect.die(
        new InvalidOptionsError({
          module: "RateLimiter",
          option: "cost",
          value: cost,
          reason: "expected a whole number ≥ 0"
        })
      )
  const validCost = (cost: number): boolean => cost <= capacity && cost >= 0 && cost % 1 === 0
  return { countAllowed, countExceeded, toError, decided, admitted, validCost, badCost }
}

/**
 * `acquire` in `"wait"` mode: waits for admission as long as the wait fits `maxWait` and the
 * caller's deadline — by reserving ahead (token bucket, GCRA) or by trying again after each
 * retry-after (the others).
 */
const waitingFor = (
  run: Stepper,
  config: Config,
  reservable: boolean,
  outcomes: Outcomes
): (key: string, cost: number) => Effect.Effect<void, StoreError | RateLimitedError> => {
  const { countAllowed, countExceeded, toError } = outcomes

  // what the caller may wait: min(maxWait, deadline left)
  const budget: Effect.Effect<number> = Effect.map(config.deadline, (left) => {
    if (Option.isNone(left)) return config.maxWaitMs
    const l = ms(left.value)
    return l < config.maxWaitMs ? l : config.maxWaitMs
  })

  // Reserve, then sleep until the time to act. The store call itself is not interrupted (it is
  // bounded by the store's timeout): a reservation made in the store is always known here, so an
  // interruption during the call or the sleep gives it back (x/time/rate's `WaitN` cancels too).
  const waitReserved = (key: string, cost: number, budgetMs: number) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(run(key, cost, budgetMs), (raw): Effect.Effect<void, StoreError | RateLimitedError> => {
        if (!raw.allowed) {
          countExceeded()
          return Effect.fail(toError(key, raw))
        }
        countAllowed()
        if (raw.delayMs <= 0) return Effect.void
        const giveBack = raw.timeToAct === undefined ? Effect.void : Effect.ignore(run.cancel(key, cost, raw.timeToAct))
        return Effect.onInterrupt(restore(Effect.sleep(toDuration(raw.delayMs))), () => giveBack)
      })
    )

  const waitRetrying = (key: string, cost: number, budgetMs: number) => {
    const attempt = (left: number): Effect.Effect<void, StoreError | RateLimitedError> =>
      Effect.flatMap(run(key, cost, 0), (raw) => {
        if (raw.allowed) {
          countAllowed()
          return Effect.void
        }
        if (!(raw.retryAfterMs <= left)) {
          countExceeded()
          return Effect.fail(toError(key, raw))
        }
        const wait = raw.retryAfterMs > 0 ? raw.retryAfterMs : 1
        return Effect.zipRight(Effect.sleep(toDuration(wait)), attempt(left - wait))
      })
    return attempt(budgetMs)
  }

  return (key, cost) =>
    Effect.flatMap(
      budget,
      (budgetMs) => reservable ? waitReserved(key, cost, budgetMs) : waitRetrying(key, cost, budgetMs)
    )
}

/** `reserve`: capacity taken ahead of time, with a `cancel` that gives it back once. */
const reserverFor = (
  run: Stepper,
  algorithm: Algorithm,
  reservable: boolean,
  outcomes: Outcomes
): RateLimiter["reserve"] => {
  const { badCost, countAllowed, countExceeded, toError, validCost } = outcomes
  const reserveWithin = (
    key: string,
    cost: number,
    maxDelayMs: number
  ): Effect.Effect<Reservation, StoreError | RateLimitedError> =>
    Effect.flatMap(run(key, cost, maxDelayMs), (raw) => {
      if (!raw.allowed) {
        countExceeded()
        return Effect.fail(toError(key, raw))
      }
      countAllowed()
      let cancelled = false
      const timeToAct = raw.timeToAct
      const cancel: Effect.Effect<void, StoreError> = Effect.suspend(() => {
        if (cancelled || timeToAct === undefined) return Effect.void
        cancelled = true
        return run.cancel(key, cost, timeToAct)
      })
      return Effect.succeed<Reservation>({ decision: asDecision(raw), delay: toDuration(raw.delayMs), cancel })
    })

  return (key, cost = 1, maxDelay) => {
    if (!reservable) {
      return Effect.fail(
        new InvalidOptionsError({
          module: "RateLimiter",
          option: "algorithm",
          value: algorithm._tag,
          reason: "only tokenBucket and gcra can reserve"
        })
      )
    }
    if (!validCost(cost)) return badCost(key, cost)
    if (maxDelay === undefined) return reserveWithin(key, cost, Infinity)
    return Effect.flatMap(decodeMaxDelay({ maxDelay }), (o) => reserveWithin(key, cost, ms(o.maxDelay)))
  }
}

export const makeLimiter = (
  name: string,
  algorithm: Algorithm,
  def: Definition,
  run: Stepper,
  config: Config
): RateLimiter => {
  const reservable = def.cancel !== undefined
  const outcomes = outcomesFor(name, def)
  const { admitted, badCost, countAllowed, countExceeded, decided, validCost } = outcomes
  const unsafeStep = run.unsafeStep
  const stepThen = run.stepThen
  const decidedExit = (raw: RawDecision) => Exit.succeed(decided(raw))

  const take = (key: string, cost: number = 1): Effect.Effect<Decision, StoreError | RateLimitedError> => {
    if (!validCost(cost)) return badCost(key, cost)
    if (unsafeStep !== undefined) {
      const clock = config.clock
      return Effect.sync(() => decided(unsafeStep(key, clock.unsafeCurrentTimeMillis(), cost, 0)))
    }
    return stepThen !== undefined ? stepThen(key, cost, 0, decidedExit) : Effect.map(run(key, cost, 0), decided)
  }

  const acquireFail = (key: string, cost: number): Effect.Effect<void, StoreError | RateLimitedError> => {
    if (unsafeStep !== undefined) {
      const clock = config.clock
      return Effect.suspend(() => admitted(key, unsafeStep(key, clock.unsafeCurrentTimeMillis(), cost, 0)))
    }
    if (stepThen !== undefined) return stepThen(key, cost, 0, (raw) => admitted(key, raw))
    return Effect.flatMap(run(key, cost, 0), (raw) => admitted(key, raw))
  }
  const acquireWait = waitingFor(run, config, reservable, outcomes)

  const acquire = (key: string, cost: number = 1): Effect.Effect<void, StoreError | RateLimitedError> => {
    if (!validCost(cost)) return badCost(key, cost)
    if (config.onExceeded === "fail") return acquireFail(key, cost)
    return acquireWait(key, cost)
  }

  const protect = (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.zipRight(acquire(key, 1), effect)
  const reserve = reserverFor(run, algorithm, reservable, outcomes)

  const limiter: RateLimiter = { name, algorithm, take, acquire, protect, reserve }
  if (unsafeStep !== undefined) {
    const clock = config.clock
    SyncAdmission.attach(
      limiter,
      {
        take: (key: string) => {
          const raw = unsafeStep(key, clock.unsafeCurrentTimeMillis(), 1, 0)
          if (raw.allowed) countAllowed()
          else countExceeded()
          return raw
        }
      } satisfies SyncAdmission.Limiter
    )
  }
  return limiter
}

/** A store's decision as a `Decision`: the built-in stores' are one already. */
export const asDecision = (raw: RawDecision): Decision =>
  raw instanceof Verdict
    ? raw
    : new Verdict(
      raw.allowed,
      raw.limit,
      raw.remaining,
      raw.retryAfterMs,
      raw.resetAfterMs,
      raw.delayMs,
      raw.code,
      raw.timeToAct
    )
