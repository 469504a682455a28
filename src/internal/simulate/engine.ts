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
import * as Random from "./random.js"
import * as Rec from "./recording.js"
import { BREAKER_OPEN, FAILED, OK, RATE_LIMITED, SHED, TIMEOUT } from "./recording.js"
import type * as Scenario from "./scenario.js"
import * as Signals from "./signals.js"
import { type Stack, type Stage, usersOf } from "./stack.js"

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

/** Picks users by weight (cumulative table, binary search): the index of one, plus `offset`. */
const userPicker = (
  users: ReadonlyArray<{ readonly weight: number }>,
  rng: Random.Rng,
  offset: number
): () => number => {
  const cumulative: Array<number> = []
  let sum = 0
  for (const u of users) cumulative.push(sum += u.weight)
  return () => {
    const x = rng.next() * sum
    let lo = 0, hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid] > x) hi = mid
      else lo = mid + 1
    }
    return lo + offset
  }
}

/** Per phase, a picker of its users (indices into `allUsers`): its own, or `traffic.users`. */
const phasePickers = (scenario: Scenario.Scenario, rng: Random.Rng): ReadonlyArray<() => number> => {
  const traffic = userPicker(usersOf(scenario.traffic.users), rng, 0)
  let offset = usersOf(scenario.traffic.users).length
  return scenario.phases.map((p) => {
    if (p.users === undefined || p.users.length === 0) return traffic
    const picker = userPicker(p.users, rng, offset)
    offset += p.users.length
    return picker
  })
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
  const pickers = phasePickers(scenario, Random.make(scenario.seed, 4))
  const poisson = scenario.traffic.arrivals === "poisson"
  const shadow = scenario.shadow
  const { breaker, limiters, maxConns, shedder, timeoutMs, users } = stack
  const service = scenario.service
  const halfMs = service.cpuMsPerRequest / 2
  const rejectMs = service.cpuMsPerRejection ?? service.cpuMsPerRequest / 4
  const tryMs = service.cpuMsPerTry
  const probe = stack.signal === undefined ? undefined : Signals.make(stack.signal.kind, service.cores)
  const loop = new Loop(
    typeof service.cpuShare === "number"
      ? Host.constant(service.cpuShare, service.sliceMs)
      : Host.trace(service.cpuShare.shares, service.cpuShare.everyMs, service.sliceMs),
    probe
  )
  // a loop with no work is always idle: its timers would read nothing
  const tickMillis = probe !== undefined && (halfMs > 0 || rejectMs > 0 || tryMs > 0) ? probe.tickMillis : 0
  const tick: Event = { time: tickMillis, seq: 0, kind: TICK, request: undefined }
  const timer: Job = { step: TIMER }
  const tryJob: Job = { step: TRY }

  const heap = new Heap<Scheduled>()
  let inFlight = 0
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
      // the server's shedding stage: a 503 (the handler's rejections, a timeout) is a failed pass,
      // any other answer a pass
      if (outcome === OK || outcome === FAILED) Shedder.pass(shedder!, request.admittedAt, now)
      else Shedder.fail(shedder!)
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
    const user = pickers[request.phase]()
    const limiter = limiters[user]
    if (limiter !== undefined && !limiter.run(users[user], now * 1000, 1, 0).allowed) {
      if (!shadow) return rejectedInside(request, token, ticket, "rate-limit", RATE_LIMITED, now)
      wouldReject(request, "rate-limit")
    }
    inFlight++
    request.token = token
    request.ticket = ticket
    request.admittedAt = now
    request.deadline = now + timeoutMs
    // the server's deadline is a timer on the loop: it answers 503 if the response is not out by then
    if (timeoutMs !== Infinity) heap.push({ time: request.deadline, seq: 0, kind: DEADLINE, step: EXPIRE, request })
    request.step = RESPOND
    calls.start(request, loop.work(now, halfMs))
  }

  /** Runs one piece of work at `start`. */
  const runJob = (job: Job, start: number) => {
    switch (job.step) {
      case READ:
        return admit(job as Request, start)
      case RESPOND: {
        const request = job as Request
        // the handler's answer: an admitted request's other half, a rejection's cost for a 503
        const cost = request.result === OK || request.result === FAILED ? halfMs : rejectMs
        if (!request.answered) answer(request, request.result, start, loop.work(start, cost))
        return
      }
      case TRY:
        loop.work(start, tryMs)
        return
      case EXPIRE: {
        const request = (job as Expiry).request
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
  const wakeAt = (time: number) => {
    if (loop.wakePending) return
    loop.wakePending = true
    loop.wake.time = time
    heap.push(loop.wake)
  }

  /** Hands `job` to the loop at `now`: at once when it is idle and on the CPU, else in turn. */
  const submit = (job: Job, now: number) => {
    if (loop.idle(now)) {
      const at = loop.onAt(now)
      if (at === now) return runJob(job, now)
      // off the CPU with nothing to do: the loop waits for it, idle
      loop.busyUntil = at
    }
    loop.push(job)
    wakeAt(loop.busyUntil)
  }

  /** A timer fires at `now`: its callback runs at once on an idle loop, else before the next round. */
  const fire = (job: Job, now: number) => {
    if (loop.idle(now)) return submit(job, now)
    loop.pushTimer(job)
    wakeAt(loop.busyUntil)
  }

  const wakeUp = (now: number) => {
    loop.wakePending = false
    while (loop.waiting && loop.busyUntil <= now) {
      const at = loop.onAt(now)
      if (at > now) {
        // preempted with work to do: the loop is busy while it waits for the CPU
        loop.active += at - now
        loop.busyUntil = at
        break
      }
      runJob(loop.shift(), now)
    }
    if (loop.waiting) wakeAt(loop.busyUntil)
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

  const clientBreaker = stack.client.breaker
  const calls = new Calls.Calls(
    heap,
    downstreams,
    stack.client,
    downstreamRng,
    Random.normals(downstreamRng),
    (request, outcome, now) => {
      request.result = outcome
      submit(request, now)
    },
    // the client's breaker changes state unrecorded: the report follows the route's
    () => void (clientBreaker !== undefined && clientBreaker.pending.length > 0 && clientBreaker.takePending()),
    // the client's handling of each try's answer is work on the loop, before the handler's own
    tryMs > 0 ? (now) => submit(tryJob, now) : undefined
  )

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
        calls.phase = phase
        rec.requests++
        const request: Request = {
          time: 0,
          seq: 0,
          kind: Calls.RETRY,
          request: undefined,
          step: READ,
          arrival: now,
          second: Math.floor(now / 1000),
          phase,
          admittedAt: now,
          deadline: Infinity,
          token: -1,
          ticket: false,
          result: OK,
          answered: false,
          tries: 0
        }
        submit(request, now)
        arrival.time = nextArrival(now)
        if (arrival.time < end) heap.push(arrival)
        break
      }
      case WAKE:
        wakeUp(now)
        break
      case TICK:
        fire(timer, now)
        break
      case DEADLINE: {
        const expiry = event as Expiry
        if (!expiry.request.answered) fire(expiry, now)
        break
      }
      default:
        calls.handle(event as Calls.Event, now)
    }
  }
  return rec
}
