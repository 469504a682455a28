/**
 * `RateLimiter.all`: several limiters applied to one request all-or-nothing, on their store's
 * group step (`prepareAll`): in memory one synchronous block, on Redis one script.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { InvalidOptionsError, RateLimitedError } from "../../Errors.js"
import type { StoreError } from "../../Errors.js"
import type { All, AllDecision, AllOptions, Decision, RateLimiter } from "../../RateLimiter.js"
import type { AllStepper, RateLimiterStore } from "../../RateLimiterStore.js"
import type { Definition, RawDecision } from "./core.js"
import { toDuration } from "./core.js"
import { asDecision, countersFor } from "./limiter.js"

/** What `all` needs of a limiter besides its public face: kept off the public type. */
export interface Source {
  readonly store: RateLimiterStore["Type"]
  readonly definition: Definition
  readonly clock: Clock.Clock
}

const source = Symbol.for("effect-resilience/RateLimiter/source")

/** Records where `limiter` keeps its state (non-enumerable: invisible to users and to equality). */
export const attachSource = <L extends RateLimiter>(limiter: L, s: Source): L =>
  Object.defineProperty(limiter, source, { value: s, enumerable: false })

export const sourceOf = (limiter: RateLimiter): Source | undefined => (limiter as { [source]?: Source })[source]

const invalid = (option: string, value: unknown, reason: string) =>
  new InvalidOptionsError({ module: "RateLimiter", option, value, reason })

/** The group's answer: allowed only if every limit admitted; the figures of the binding limit. */
class GroupDecision implements AllDecision {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly resetAfter: Duration.Duration
  readonly retryAfter: Duration.Duration
  readonly code: Decision["code"]
  readonly refusedBy: string | undefined
  readonly binding: string
  constructor(
    readonly decisions: ReadonlyArray<Decision>,
    names: ReadonlyArray<string>,
    raws: ReadonlyArray<RawDecision>
  ) {
    // refused: the refusing limit with the longest retry-after; admitted: the one with least left
    let b = -1
    let allowed = true
    for (let i = 0; i < raws.length; i++) {
      const r = raws[i]
      if (!r.allowed) {
        if (allowed || r.retryAfterMs > raws[b].retryAfterMs) b = i
        allowed = false
      } else if (allowed && (b < 0 || r.remaining < raws[b].remaining)) b = i
    }
    const d = decisions[b]
    this.allowed = allowed
    this.limit = d.limit
    this.remaining = allowed ? d.remaining : Math.min(...raws.map((r) => r.remaining))
    this.retryAfter = d.retryAfter
    this.resetAfter = d.resetAfter
    this.code = d.code
    this.binding = names[b]
    this.refusedBy = allowed ? undefined : names[b]
  }
}

const validate = (limiters: ReadonlyArray<RateLimiter>) => {
  if (!Array.isArray(limiters) || limiters.length === 0) {
    return Effect.fail(invalid("limiters", limiters, "expected at least one limiter"))
  }
  const names = new Set<string>()
  const sources: Array<Source> = []
  for (const limiter of limiters) {
    const s = sourceOf(limiter)
    if (s === undefined) {
      return Effect.fail(invalid("limiters", limiter?.name, "expected limiters from RateLimiter.make"))
    }
    if (names.has(limiter.name)) {
      return Effect.fail(invalid("limiters", limiter.name, "expected distinct limiter names"))
    }
    if (s.store !== sources[0]?.store && sources.length > 0) {
      return Effect.fail(invalid("limiters", limiter.name, "expected limiters on one store"))
    }
    names.add(limiter.name)
    sources.push(s)
  }
  const prepareAll = sources[0].store.prepareAll
  if (prepareAll === undefined) {
    return Effect.fail(invalid("limiters", sources[0].store.name, "this store cannot take from several limits at once"))
  }
  return Effect.map(
    prepareAll(limiters.map((l, i) => ({ limiter: l.name, algorithm: sources[i].definition }))),
    (step) => ({ step, sources })
  )
}

export const makeAll = (
  limiters: ReadonlyArray<RateLimiter>,
  options: AllOptions,
  defaultDeadline: Effect.Effect<Option.Option<Duration.Duration>>
): Effect.Effect<All, InvalidOptionsError> =>
  Effect.map(validate(limiters), ({ sources, step }) =>
    group(limiters, sources, step, {
      onExceeded: options.onExceeded ?? "fail",
      maxWaitMs: options.maxWait === undefined ? Infinity : Duration.toMillis(Duration.decode(options.maxWait)),
      deadline: options.deadline ?? defaultDeadline
    }))

interface GroupConfig {
  readonly onExceeded: "fail" | "wait"
  readonly maxWaitMs: number
  readonly deadline: Effect.Effect<Option.Option<Duration.Duration>>
}

/** How a group turns its limits' answers into one decision or one failure, counting each limit's. */
interface GroupOutcomes {
  /** one key per limiter; throws for a list of the wrong length */
  readonly keysOf: (key: string | ReadonlyArray<string>) => ReadonlyArray<string>
  readonly decided: (raws: ReadonlyArray<RawDecision>) => GroupDecision
  /** the binding limit's `RateLimitedError` for a refused decision */
  readonly refusal: (keys: ReadonlyArray<string>, d: AllDecision) => RateLimitedError
  /** the failure for a cost above some limit's capacity */
  readonly tooCostly: (keys: ReadonlyArray<string>, cost: number) => Effect.Effect<never, RateLimitedError>
}

const groupOutcomes = (limiters: ReadonlyArray<RateLimiter>, sources: ReadonlyArray<Source>): GroupOutcomes => {
  const n = limiters.length
  const names = limiters.map((l) => l.name)
  const counters = names.map(countersFor)

  const keysOf = (key: string | ReadonlyArray<string>): ReadonlyArray<string> => {
    if (typeof key === "string") return Array.from({ length: n }, () => key)
    if (key.length !== n) throw invalid("key", key, `expected ${n} keys, one per limiter`)
    return key
  }
  const decided = (raws: ReadonlyArray<RawDecision>): GroupDecision => {
    const d = new GroupDecision(raws.map(asDecision), names, raws)
    for (let i = 0; i < n; i++) {
      if (d.allowed) counters[i].allowed()
      else if (!raws[i].allowed) counters[i].exceeded()
    }
    return d
  }
  const refusal = (keys: ReadonlyArray<string>, d: AllDecision): RateLimitedError => {
    const i = names.indexOf(d.binding)
    return new RateLimitedError({
      limiter: d.binding,
      key: keys[i],
      limit: d.limit,
      remaining: d.remaining,
      retryAfter: d.retryAfter,
      resetAfter: d.resetAfter
    }, true)
  }
  const tooCostly = (keys: ReadonlyArray<string>, cost: number): Effect.Effect<never, RateLimitedError> => {
    const i = sources.findIndex((s) => s.definition.capacity < cost)
    counters[i].exceeded()
    return Effect.fail(
      new RateLimitedError({
        limiter: names[i],
        key: keys[i],
        limit: sources[i].definition.limit,
        remaining: 0,
        retryAfter: Duration.infinity
      }, true)
    )
  }
  return { keysOf, decided, refusal, tooCostly }
}

const group = (
  limiters: ReadonlyArray<RateLimiter>,
  sources: ReadonlyArray<Source>,
  run: AllStepper,
  config: GroupConfig
): All => {
  const capacity = Math.min(...sources.map((s) => s.definition.capacity))
  const clock = sources[0].clock
  const unsafeStep = run.unsafeStep
  const { decided, keysOf, refusal, tooCostly } = groupOutcomes(limiters, sources)

  const take = (
    key: string | ReadonlyArray<string>,
    cost: number = 1
  ): Effect.Effect<AllDecision, StoreError | RateLimitedError> =>
    Effect.suspend((): Effect.Effect<AllDecision, StoreError | RateLimitedError> => {
      const keys = keysOf(key)
      if (!(cost >= 0 && cost % 1 === 0 && Number.isSafeInteger(cost))) {
        return Effect.die(invalid("cost", cost, "expected a whole number ≥ 0"))
      }
      if (cost > capacity) return tooCostly(keys, cost)
      if (unsafeStep !== undefined) {
        return Effect.succeed(decided(unsafeStep(keys, clock.unsafeCurrentTimeMillis(), cost)))
      }
      return Effect.map(run(keys, cost), decided)
    })

  const budget: Effect.Effect<number> = Effect.map(config.deadline, (left) => {
    if (Option.isNone(left)) return config.maxWaitMs
    return Math.min(Duration.toMillis(left.value), config.maxWaitMs)
  })

  // waits out the longest retry-after and tries again, while the wait fits the budget
  const waitAdmitted = (key: string | ReadonlyArray<string>, cost: number, left: number) =>
    Effect.flatMap(take(key, cost), (d): Effect.Effect<void, StoreError | RateLimitedError> => {
      if (d.allowed) return Effect.void
      const retry = Duration.toMillis(d.retryAfter)
      if (!(retry <= left)) return Effect.fail(refusal(keysOf(key), d))
      const wait = retry > 0 ? retry : 1
      return Effect.zipRight(Effect.sleep(toDuration(wait)), waitAdmitted(key, cost, left - wait))
    })

  const acquire = (
    key: string | ReadonlyArray<string>,
    cost: number = 1
  ): Effect.Effect<void, StoreError | RateLimitedError> => {
    if (config.onExceeded === "wait") return Effect.flatMap(budget, (left) => waitAdmitted(key, cost, left))
    return Effect.flatMap(
      take(key, cost),
      (d) => d.allowed ? Effect.void : Effect.fail(refusal(keysOf(key), d))
    )
  }

  return {
    name: limiters.map((l) => l.name).join("+"),
    limiters,
    take,
    acquire,
    protect: (key) => (effect) => Effect.zipRight(acquire(key, 1), effect)
  }
}
