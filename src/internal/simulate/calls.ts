/**
 * The downstream calls of the simulated service, through its client as `ResilientHttpClient` makes
 * them: per try a breaker for the host (5xx and timeouts are failures; a rejection is never
 * retried), a bulkhead with a bounded, timed queue, a per-try timeout clamped to what is left of
 * the request's deadline, then retries with exponential backoff and full jitter while the deadline
 * leaves room for the wait. Every wait is clamped to the deadline, so the call is over by then
 * (the server's deadline and the clamped timeout fire together; both answer "timeout"). The
 * downstream serves `capacity` calls at once and keeps working on a call its caller gave up on.
 */
import * as BreakerCore from "../breaker/core.js"
import type * as Random from "./random.js"
import { BREAKER_OPEN, FAILED, OK, SHED, TIMEOUT } from "./recording.js"
import type * as Scenario from "./scenario.js"

/** Heap events of the calls; the engine hands them to `Calls.handle`. */
export const TRY_END = 10, TRY_TIMEOUT = 11, RETRY = 12, QUEUE_TIMEOUT = 13

/** A request as the engine and the calls share it. */
export interface Request {
  /** the request is its own heap event (a retry) */
  time: number
  seq: number
  kind: number
  readonly request: undefined
  /** the request is also its own loop job */
  step: number
  readonly arrival: number
  readonly second: number
  readonly phase: number
  admittedAt: number
  deadline: number
  /** route breaker token, −1 when there is none */
  token: number
  /** whether the shedder counts it in flight */
  ticket: boolean
  /** the answer the handler gives, once its call is done */
  result: number
  answered: boolean
  /** tries started so far */
  tries: number
}

interface Try {
  time: number
  seq: number
  kind: number
  readonly request: Request
  /** client breaker token, −1 without one */
  readonly token: number
  failing: boolean
  settled: boolean
  /** holds a bulkhead slot */
  slot: boolean
}

interface TryTimer {
  time: number
  seq: number
  readonly kind: number
  readonly attempt: Try
}

interface Waiter {
  time: number
  seq: number
  readonly kind: number
  readonly request: Request
  readonly token: number
  /** the wait ended at the deadline, not at the queue's timeout */
  readonly byDeadline: boolean
  gone: boolean
}

export type Event = Request | Try | TryTimer | Waiter

/** The client of a scenario with its breaker core, when it has one. */
export interface Client {
  readonly timeoutMs: number
  readonly retries: number
  readonly backoffBaseMs: number
  readonly backoffCapMs: number
  readonly breaker: BreakerCore.Core | undefined
  readonly bulkhead: { readonly maxConcurrent: number; readonly maxQueue: number; readonly queueTimeoutMs: number }
}

/** A sampler of the latency distribution, its parameters worked out once. */
const latencySampler = (latency: Scenario.Latency, rng: Random.Rng, normals: () => number): () => number => {
  switch (latency.distribution) {
    case "constant":
      return () => latency.ms
    case "uniform": {
      const { maxMs, minMs } = latency
      return () => minMs + rng.next() * (maxMs - minMs)
    }
    case "exponential":
      return () => -latency.meanMs * Math.log(1 - rng.next())
    case "lognormal": {
      // p99 = median · e^(2.326·σ)
      const sigma = Math.max(0, Math.log(latency.p99Ms / latency.medianMs) / 2.3263)
      const median = latency.medianMs
      return () => median * Math.exp(sigma * normals())
    }
  }
}

export class Calls {
  private busy = 0
  private readonly waiting: Array<Try> = []
  private waitingHead = 0
  private active = 0
  private readonly queued: Array<Waiter> = []
  private readonly samplers: ReadonlyArray<() => number>
  /** the phase whose downstream serves the calls that start now */
  phase = 0

  constructor(
    private readonly heap: { readonly push: (event: Event) => void },
    private readonly downstreams: ReadonlyArray<Scenario.Downstream>,
    private readonly client: Client,
    private readonly rng: Random.Rng,
    normals: () => number,
    /** the call of `request` is over: the handler answers with `outcome` */
    private readonly done: (request: Request, outcome: number, now: number) => void,
    private readonly onTransition: () => void,
    /** a try's answer (or its timeout) reached the client at `now` */
    private readonly onTry: (now: number) => void = () => {}
  ) {
    this.samplers = downstreams.map((d) => latencySampler(d.latency, rng, normals))
  }

  /** The handler of an admitted request calls the downstream at `now`. */
  start(request: Request, now: number): void {
    const breaker = this.client.breaker
    let token = -1
    if (breaker !== undefined) {
      token = breaker.acquire(now)
      if (token === BreakerCore.NEED_RANDOM) token = breaker.acquireRandom(now, this.rng.next())
      this.onTransition()
      // an open breaker fails the call at once, and is not retried
      if (token < 0) return this.done(request, BREAKER_OPEN, now)
    }
    const bulkhead = this.client.bulkhead
    if (this.active >= bulkhead.maxConcurrent) {
      if (this.queued.length >= bulkhead.maxQueue) {
        if (token >= 0) breaker!.ignore(token, now)
        return this.done(request, SHED, now)
      }
      const byDeadline = request.deadline < now + bulkhead.queueTimeoutMs
      const waiter: Waiter = {
        time: byDeadline ? request.deadline : now + bulkhead.queueTimeoutMs,
        seq: 0,
        kind: QUEUE_TIMEOUT,
        request,
        token,
        byDeadline,
        gone: false
      }
      this.queued.push(waiter)
      this.heap.push(waiter)
      return
    }
    this.active++
    this.send(request, token, now)
  }

  private send(request: Request, token: number, now: number): void {
    const t: Try = { time: 0, seq: 0, kind: TRY_END, request, token, failing: false, settled: false, slot: true }
    request.tries++
    const d = this.downstreams[this.phase]
    let endsAt = Infinity
    if (this.busy < d.capacity) endsAt = this.begin(t, now)
    else if (this.waiting.length - this.waitingHead < d.queueLimit) this.waiting.push(t)
    else return this.settle(t, FAILED, now)
    const limit = now + Math.min(this.client.timeoutMs, request.deadline - now)
    if (endsAt > limit) this.heap.push({ time: limit, seq: 0, kind: TRY_TIMEOUT, attempt: t })
  }

  /** The downstream starts serving `t`; returns when it answers. */
  private begin(t: Try, now: number): number {
    const d = this.downstreams[t.request.phase]
    let duration: number
    if (d.down) {
      duration = d.downLatencyMs
      t.failing = true
    } else {
      const u = this.rng.next()
      if (u < d.hangRate) duration = d.hangMs
      else {
        duration = Math.max(0, this.samplers[t.request.phase]())
        t.failing = u < d.hangRate + d.errorRate
      }
    }
    this.busy++
    t.time = now + duration
    this.heap.push(t)
    return t.time
  }

  /** A try ended at `now` with `result` (OK, FAILED or TIMEOUT). */
  private settle(t: Try, result: number, now: number): void {
    t.settled = true
    this.onTry(now)
    const request = t.request
    this.release(t, now)
    const breaker = this.client.breaker
    if (t.token >= 0) {
      if (result === OK) breaker!.success(t.token, now, 0)
      else breaker!.failure(t.token, now, 0)
      this.onTransition()
    }
    if (request.answered) return
    if (result === OK) return this.done(request, OK, now)
    if (request.tries <= this.client.retries) {
      const ceiling = Math.min(this.client.backoffCapMs, this.client.backoffBaseMs * 2 ** (request.tries - 1))
      const wait = this.rng.next() * ceiling
      // never waits past the deadline, nor retries once it is spent
      if (request.deadline - now > wait) {
        request.time = now + wait
        request.kind = RETRY
        this.heap.push(request)
        return
      }
    }
    this.done(request, result === TIMEOUT ? TIMEOUT : FAILED, now)
  }

  /** Gives the try's bulkhead slot to the next caller waiting for one. */
  private release(t: Try, now: number): void {
    if (!t.slot) return
    t.slot = false
    this.active--
    while (this.queued.length > 0) {
      const next = this.queued.shift()!
      if (next.gone || next.request.answered) continue
      next.gone = true
      this.active++
      this.send(next.request, next.token, now)
      return
    }
  }

  handle(event: Event, now: number): void {
    switch (event.kind) {
      case TRY_END: {
        const t = event as Try
        this.busy--
        if (!t.settled) this.settle(t, t.failing ? FAILED : OK, now)
        const d = this.downstreams[this.phase]
        while (this.busy < d.capacity && this.waitingHead < this.waiting.length) {
          const next = this.waiting[this.waitingHead++]
          if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
            this.waiting.splice(0, this.waitingHead)
            this.waitingHead = 0
          }
          // a caller that gave up is not served: its call would be wasted work
          if (!next.settled) this.begin(next, now)
        }
        return
      }
      case TRY_TIMEOUT: {
        const t = (event as TryTimer).attempt
        if (!t.settled) this.settle(t, TIMEOUT, now)
        return
      }
      case RETRY: {
        const request = event as Request
        if (!request.answered) this.start(request, now)
        return
      }
      case QUEUE_TIMEOUT: {
        const waiter = event as Waiter
        if (waiter.gone) return
        waiter.gone = true
        const i = this.queued.indexOf(waiter)
        if (i >= 0) this.queued.splice(i, 1)
        if (waiter.token >= 0) this.client.breaker!.ignore(waiter.token, now)
        if (!waiter.request.answered) this.done(waiter.request, waiter.byDeadline ? TIMEOUT : SHED, now)
        return
      }
    }
  }
}
