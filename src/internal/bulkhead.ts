/**
 * The bulkhead: permits, a FIFO of waiters, and the metric series of its name.
 *
 * A bulkhead is one object with plain fields; its methods live on the prototype. A call with a
 * free permit takes it in one synchronous step and runs its work under a lease tied to the calling
 * fiber (see `lease.ts`): the work's outcome handler gives the permit back, or — if the fiber is
 * interrupted mid-work and the runtime skips that handler — the fiber's exit does. No
 * uninterruptible region is entered on that path. A call without a free permit waits in the queue
 * (an uninterruptible region with only the wait and the work interruptible, as a queued caller is
 * rare and must leave the queue however it ends).
 */
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { Bulkhead, Stats } from "../Bulkhead.js"
import { BulkheadFullError, InvalidOptionsError } from "../Errors.js"
import * as InstanceMetrics from "./instanceMetrics.js"
import { Guarded, Leases } from "./lease.js"
import * as PermitPromise from "./permitPromise.js"
import { Publisher } from "./stateView.js"
import * as Q from "./waitQueue.js"

export const kind = InstanceMetrics.defineKind("bulkhead", [
  InstanceMetrics.slotted("resilience_bulkhead_active", "calls holding a permit", "gauge", [{}]),
  InstanceMetrics.slotted("resilience_bulkhead_queued", "callers waiting for a permit", "gauge", [{}]),
  InstanceMetrics.slotted(
    "resilience_bulkhead_rejected_total",
    "callers turned away: at once when full, or after waiting queueTimeout",
    "counter",
    [{ reason: "full" }, { reason: "queue-timeout" }]
  )
])
const ACTIVE = kind.offsets[0]
const QUEUED = kind.offsets[1]
const REJECTED_FULL = kind.offsets[2]
const REJECTED_TIMEOUT = kind.offsets[2] + 1

/** The decoded options. */
export interface Settings {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly queueTimeout?: Duration.Duration | undefined
}

/** What a lease gives back when its work stops: one permit (the bulkhead itself) or a weighted one. */
interface Permit {
  released(): void
}

/** Leases shared by the bulkheads of one registry (or owned by a lone bulkhead). */
export const makeLeases = (): Leases<Permit> => new Leases<Permit>((permit) => permit.released())

/** `weight` permits held by one call. */
class WeightedPermit implements Permit {
  constructor(readonly bulkhead: BulkheadImpl, readonly weight: number) {}
  released(): void {
    this.bulkhead.releasedWeight(this.weight)
  }
}

export class BulkheadImpl implements Bulkhead, Q.Permits, PermitPromise.Gate<BulkheadFullError> {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly queueTimeout: Duration.Duration | undefined
  active = 0
  readonly queue: Q.WaitQueue = Q.makeQueue()
  rejected = 0
  timedOut = 0
  closed = false
  /** set on the first rejection of an overload episode, cleared once a permit is free */
  saturated = false
  /** set by the first weighted call: from then on permits come back through the weighted path */
  weighted = false
  private values: Array<number>
  private reportedQueued = 0
  private boundProtect: Bulkhead["protect"] | undefined = undefined
  private boundTryPromise: Bulkhead["tryPromise"] | undefined = undefined
  /** the live view, made for its first reader: a bulkhead nobody watches notifies nobody */
  private publisher: Publisher<Stats> | undefined = undefined
  private full: BulkheadFullError | undefined = undefined
  private queueTimedOut: BulkheadFullError | undefined = undefined

  constructor(
    settings: Settings,
    private readonly metrics: InstanceMetrics.Registry,
    private readonly series: InstanceMetrics.Series,
    private leases: Leases<Permit> | undefined
  ) {
    this.name = settings.name
    this.maxConcurrent = settings.maxConcurrent
    this.maxQueue = settings.maxQueue
    this.queueTimeout = settings.queueTimeout
    this.values = series.values
  }

  static make(settings: Settings, metrics: InstanceMetrics.Registry, leases?: Leases<Permit>): BulkheadImpl {
    return new BulkheadImpl(settings, metrics, metrics.acquire(kind, settings.name), leases)
  }

  get capacity(): number {
    return this.maxConcurrent
  }

  /** Busy: calls hold permits or wait for one. */
  inUse(): boolean {
    return this.active > 0 || this.queue.length > 0
  }

  get protect(): Bulkhead["protect"] {
    return this.boundProtect ??= (effect) => this.run(effect)
  }

  /** `protect` without the bound function (registries call it directly). */
  run<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R> {
    const guarded = new Guarded(effect)
    return Effect.withFiberRuntime((fiber) => this.enter(fiber, guarded, true))
  }

  get tryProtect(): Bulkhead["tryProtect"] {
    return (effect) => {
      const guarded = new Guarded(effect)
      return Effect.withFiberRuntime((fiber) => this.enter(fiber, guarded, false))
    }
  }

  get tryPromise(): Bulkhead["tryPromise"] {
    return this.boundTryPromise ??= (evaluate: PermitPromise.Evaluate<any, any>) =>
      PermitPromise.tryPromise(this, evaluate)
  }

  /** A newcomer's permit, taken now if one is free and nobody waits (a newcomer never overtakes). */
  admit(): boolean {
    if (this.closed || this.active >= this.maxConcurrent || this.queue.length !== 0) return false
    this.active++
    this.values[ACTIVE]++
    this.publisher?.notify()
    return true
  }

  /**
   * A promise's permit (`tryPromise`), taken now if free and held until the promise settles;
   * otherwise the call queues or is rejected as `protect`'s would.
   */
  decide<A, E>(call: PermitPromise.General<A, E>): number | Effect.Effect<A, E | BulkheadFullError> {
    return this.admit() ? 0 : this.run(call.general())
  }

  succeeded<A>(_ticket: number, a: A): Effect.Effect<A> {
    this.released()
    return Effect.succeed(a)
  }

  failed<E>(_ticket: number, failure: Effect.Effect<never, E>): Effect.Effect<never, E> {
    this.released()
    return failure
  }

  get protectWeighted(): Bulkhead["protectWeighted"] {
    return (weight) => {
      const invalid = this.invalidWeight(weight)
      if (invalid !== undefined) return () => Effect.fail(invalid)
      if (weight === 1) return this.protect
      return (effect) => Effect.withFiberRuntime((fiber) => this.enterWeighted(fiber, effect, weight))
    }
  }

  private invalidWeight(weight: number): InvalidOptionsError | undefined {
    if (Number.isInteger(weight) && weight >= 1 && weight <= this.maxConcurrent) return undefined
    return new InvalidOptionsError({
      module: "Bulkhead",
      option: "weight",
      value: weight,
      reason: `expected a whole number from 1 to maxConcurrent (${this.maxConcurrent})`
    })
  }

  private enterWeighted<A, E, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    effect: Effect.Effect<A, E, R>,
    weight: number
  ): Effect.Effect<A, E | BulkheadFullError, R> {
    this.weighted = true
    // as for one permit: a newcomer never overtakes a queued caller, however light
    if (!this.closed && this.active + weight <= this.maxConcurrent && this.queue.length === 0) {
      this.active += weight
      this.values[ACTIVE] += weight
      this.publisher?.notify()
      return (this.leases ??= makeLeases()).hold(fiber, new WeightedPermit(this, weight), effect)
    }
    if (this.closed || this.queue.length >= this.maxQueue) return this.reject()
    return this.enqueue(effect, weight)
  }

  /** `weight` permits came back: they go to the waiters at the head that fit, in order. */
  releasedWeight(weight: number): void {
    const before = this.active
    Q.releaseWeighted(this, weight)
    this.values[ACTIVE] += this.active - before
    if (this.queue.length === 0) this.saturated = false
    this.syncQueued()
    this.publisher?.notify()
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync(() => this.snapshot())
  }

  get view(): Bulkhead["view"] {
    return (this.publisher ??= new Publisher(() => this.snapshot())).view
  }

  private snapshot(): Stats {
    return {
      active: this.active,
      queued: this.queue.length,
      rejected: this.rejected,
      timedOut: this.timedOut,
      maxConcurrent: this.maxConcurrent,
      maxQueue: this.maxQueue
    }
  }

  private enter<A, E, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    guarded: Guarded<A, E, R>,
    mayQueue: boolean
  ): Effect.Effect<A, E | BulkheadFullError, R> {
    if (this.admit()) return (this.leases ??= makeLeases()).holdGuarded(fiber, this, guarded)
    if (this.closed || !mayQueue || this.queue.length >= this.maxQueue) return this.reject()
    return this.enqueue(guarded.work)
  }

  /** A permit came back: it goes to the oldest waiter, or becomes free. */
  released(): void {
    if (this.weighted) return this.releasedWeight(1)
    if (this.queue.length === 0) {
      this.active--
      this.values[ACTIVE]--
      this.saturated = false
      this.publisher?.notify()
      return
    }
    Q.release(this) // the permit goes to the oldest waiter: `active` stays
    this.syncQueued()
    this.publisher?.notify()
  }

  private syncQueued(): void {
    this.values[QUEUED] += this.queue.length - this.reportedQueued
    this.reportedQueued = this.queue.length
  }

  private error(reason: "full" | "queue-timeout"): BulkheadFullError {
    const { maxConcurrent, maxQueue, name } = this
    return new BulkheadFullError({ bulkhead: name, reason, maxConcurrent, maxQueue }, true)
  }

  reject(): Effect.Effect<never, BulkheadFullError> {
    this.rejected++
    this.values[REJECTED_FULL]++
    this.publisher?.notify()
    const fail = Effect.fail(this.full ??= this.error("full"))
    if (this.saturated) return fail
    // one warning per overload episode
    this.saturated = true
    return Effect.zipRight(
      Effect.logWarning("bulkhead saturated: rejecting calls").pipe(
        Effect.annotateLogs({
          module: "Bulkhead",
          bulkhead: this.name,
          maxConcurrent: this.maxConcurrent,
          maxQueue: this.maxQueue
        })
      ),
      fail
    )
  }

  private enqueue<A, E, R>(effect: Effect.Effect<A, E, R>, weight = 1): Effect.Effect<A, E | BulkheadFullError, R> {
    const waiter = Q.makeWaiter(weight)
    Q.push(this.queue, waiter)
    this.syncQueued()
    this.publisher?.notify()
    let expired = false
    const timeout = this.queueTimeout
    const wait = timeout === undefined
      ? Q.awaitPermit(waiter)
      : Effect.timeoutFail(Q.awaitPermit(waiter), {
        duration: timeout,
        onTimeout: () => {
          expired = true
          return this.queueTimedOut ??= this.error("queue-timeout")
        }
      })
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(wait), {
        onFailure: (cause) => {
          // interrupted or timed out: leave the queue, or pass on a permit handed over meanwhile
          const before = this.active
          if (this.weighted) Q.abandonWeighted(this, waiter)
          else Q.abandon(this, waiter)
          this.values[ACTIVE] += this.active - before
          this.syncQueued()
          if (expired && !Cause.isInterrupted(cause)) {
            this.timedOut++
            this.values[REJECTED_TIMEOUT]++
            this.publisher?.notify()
            return Effect.fail(this.queueTimedOut!)
          }
          this.publisher?.notify()
          return Effect.failCause(cause)
        },
        onSuccess: (): Effect.Effect<A, E | BulkheadFullError, R> => {
          if (!waiter.granted) return this.reject() // the bulkhead closed while we waited
          waiter.granted = false
          // the handed-over permit is held like any other (inside this region its handler always runs)
          const permit: Permit = weight === 1 ? this : new WeightedPermit(this, weight)
          return Effect.withFiberRuntime((fiber) => (this.leases ??= makeLeases()).hold(fiber, permit, restore(effect)))
        }
      })
    )
  }

  /**
   * Rejects the callers still queued and every later call, and leaves the instance registry. Work
   * still running keeps its permit until it stops (its gauge changes then go nowhere).
   */
  close(): void {
    if (this.closed) return
    this.closed = true
    Q.wakeAll(this.queue)
    this.syncQueued()
    this.publisher?.notify()
    this.values[ACTIVE] -= this.active
    this.values[QUEUED] -= this.reportedQueued
    this.metrics.release(kind, this.series)
    this.values = InstanceMetrics.zeros(kind.slots)
  }
}
