/**
 * The simulator's discrete-event loop. Arrivals, downstream completions, caller deadlines and the
 * signal's timer are events on a virtual clock (milliseconds from the start). The service itself
 * is one event loop: every step of a request — reading it and deciding, handling the answer, a
 * deadline firing, a rejection — is work on it, run in order, so an overloaded service answers
 * late and its overload signals rise as a real one's do. Timers that fall due while it works (the
 * signal's sampler, a request's deadline) run between rounds of I/O callbacks, as in Node. Each
 * request passes the stack's protections when the loop reaches it and reports its outcome to them
 * when it ends, exactly as the middleware would. No timers, no fibers: an hour of traffic is a loop over a heap.
 */
import * as BreakerCore from "../breaker/core.js"
import * as Shedder from "../shedder.js"
import * as Calls from "./calls.js"
import type { Request } from "./calls.js"
import { Heap } from "./heap.js"
import * as Host from "./host.js"
import { phasePickers } from "./pickers.js"
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

/** Heap events (the calls' own are 10 and up). */
const ARRIVAL = 0, WAKE = 3, TICK = 4, DEADLINE = 5
/** Work on the service's loop. */
const READ = 0, RESPOND = 1, TIMER = 3, TRY = 4, EXPIRE = 5

interface Event {
  time: number
  seq: number
  readonly kind: number
  readonly request: Request | undefined
}
/** A request's deadline: a heap event, then the timer's callback on the loop. */
interface Expiry {
  time: number
  seq: number
  readonly kind: number
  readonly step: number
  readonly request: Request
}
type Scheduled = Event | Calls.Event | Expiry

interface Job {
  readonly step: number
}

/**
 * The service's event loop: a FIFO of work, one piece at a time. On a host it shares (`Host`),
 * work that arrives while the process is off the CPU waits (the loop is idle, waiting for the
 * CPU), and work that outlasts its slice is preempted mid-callback and resumes in the next one
 * (the loop is busy all along) — which is how a descheduled process reads a high event-loop
 * utilization for little CPU.
 */
class Loop {
  /** when the work started last ends, or when the loop next gets the CPU */
  busyUntil = 0
  /** cumulative busy wall time, ms */
  active = 0
  private readonly jobs: Array<Job> = []
  private head = 0
  readonly wake: Event = { time: 0, seq: 0, kind: WAKE, request: undefined }
  wakePending = false
  constructor(
    private readonly host: Host.Host,
    private readonly probe: Signals.Probe | undefined
  ) {}

  /** the jobs before this index make up the batch the loop is working through */
  private batchEnd = 0
  /** timers that fell due while the loop was working: they run when the batch is done */
  private readonly due: Array<Job> = []
  private dueHead = 0

  idle(now: number): boolean {
    return !this.waiting && now >= this.busyUntil
  }
  get waiting(): boolean {
    return this.head < this.jobs.length || this.dueHead < this.due.length
  }
  /** a timer's callback, due now while the loop works: it runs before the next round */
  pushTimer(job: Job): void {
    this.due.push(job)
  }
  push(job: Job): void {
    this.jobs.push(job)
  }
  /**
   * The next job. Node runs its due timers between two rounds of I/O callbacks, not behind every
   * callback that is waiting: a round handles what was ready when it began, then the timers run,
   * then the next round — so the utilization sampler keeps time however far behind the loop is.
   */
  shift(): Job {
    if (this.head >= this.batchEnd) {
      if (this.dueHead < this.due.length) {
        const timer = this.due[this.dueHead++]
        if (this.dueHead === this.due.length) {
          this.due.length = 0
          this.dueHead = 0
        }
        return timer
      }
      this.batchEnd = this.jobs.length
    }
    const job = this.jobs[this.head++]
    if (this.head > 1024 && this.head * 2 > this.jobs.length) {
      this.jobs.splice(0, this.head)
      this.batchEnd -= this.head
      this.head = 0
    }
    return job
  }
  /** the first time ≥ `t` the process is on the CPU */
  onAt(t: number): number {
    return this.host.onAt(t)
  }
  /** `cpuMs` of work starting at `start`; returns when it ends */
  work(start: number, cpuMs: number): number {
    if (cpuMs <= 0) return start
    const end = this.host.finish(start, cpuMs)
    this.active += end - start
    this.busyUntil = end
    this.probe?.work(start, cpuMs)
    return end
  }
}

/** One run: the stack's state, the service's loop and the event heap, advanced event by event. */
class Simulation {
  readonly rec: Rec.Recording
  private readonly phases: Scenario.Scenario["phases"]
  private readonly phaseEnds: Array<number> = []
  private readonly end: number
  private readonly arrivalsRng: Random.Rng
  private readonly breakerRng: Random.Rng
  private readonly pickers: ReadonlyArray<() => number>
  private readonly poisson: boolean
  private readonly shadow: boolean
  private readonly halfMs: number
  private readonly rejectMs: number
  private readonly tryMs: number
  private readonly probe: Signals.Probe | undefined
  private readonly loop: Loop
  private readonly tickMillis: number
  private readonly tick: Event
  private readonly timer: Job = { step: TIMER }
  private readonly tryJob: Job = { step: TRY }
  private readonly heap = new Heap<Scheduled>()
  private readonly calls: Calls.Calls
  private inFlight = 0
  private phase = 0

  constructor(
    scenario: Scenario.Scenario,
    private readonly stack: Stack,
    downstreams: ReadonlyArray<Scenario.Downstream>
  ) {
    this.phases = scenario.phases
    let end = 0
    for (const p of this.phases) this.phaseEnds.push(end += p.durationSeconds * 1000)
    this.end = end
    this.rec = Rec.make(Math.ceil(end / 1000), this.phases.length, stack.breaker !== undefined)
    this.arrivalsRng = Random.make(scenario.seed, 1)
    const downstreamRng = Random.make(scenario.seed, 2)
    this.breakerRng = Random.make(scenario.seed, 3)
    this.pickers = phasePickers(scenario, Random.make(scenario.seed, 4))
    this.poisson = scenario.traffic.arrivals === "poisson"
    this.shadow = scenario.shadow
    const service = scenario.service
    this.halfMs = service.cpuMsPerRequest / 2
    this.rejectMs = service.cpuMsPerRejection ?? service.cpuMsPerRequest / 4
    this.tryMs = service.cpuMsPerTry
    this.probe = stack.signal === undefined ? undefined : Signals.make(stack.signal.kind, service.cores)
    this.loop = new Loop(
      typeof service.cpuShare === "number"
        ? Host.constant(service.cpuShare, service.sliceMs)
        : Host.trace(service.cpuShare.shares, service.cpuShare.everyMs, service.sliceMs),
      this.probe
    )
    // a loop with no work is always idle: its timers would read nothing
    const working = this.halfMs > 0 || this.rejectMs > 0 || this.tryMs > 0
    this.tickMillis = this.probe !== undefined && working ? this.probe.tickMillis : 0
    this.tick = { time: this.tickMillis, seq: 0, kind: TICK, request: undefined }
    const clientBreaker = stack.client.breaker
    this.calls = new Calls.Calls(
      this.heap,
      downstreams,
      stack.client,
      downstreamRng,
      Random.normals(downstreamRng),
      (request, outcome, now) => {
        request.result = outcome
        this.submit(request, now)
      },
      // the client's breaker changes state unrecorded: the report follows the route's
      () => void (clientBreaker !== undefined && clientBreaker.pending.length > 0 && clientBreaker.takePending()),
      // the client's handling of each try's answer is work on the loop, before the handler's own
      this.tryMs > 0 ? (now) => this.submit(this.tryJob, now) : undefined
    )
  }

  private drainTransitions(): void {
    const breaker = this.stack.breaker
    if (breaker === undefined || breaker.pending.length === 0) return
    for (const t of breaker.takePending()) Rec.transition(this.rec, { t: t.at, from: t.from, to: t.to })
  }

  /** A stage answered the request at `now`: the rejection is work on the loop. */
  private rejected(request: Request, stage: Stage, outcome: number, now: number): void {
    this.loop.work(now, this.rejectMs)
    Rec.count(this.rec, request.second, request.phase, outcome, -1)
    this.rec.byPerPhase[request.phase * Rec.stagesCount + STAGE_INDEX[stage]]++
  }

  /** A stage inside the breaker and the shedder answered: they count the request as neither. */
  private rejectedInside(
    request: Request,
    token: number,
    ticket: boolean,
    stage: Stage,
    outcome: number,
    now: number
  ): void {
    if (token >= 0) this.stack.breaker!.ignore(token, now)
    if (ticket) Shedder.fail(this.stack.shedder!)
    this.rejected(request, stage, outcome, now)
  }

  /** In shadow mode a rejection is counted and the request goes on. */
  private wouldReject(request: Request, stage: Stage): void {
    this.rec.wouldRejectPerSecond[request.second * Rec.stagesCount + STAGE_INDEX[stage]]++
    this.rec.wouldRejectPerPhase[request.phase * Rec.stagesCount + STAGE_INDEX[stage]]++
  }

  /** The caller gets its answer at `end`; the protections learn the outcome at `now`. */
  private answer(request: Request, outcome: number, now: number, end: number): void {
    request.answered = true
    this.inFlight--
    Rec.count(this.rec, request.second, request.phase, outcome, end - request.arrival)
    if (request.token >= 0) {
      const breaker = this.stack.breaker!
      if (outcome === OK) breaker.success(request.token, now, now - request.admittedAt)
      else breaker.failure(request.token, now, now - request.admittedAt)
      this.drainTransitions()
    }
    if (request.ticket) {
      // the server's shedding stage: a 503 (the handler's rejections, a timeout) is a failed pass,
      // any other answer a pass
      if (outcome === OK || outcome === FAILED) Shedder.pass(this.stack.shedder!, request.admittedAt, now)
      else Shedder.fail(this.stack.shedder!)
    }
  }

  /** The breaker's permit for `request` at `now` (-1: none; with the state it was taken in recorded). */
  private breakerToken(request: Request, now: number): number {
    const breaker = this.stack.breaker!
    let token = breaker.acquire(now)
    if (token === BreakerCore.NEED_RANDOM) token = breaker.acquireRandom(now, this.breakerRng.next())
    this.drainTransitions()
    const code = BREAKER_CODE[breaker.state()]
    if (code > this.rec.breakerPerSecond[request.second]) this.rec.breakerPerSecond[request.second] = code
    return token
  }

  /** The shedder's decision for `request` at `now`, with the signal it read recorded. */
  private shedderAllows(request: Request, now: number): boolean {
    const probe = this.probe!
    probe.arrived(now - request.arrival, now)
    const value = probe.read(now)
    if (!(value <= this.rec.signalPerSecond[request.second])) this.rec.signalPerSecond[request.second] = value
    return Shedder.allow(this.stack.shedder!, now, value, STANDARD)
  }

  /** The loop reads `request` at `now`: the stages in `ResilientHttpServer`'s order. */
  private admit(request: Request, now: number): void {
    const { limiters, users } = this.stack
    if (this.inFlight >= this.stack.maxConns) {
      if (!this.shadow) return this.rejected(request, "connections", SHED, now)
      this.wouldReject(request, "connections")
    }
    let token = -1
    if (this.stack.breaker !== undefined) {
      token = this.breakerToken(request, now)
      if (token < 0) {
        if (!this.shadow) return this.rejected(request, "breaker", BREAKER_OPEN, now)
        this.wouldReject(request, "breaker")
      }
    }
    let ticket = false
    if (this.stack.shedder !== undefined) {
      if (this.shedderAllows(request, now)) ticket = true
      else if (!this.shadow) return this.rejectedInside(request, token, false, "shedding", SHED, now)
      else this.wouldReject(request, "shedding")
    }
    const user = this.pickers[request.phase]()
    const limiter = limiters[user]
    if (limiter !== undefined && !limiter.run(users[user], now * 1000, 1, 0).allowed) {
      if (!this.shadow) return this.rejectedInside(request, token, ticket, "rate-limit", RATE_LIMITED, now)
      this.wouldReject(request, "rate-limit")
    }
    this.inFlight++
    request.token = token
    request.ticket = ticket
    request.admittedAt = now
    request.deadline = now + this.stack.timeoutMs
    // the server's deadline is a timer on the loop: it answers 503 if the response is not out by then
    if (this.stack.timeoutMs !== Infinity) {
      this.heap.push({ time: request.deadline, seq: 0, kind: DEADLINE, step: EXPIRE, request })
    }
    request.step = RESPOND
    this.calls.start(request, this.loop.work(now, this.halfMs))
  }

  /** Runs one piece of work at `start`. */
  private runJob(job: Job, start: number): void {
    switch (job.step) {
      case READ:
        return this.admit(job as Request, start)
      case RESPOND: {
        const request = job as Request
        // the handler's answer: an admitted request's other half, a rejection's cost for a 503
        const cost = request.result === OK || request.result === FAILED ? this.halfMs : this.rejectMs
        if (!request.answered) this.answer(request, request.result, start, this.loop.work(start, cost))
        return
      }
      case TRY:
        this.loop.work(start, this.tryMs)
        return
      case EXPIRE: {
        const request = (job as Expiry).request
        if (!request.answered) this.answer(request, TIMEOUT, start, this.loop.work(start, this.rejectMs))
        return
      }
      case TIMER: {
        this.probe!.tick(start, this.tick.time, this.loop.active)
        this.tick.time = start + this.tickMillis
        if (this.tick.time < this.end) this.heap.push(this.tick)
        return
      }
    }
  }

  /** The loop wants to run again at `time` (one wake event pending at a time). */
  private wakeAt(time: number): void {
    if (this.loop.wakePending) return
    this.loop.wakePending = true
    this.loop.wake.time = time
    this.heap.push(this.loop.wake)
  }

  /** Hands `job` to the loop at `now`: at once when it is idle and on the CPU, else in turn. */
  private submit(job: Job, now: number): void {
    const loop = this.loop
    if (loop.idle(now)) {
      const at = loop.onAt(now)
      if (at === now) return this.runJob(job, now)
      // off the CPU with nothing to do: the loop waits for it, idle
      loop.busyUntil = at
    }
    loop.push(job)
    this.wakeAt(loop.busyUntil)
  }

  /** A timer fires at `now`: its callback runs at once on an idle loop, else before the next round. */
  private fire(job: Job, now: number): void {
    if (this.loop.idle(now)) return this.submit(job, now)
    this.loop.pushTimer(job)
    this.wakeAt(this.loop.busyUntil)
  }

  private wakeUp(now: number): void {
    const loop = this.loop
    loop.wakePending = false
    while (loop.waiting && loop.busyUntil <= now) {
      const at = loop.onAt(now)
      if (at > now) {
        // preempted with work to do: the loop is busy while it waits for the CPU
        loop.active += at - now
        loop.busyUntil = at
        break
      }
      this.runJob(loop.shift(), now)
    }
    if (loop.waiting) this.wakeAt(loop.busyUntil)
  }

  private rateAt(now: number): number {
    const p = this.phases[this.phase]
    if (p.rampToRps === undefined) return p.rps
    const start = this.phaseEnds[this.phase] - p.durationSeconds * 1000
    return p.rps + (p.rampToRps - p.rps) * ((now - start) / (p.durationSeconds * 1000))
  }

  private nextArrival(now: number): number {
    // a silent phase: move to the next phase's start
    for (;;) {
      const rate = this.rateAt(now)
      if (rate > 0) {
        const gap = this.poisson ? Random.exponential(this.arrivalsRng, 1000 / rate) : 1000 / rate
        return now + gap
      }
      if (this.phase >= this.phases.length - 1) return Infinity
      now = this.phaseEnds[this.phase]
      this.phase++
    }
  }

  /** A request arrives at `now`: the loop will read it. */
  private arrive(now: number): void {
    while (now >= this.phaseEnds[this.phase]) this.phase++
    this.calls.phase = this.phase
    this.rec.requests++
    const request: Request = {
      time: 0,
      seq: 0,
      kind: Calls.RETRY,
      request: undefined,
      step: READ,
      arrival: now,
      second: Math.floor(now / 1000),
      phase: this.phase,
      admittedAt: now,
      deadline: Infinity,
      token: -1,
      ticket: false,
      result: OK,
      answered: false,
      tries: 0
    }
    this.submit(request, now)
  }

  /** Runs every event in time order until none is left. */
  run(): Rec.Recording {
    const heap = this.heap
    // one arrival event, rescheduled after each arrival
    const arrival: Event = { time: this.nextArrival(0), seq: 0, kind: ARRIVAL, request: undefined }
    if (arrival.time < this.end) heap.push(arrival)
    if (this.tickMillis > 0) heap.push(this.tick)
    for (;;) {
      const event = heap.pop()
      if (event === undefined) break
      const now = event.time
      switch (event.kind) {
        case ARRIVAL:
          this.arrive(now)
          arrival.time = this.nextArrival(now)
          if (arrival.time < this.end) heap.push(arrival)
          break
        case WAKE:
          this.wakeUp(now)
          break
        case TICK:
          this.fire(this.timer, now)
          break
        case DEADLINE: {
          const expiry = event as Expiry
          if (!expiry.request.answered) this.fire(expiry, now)
          break
        }
        default:
          this.calls.handle(event as Calls.Event, now)
      }
    }
    return this.rec
  }
}

/** Runs `scenario` through `stack` and returns what it recorded. */
export const run = (
  scenario: Scenario.Scenario,
  stack: Stack,
  downstreams: ReadonlyArray<Scenario.Downstream>
): Rec.Recording => new Simulation(scenario, stack, downstreams).run()
