/**
 * Shadow mode: views of the policies that keep deciding and counting but admit everything while
 * a `ResilienceMode.Shadow` switch is on.
 *
 * A view forwards every call to its policy. With the switch off that costs one boolean read; with
 * it on, the work is marked so that a rejection (the policy's own error, raised before the work
 * started) can be told from the same error raised by the work itself, and the work then runs
 * anyway. A would-reject adds one to `resilience_shadow_would_reject_total{policy,name}`; the first
 * one after an admission is logged, so a long outage logs once rather than per call.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as AdaptiveLimiter from "../AdaptiveLimiter.js"
import type * as Bulkhead from "../Bulkhead.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { RateLimitedError, StoreError } from "../Errors.js"
import type * as LoadShedder from "../LoadShedder.js"
import type * as RateLimiter from "../RateLimiter.js"
import * as ResilienceMode from "../ResilienceMode.js"
import { effectOf, type Evaluate } from "./permitPromise.js"

/** A policy's `tryPromise` called with either form of its argument. */
type AnyTryPromise = (evaluate: Evaluate<unknown, unknown>, options?: any) => Effect.Effect<unknown, unknown>

/** The `policy` label of the would-reject counter. */
export type PolicyKind = "circuit_breaker" | "rate_limiter" | "load_shedder" | "bulkhead" | "adaptive_limiter"

const wouldRejectTotal = Metric.counter("resilience_shadow_would_reject_total", {
  description: "calls a policy would have rejected, admitted because shadow mode is on",
  incremental: true
})

/** The would-reject counter of one policy instance. */
export const wouldRejectCounter = (policy: PolicyKind, name: string): Metric.Metric.Counter<number> =>
  wouldRejectTotal.pipe(Metric.tagged("policy", policy), Metric.tagged("name", name))

const isTagged = (tag: string) => (u: unknown): boolean =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === tag

/** What one shadowed policy shares between its methods: the switch, its counter and log state. */
export class Guard {
  /** would-rejects counted by this view since it was built */
  count = 0
  /** whether the latest decision was a would-reject (logged once per run of them) */
  private rejecting = false
  private readonly counter: Metric.Metric.Counter<number>
  readonly isRejection: (u: unknown) => boolean

  constructor(
    readonly shadow: ResilienceMode.ShadowSwitch,
    readonly policy: PolicyKind,
    readonly name: string,
    rejectionTag: string
  ) {
    this.counter = wouldRejectCounter(policy, name)
    this.isRejection = isTagged(rejectionTag)
  }

  /** Counts one would-reject (and logs the first of a run) before `then`. */
  wouldReject<A, E, R>(reason: unknown, then: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    this.count++
    const counted = Metric.increment(this.counter)
    if (this.rejecting) return Effect.zipRight(counted, then)
    this.rejecting = true
    const log = Effect.logWarning("shadow mode: would reject").pipe(
      Effect.annotateLogs({ policy: this.policy, name: this.name, reason: tagOf(reason) })
    )
    return Effect.zipRight(Effect.zipRight(counted, log), then)
  }

  admitted(): void {
    this.rejecting = false
  }

  /**
   * Runs `effect` through `guarded`; when the policy rejects before `effect` starts, runs `effect`
   * anyway. Only called with the switch on.
   */
  run<A, E, R, A2, E2, R2>(
    guarded: (effect: Effect.Effect<A, E, R>) => Effect.Effect<A2, E2, R2>,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A2 | A, E2 | E, R2 | R> {
    let started = false
    const marked = Effect.suspend(() => {
      started = true
      this.admitted()
      return effect
    })
    return Effect.catchIf(
      guarded(marked),
      (error): error is E2 => !started && this.isRejection(error),
      (error) => this.wouldReject(error, effect)
    )
  }

  /** Maps a rejected admission (`allow`) to `admitted`. */
  admit<T, E, R>(allow: Effect.Effect<T, E, R>, admitted: T): Effect.Effect<T, E, R> {
    return Effect.catchIf(
      Effect.tap(allow, () => this.admitted()),
      (error): error is E => this.isRejection(error),
      (error) => this.wouldReject(error, Effect.succeed(admitted))
    )
  }
}

const tagOf = (u: unknown): string =>
  typeof u === "object" && u !== null && "_tag" in u ? String((u as { readonly _tag: unknown })._tag) : String(u)

/** The shadow switch in context when a policy is built, if any. */
export const current: Effect.Effect<Option.Option<ResilienceMode.ShadowSwitch>> = Effect.serviceOption(
  ResilienceMode.Shadow
)

/** `policy`, or its shadow view when a switch is in context. */
export const attach = <P>(
  policy: P,
  view: (policy: P, shadow: ResilienceMode.ShadowSwitch) => P
): Effect.Effect<P> => Effect.map(current, (shadow) => Option.isNone(shadow) ? policy : view(policy, shadow.value))

/**
 * Adds to `view` getters that read `keys` from `policy` at each access: state, stats and streams
 * belong to the policy, and a view only changes how calls are admitted.
 */
const forwarding = <P extends object, K extends keyof P>(view: Omit<P, K>, policy: P, keys: ReadonlyArray<K>): P => {
  for (const key of keys) Object.defineProperty(view, key, { get: () => policy[key], enumerable: true })
  return view as P
}

/**
 * A limiter's decision with the switch on: a denial is counted and reported as admitted, and so is
 * a cost above the capacity (the limiter's `RateLimitedError`).
 */
const shadowDecision = <D extends { readonly allowed: boolean }>(
  guard: Guard,
  decide: Effect.Effect<D, StoreError | RateLimitedError>,
  admittedAs: (denied: D) => D,
  overCapacityAs: (error: RateLimitedError) => D
): Effect.Effect<D, StoreError> =>
  Effect.matchEffect(decide, {
    onFailure: (error) =>
      error._tag === "RateLimitedError"
        ? guard.wouldReject(error, Effect.succeed(overCapacityAs(error)))
        : Effect.fail(error),
    onSuccess: (decision) => {
      if (decision.allowed) {
        guard.admitted()
        return Effect.succeed(decision)
      }
      return guard.wouldReject("RateLimitedError", Effect.succeed(admittedAs(decision)))
    }
  })

const noopPermit: CircuitBreaker.Permit = {
  success: Effect.void,
  failure: () => Effect.void,
  ignore: Effect.void
} as CircuitBreaker.Permit

/** A breaker that admits everything while the switch is on. */
export const circuitBreaker = (
  breaker: CircuitBreaker.CircuitBreaker,
  shadow: ResilienceMode.ShadowSwitch
): CircuitBreaker.CircuitBreaker => {
  const guard = new Guard(shadow, "circuit_breaker", breaker.name, "CircuitOpenError")
  return forwarding(
    {
      name: breaker.name,
      protect: (effect, options) =>
        shadow.enabled ? guard.run((e) => breaker.protect(e, options), effect) : breaker.protect(effect, options),
      tryPromise:
        ((evaluate: Evaluate<unknown, unknown>, options?: CircuitBreaker.ProtectOptions<unknown>) =>
          shadow.enabled
            ? guard.run((e) => breaker.protect(e, options), effectOf(evaluate))
            : (breaker.tryPromise as AnyTryPromise)(evaluate, options)) as CircuitBreaker.CircuitBreaker["tryPromise"],
      get allow() {
        return shadow.enabled ? guard.admit(breaker.allow, noopPermit) : breaker.allow
      }
    },
    breaker,
    ["state", "stats", "changes", "view", "isolate", "reset"]
  )
}

/**
 * A rate limiter that admits everything while the switch is on: a denied `take` reports
 * `allowed: true`, and `acquire` never fails or waits (it takes without waiting and counts a
 * denial). `reserve` is unchanged: a reservation is an explicit request to be scheduled.
 */
export const rateLimiter = (
  limiter: RateLimiter.RateLimiter,
  shadow: ResilienceMode.ShadowSwitch
): RateLimiter.RateLimiter => {
  const guard = new Guard(shadow, "rate_limiter", limiter.name, "RateLimitedError")
  const shadowTake = (key: string, cost?: number) =>
    shadowDecision(guard, limiter.take(key, cost), (denied) => ({ ...denied, allowed: true }), () => overCapacity)
  const take = (key: string, cost?: number) => shadow.enabled ? shadowTake(key, cost) : limiter.take(key, cost)
  const acquire = (key: string, cost?: number) =>
    shadow.enabled ? Effect.asVoid(shadowTake(key, cost)) : limiter.acquire(key, cost)
  return {
    name: limiter.name,
    algorithm: limiter.algorithm,
    take,
    acquire,
    protect: (key) => (effect) => shadow.enabled ? Effect.zipRight(acquire(key), effect) : limiter.protect(key)(effect),
    reserve: limiter.reserve
  }
}

/** An all-or-nothing group of limiters that admits everything while the switch is on. */
export const rateLimiterGroup = (group: RateLimiter.All, shadow: ResilienceMode.ShadowSwitch): RateLimiter.All => {
  const guard = new Guard(shadow, "rate_limiter", group.name, "RateLimitedError")
  const shadowTake = (key: string | ReadonlyArray<string>, cost?: number) =>
    shadowDecision<RateLimiter.AllDecision>(
      guard,
      group.take(key, cost),
      (denied) => ({ ...denied, allowed: true, refusedBy: undefined }),
      (error) => ({ ...overCapacity, binding: error.limiter, refusedBy: undefined, decisions: [] })
    )
  const take = (key: string | ReadonlyArray<string>, cost?: number) =>
    shadow.enabled ? shadowTake(key, cost) : group.take(key, cost)
  const acquire = (key: string | ReadonlyArray<string>, cost?: number) =>
    shadow.enabled ? Effect.asVoid(shadowTake(key, cost)) : group.acquire(key, cost)
  return {
    name: group.name,
    limiters: group.limiters,
    take,
    acquire,
    protect: (key) => (effect) => shadow.enabled ? Effect.zipRight(acquire(key), effect) : group.protect(key)(effect)
  }
}

/** The decision reported for a cost above the capacity: admitted, nothing known about the key. */
const overCapacity: RateLimiter.Decision = {
  allowed: true,
  limit: 0,
  remaining: 0,
  retryAfter: Duration.zero,
  resetAfter: Duration.zero
}

const noopTicket = { pass: Effect.void, fail: Effect.void, ignore: Effect.void }

/** A load shedder that admits everything while the switch is on. */
export const loadShedder = (
  shedder: LoadShedder.LoadShedder,
  shadow: ResilienceMode.ShadowSwitch
): LoadShedder.LoadShedder => {
  const guard = new Guard(shadow, "load_shedder", shedder.name, "OverloadedError")
  return forwarding(
    {
      name: shedder.name,
      get allow() {
        return shadow.enabled ? guard.admit(shedder.allow, noopTicket) : shedder.allow
      },
      admit: (priority, arrivedAt) =>
        shadow.enabled
          ? guard.admit(shedder.admit(priority, arrivedAt), noopTicket)
          : shedder.admit(priority, arrivedAt),
      protect: (effect, priority) =>
        shadow.enabled ? guard.run((e) => shedder.protect(e, priority), effect) : shedder.protect(effect, priority)
    },
    shedder,
    ["stats", "view"]
  )
}

/**
 * A bulkhead that admits everything while the switch is on: a call still queues as usual, and one
 * the bulkhead rejects (queue full, queue timeout, closed) runs without a permit.
 */
export const bulkhead = (bulkhead: Bulkhead.Bulkhead, shadow: ResilienceMode.ShadowSwitch): Bulkhead.Bulkhead => {
  const guard = new Guard(shadow, "bulkhead", bulkhead.name, "BulkheadFullError")
  return forwarding(
    {
      name: bulkhead.name,
      maxConcurrent: bulkhead.maxConcurrent,
      maxQueue: bulkhead.maxQueue,
      protect: (effect) => shadow.enabled ? guard.run(bulkhead.protect, effect) : bulkhead.protect(effect),
      tryProtect: (effect) => shadow.enabled ? guard.run(bulkhead.tryProtect, effect) : bulkhead.tryProtect(effect),
      tryPromise: ((evaluate: Evaluate<unknown, unknown>) =>
        shadow.enabled
          ? guard.run(bulkhead.protect, effectOf(evaluate))
          : (bulkhead.tryPromise as AnyTryPromise)(evaluate)) as Bulkhead.Bulkhead["tryPromise"],
      protectWeighted: (weight) => {
        const protect = bulkhead.protectWeighted(weight)
        return (effect) => shadow.enabled ? guard.run(protect, effect) : protect(effect)
      }
    },
    bulkhead,
    ["stats", "view"]
  )
}

/** An adaptive limiter that admits everything while the switch is on. */
export const adaptiveLimiter = (
  limiter: AdaptiveLimiter.AdaptiveLimiter,
  shadow: ResilienceMode.ShadowSwitch
): AdaptiveLimiter.AdaptiveLimiter => {
  const guard = new Guard(shadow, "adaptive_limiter", limiter.name, "OverloadedError")
  return forwarding(
    {
      name: limiter.name,
      get allow() {
        return shadow.enabled ? guard.admit(limiter.allow, noopTicket) : limiter.allow
      },
      protect: (effect, options) =>
        shadow.enabled ? guard.run((e) => limiter.protect(e, options), effect) : limiter.protect(effect, options)
    },
    limiter,
    ["limit", "changes", "stats", "view"]
  )
}

/** One view per policy object, kept for as long as the policy lives (a registry evicts policies). */
const viewsOf = <P extends object>(view: (policy: P) => P): (policy: P) => P => {
  const views = new WeakMap<P, P>()
  return (policy) => {
    let v = views.get(policy)
    if (v === undefined) {
      v = view(policy)
      views.set(policy, v)
    }
    return v
  }
}

/** A breaker registry whose breakers admit everything while the switch is on. */
export const breakerRegistry = (
  registry: CircuitBreaker.RegistryService,
  shadow: ResilienceMode.ShadowSwitch
): CircuitBreaker.RegistryService => {
  const viewOf = viewsOf((breaker: CircuitBreaker.CircuitBreaker) => circuitBreaker(breaker, shadow))
  return {
    ...registry,
    get: (name) => Effect.map(registry.get(name), viewOf),
    breakers: Effect.map(registry.breakers, (breakers) => breakers.map(viewOf)),
    protect: (name) => {
      const plain = registry.protect(name)
      return <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        shadow.enabled
          ? Effect.flatMap(registry.get(name), (breaker) => viewOf(breaker).protect(effect))
          : plain(effect)
    }
  }
}

/** A bulkhead registry whose bulkheads admit everything while the switch is on. */
export const bulkheadRegistry = (
  registry: Bulkhead.BulkheadRegistry,
  shadow: ResilienceMode.ShadowSwitch
): Bulkhead.BulkheadRegistry => {
  const viewOf = viewsOf((b: Bulkhead.Bulkhead) => bulkhead(b, shadow))
  return {
    ...registry,
    register: (options) => Effect.map(registry.register(options), viewOf),
    get: (name) => Effect.map(registry.get(name), viewOf),
    protect: (name, effect) =>
      shadow.enabled
        ? Effect.flatMap(registry.get(name), (b) => viewOf(b).protect(effect))
        : registry.protect(name, effect)
  }
}
