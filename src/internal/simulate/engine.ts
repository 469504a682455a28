/**
 * The simulator's discrete-event loop. Arrivals, downstream completions, caller deadlines and the
 * signal's timer are events on a virtual clock (milliseconds from the start). The service itself
 * is one event loop: every step of a request — reading it and deciding, handling the answer, a
 * deadline firing, a rejection — is work on it, run in order, so an overloaded service answers
 * late and its overload signals rise as a real one's do. Each request passes the stack's
 * protections when the loop reaches it and reports its outcome to them when it ends, exactly as
 * the middleware would. No timers, no fibers: an hour of traffic is a loop over a heap.
 */
import * as BreakerCore from "../breaker/core.js"
import * as Shedder from "../shedder.js"
import { Heap } from "./heap.js"
import * as Random from "./random.js"
import * as Rec from "./recording.js"
import { BREAKER_OPEN, FAILED, OK, RATE_LIMITED, SHED, TIMEOUT } from "./recording.js"
import type * as Scenario from "./scenario.js"
import * as Signals from "./signals.js"
import type { Stack, Stage } from "./stack.js"

export { outcomes, stagesCount } from "./recording.js"
export type { Outcome, Recording, Transition } from "./recording.js"

const STAGE_INDEX: Readonly<Record<Stage, number>> = { connections: 0, breaker: 1, shedding: 2, "rate-limit": 3 }
const BREAKER_CODE = { Closed: 0, HalfOpen: 1, Open: 2 } as const
/** the shedder's tier for every simulated request */
const STANDARD = Shedder.tierIndex.standard

/** Heap events. */
const ARRIVAL = 0, CALL_END = 1, DEADLINE = 2, WAKE = 3, TICK = 4
/** Work on the service's loop. */
const READ = 0, RESPOND = 1, TIME_OUT = 2, TIMER = 3

interface Request {
  /** the request is its own CALL_END event */
  time: number
  seq: number
  readonly kind: number
  readonly request: undefined
  /** the request is also its own loop job: READ, then RESPOND */
  step: number
  readonly arrival: number
  readonly second: number
  readonly phase: number
  admittedAt: number
  deadline: number
  /** breaker token, −1 when the breaker did not admit it (shadow) or there is none */
  token: number
  /** whether the shedder counts it in flight */
  ticket: boolean
  /** whether the downstream call fails; decided when it starts */
  failing: boolean
  answered: boolean
}

interface Event {
  time: number
  seq: number
  readonly kind: number
  readonly request: Request | undefined
}
type Scheduled = Event | Request

interface Job {
  readonly step: number
  readonly request?: Request | undefined
}

/** A sampler of the latency distribution, its parameters worked out once. */
const latencySampler = (latency: Scenario.Latency, rng: Random.Rng): () => number => {
  switch (latency.distribution) {
    case "constant":
      return () => latency.ms
    case "uniform": {
      const { maxMs, minMs } = latency
      return () => minMs + rng.next() * (maxMs - minMs)
    }
    case "exponential":
      return () => Random.exponential(rng, latency.meanMs)
    case "lognormal": {
      // p99 = median · e^(2.326·σ)
      const sigma = Math.max(0, Math.log(latency.p99Ms / latency.medianMs) / 2.3263)
      const median = latency.medianMs
      const normal = Random.normals(rng)
      return () => median * Math.exp(sigma * normal())
    }
  }
}

/** Picks users by weight (cumulative table, binary search). */
const userPicker = (users: Scenario.Scenario["traffic"]["users"], rng: Random.Rng): () => string => {
  const list = typeof users === "number"
    ? Array.from({ length: users }, (_, i) => ({ id: `user-${i + 1}`, weight: 1 }))
    : users
  const cumulative: Array<number> = []
  let sum = 0
  for (const u of list) cumulative.push(sum += u.weight)
  const ids = list.map((u) => u.id)
  return () => {
    const x = rng.next() * sum
    let lo = 0, hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid] > x) hi = mid
      else lo = mid + 1
    }
    return ids[lo]
  }
}

/** The service's event loop: a FIFO of work, one piece at a time. */
class Loop {
  /** when the work started last ends */
  busyUntil = 0
  /** cumulative busy wall time, ms */
  active = 0
  private readonly jobs: Array<Job> = []
  private head = 0
  readonly wake: Event = { time: 0, seq: 0, kind: WAKE, request: undefined }
  wakePending = false
  constructor(private readonly share: number, private readonly probe: Signals.Probe | undefined) {}

  idle(now: number): boolean {
    return this.head === this.jobs.length && now >= this.busyUntil
  }
  get waiting(): boolean {
    return this.head < this.jobs.length
  }
  push(job: Job): void {
    this.jobs.push(job)
  }
  shift(): Job {
    const job = this.jobs[this.head++]
    if (this.head > 1024 && this.head * 2 > this.jobs.length) {
      this.jobs.splice(0, this.head)
      this.head = 0
    }
    return job
  }
  /** `cpuMs` of work starting at `start`; returns when it ends */
  work(start: number, cpuMs: number): number {
    if (cpuMs <= 0) return start
    const wall = cpuMs / this.share
    this.active += wall
    this.busyUntil = start + wall
    this.probe?.work(start, cpuMs)
    return this.busyUntil
  }
}

/** Runs `scenario` through `stack` and returns what it recorded. */
export const run = (
  scenario: Scenario.Scenario,
  stack: Stack,
  downstreams: ReadonlyArray<Scenario.Downstream>
): Rec.Recording => {
  const phases = scenario.phases
  const phaseEnds: Array<number> = []
  let end = 0
  for (const p of phases) phaseEnds.push(end += p.durationSeconds * 1000)
  const rec = Rec.make(Math.ceil(end / 1000), phases.length, stack.breaker !== undefined)
  const arrivalsRng = Random.make(scenario.seed, 1)
  const downstreamRng = Random.make(scenario.seed, 2)
  const breakerRng = Random.make(scenario.seed, 3)
  const pickUser = userPicker(scenario.traffic.users, Random.make(scenario.seed, 4))
  const poisson = scenario.traffic.arrivals === "poisson"
  const shadow = scenario.shadow
  const { breaker, limiter, maxConns, shedder, timeoutMs } = stack
  const service = scenario.service
  const halfMs = service.cpuMsPerRequest / 2
  const rejectMs = service.cpuMsPerRejection ?? service.cpuMsPerRequest / 4
  const probe = stack.signal === undefined ? undefined : Signals.make(stack.signal.kind, service.cores)
  const loop = new Loop(service.cpuShare, probe)
  // a loop with no work is always idle: its timers would read nothing
  const tickMillis = probe !== undefined && (halfMs > 0 || rejectMs > 0) ? probe.tickMillis : 0
  const tick: Event = { time: tickMillis, seq: 0, kind: TICK, request: undefined }
  const timer: Job = { step: TIMER }

  const heap = new Heap<Scheduled>()
  const samplers = downstreams.map((d) => latencySampler(d.latency, downstreamRng))
  let inFlight = 0
  let busy = 0
  const queue: Array<Request> = []
  let queueHead = 0
  let phase = 0

  const drainTransitions = () => {
    if (breaker === undefined || breaker.pending.length === 0) return
    for (const t of breaker.takePending()) Rec.transition(rec, { t: t.at, from: t.from, to: t.to })
  }

  /** A stage answered the request at `now`: the rejection is work on the loop. */
  const rejected = (request: Request, stage: Stage, outcome: number, now: number) => {
    loop.work(now, rejectMs)
    Rec.count(rec, request.second, request.phase, outcome, -1)
    rec.byPerPhase[request.phase * Rec.stagesCount + STAGE_INDEX[stage]]++
  }

  /** A stage inside the breaker and the shedder answered: they count the request as neither. */
  const rejectedInside = (
    request: Request,
    token: number,
    ticket: boolean,
    stage: Stage,
    outcome: number,
    now: number
  ) => {
    if (token >= 0) breaker!.ignore(token, now)
    if (ticket) Shedder.fail(shedder!)
    rejected(request, stage, outcome, now)
  }

  /** In shadow mode a rejection is counted and the request goes on. */
  const wouldReject = (request: Request, stage: Stage) => {
    rec.wouldRejectPerSecond[request.second * Rec.stagesCount + STAGE_INDEX[stage]]++
    rec.wouldRejectPerPhase[request.phase * Rec.stagesCount + STAGE_INDEX[stage]]++
  }

  /** The caller gets its answer at `end`; the protections learn the outcome at `now`. */
  const answer = (request: Request, outcome: number, now: number, end: number) => {
    request.answered = true
    inFlight--
    Rec.count(rec, request.second, request.phase, outcome, end - request.arrival)
    if (request.token >= 0) {
      if (outcome === OK) breaker!.success(request.token, now, now - request.admittedAt)
      else breaker!.failure(request.token, now, now - request.admittedAt)
      drainTransitions()
    }
    if (request.ticket) {
      // the server's shedding stage: a 503 (the deadline's) is a failed pass, any other answer a pass
      if (outcome === TIMEOUT) Shedder.fail(shedder!)
      else Shedder.pass(shedder!, request.admittedAt, now)
    }
  }

  /** Starts the downstream call of `request` at `now`. */
  const startCall = (request: Request, now: number) => {
    const d = downstreams[request.phase]
    let duration: number
    if (d.down) {
      duration = d.downLatencyMs
      request.failing = true
    } else {
      const u = downstreamRng.next()
      if (u < d.hangRate) duration = d.hangMs
      else {
        duration = Math.max(0, samplers[request.phase]())
        request.failing = u < d.hangRate + d.errorRate
      }
    }
    busy++
    const endsAt = now + duration
    request.time = endsAt
    heap.push(request)
    if (endsAt > request.deadline && !request.answered) {
      heap.push({ time: request.deadline, seq: 0, kind: DEADLINE, request })
    }
  }

  /** The loop reads `request` at `now`: the stages in `ResilientHttpServer`'s order. */
  const admit = (request: Request, now: number) => {
    if (inFlight >= maxConns) {
      if (!shadow) return rejected(request, "connections", SHED, now)
      wouldReject(request, "connections")
    }
    let token = -1
    if (breaker !== undefined) {
      token = breaker.acquire(now)
      if (token === BreakerCore.NEED_RANDOM) token = breaker.acquireRandom(now, breakerRng.next())
      drainTransitions()
      const code = BREAKER_CODE[breaker.state()]
      if (code > rec.breakerPerSecond[request.second]) rec.breakerPerSecond[request.second] = code
      if (token < 0) {
        if (!shadow) return rejected(request, "breaker", BREAKER_OPEN, now)
        wouldReject(request, "breaker")
      }
    }
    let ticket = false
    if (shedder !== undefined) {
      probe!.arrived(now - request.arrival, now)
      const value = probe!.read(now)
      if (!(value <= rec.signalPerSecond[request.second])) rec.signalPerSecond[request.second] = value
      if (Shedder.allow(shedder, now, value, STANDARD)) ticket = true
      else if (!shadow) return rejectedInside(request, token, false, "shedding", SHED, now)
      else wouldReject(request, "shedding")
    }
    if (limiter !== undefined && !limiter.run(pickUser(), now * 1000, 1, 0).allowed) {
      if (!shadow) return rejectedInside(request, token, ticket, "rate-limit", RATE_LIMITED, now)
      wouldReject(request, "rate-limit")
    }
    inFlight++
    request.token = token
    request.ticket = ticket
    request.admittedAt = now
    request.deadline = now + timeoutMs
    request.step = RESPOND
    const begins = loop.work(now, halfMs)
    const d = downstreams[request.phase]
    if (busy < d.capacity) startCall(request, begins)
    else if (queue.length - queueHead < d.queueLimit) {
      queue.push(request)
      if (timeoutMs !== Infinity) heap.push({ time: request.deadline, seq: 0, kind: DEADLINE, request })
    } else answer(request, FAILED, now, begins)
  }

  /** Runs one piece of work at `start`. */
  const runJob = (job: Job, start: number) => {
    switch (job.step) {
      case READ:
        return admit(job as Request, start)
      case RESPOND: {
        const request = job as Request
        if (!request.answered) answer(request, request.failing ? FAILED : OK, start, loop.work(start, halfMs))
        return
      }
      case TIME_OUT: {
        const request = job.request!
        if (!request.answered) answer(request, TIMEOUT, start, loop.work(start, rejectMs))
        return
      }
      case TIMER: {
        probe!.tick(start, tick.time, loop.active)
        tick.time = start + tickMillis
        if (tick.time < end) heap.push(tick)
        return
      }
    }
  }

  /** Hands `job` to the loop at `now`: at once when it is idle, else after what it has to do. */
  const submit = (job: Job, now: number) => {
    if (loop.idle(now)) return runJob(job, now)
    loop.push(job)
    if (!loop.wakePending) {
      loop.wakePending = true
      loop.wake.time = loop.busyUntil
      heap.push(loop.wake)
    }
  }

  const wakeUp = (now: number) => {
    loop.wakePending = false
    while (loop.waiting && loop.busyUntil <= now) runJob(loop.shift(), now)
    if (loop.waiting) {
      loop.wakePending = true
      loop.wake.time = loop.busyUntil
      heap.push(loop.wake)
    }
  }

  const callEnded = (request: Request, now: number) => {
    busy--
    if (!request.answered) submit(request, now)
    const d = downstreams[phase]
    while (busy < d.capacity && queueHead < queue.length) {
      const next = queue[queueHead++]
      if (queueHead > 1024 && queueHead * 2 > queue.length) {
        queue.splice(0, queueHead)
        queueHead = 0
      }
      // a caller that gave up is not served: its call would be wasted work
      if (!next.answered) startCall(next, now)
    }
  }

  const rateAt = (now: number): number => {
    const p = phases[phase]
    if (p.rampToRps === undefined) return p.rps
    const start = phaseEnds[phase] - p.durationSeconds * 1000
    return p.rps + (p.rampToRps - p.rps) * ((now - start) / (p.durationSeconds * 1000))
  }

  const nextArrival = (now: number): number => {
    // a silent phase: move to the next phase's start
    for (;;) {
      const rate = rateAt(now)
      if (rate > 0) {
        const gap = poisson ? Random.exponential(arrivalsRng, 1000 / rate) : 1000 / rate
        return now + gap
      }
      if (phase >= phases.length - 1) return Infinity
      now = phaseEnds[phase]
      phase++
    }
  }

  // one arrival event, rescheduled after each arrival
  const arrival: Event = { time: nextArrival(0), seq: 0, kind: ARRIVAL, request: undefined }
  if (arrival.time < end) heap.push(arrival)
  if (tickMillis > 0) heap.push(tick)
  for (;;) {
    const event = heap.pop()
    if (event === undefined) break
    const now = event.time
    switch (event.kind) {
      case ARRIVAL: {
        while (now >= phaseEnds[phase]) phase++
        rec.requests++
        const request: Request = {
          time: 0,
          seq: 0,
          kind: CALL_END,
          request: undefined,
          step: READ,
          arrival: now,
          second: Math.floor(now / 1000),
          phase,
          admittedAt: now,
          deadline: Infinity,
          token: -1,
          ticket: false,
          failing: false,
          answered: false
        }
        submit(request, now)
        arrival.time = nextArrival(now)
        if (arrival.time < end) heap.push(arrival)
        break
      }
      case CALL_END:
        callEnded(event as Request, now)
        break
      case DEADLINE:
        if (!event.request!.answered) submit({ step: TIME_OUT, request: event.request }, now)
        break
      case WAKE:
        wakeUp(now)
        break
      case TICK:
        submit(timer, now)
        break
    }
  }
  return rec
}
