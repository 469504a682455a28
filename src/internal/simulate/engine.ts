/**
 * The simulator's discrete-event loop. Arrivals, downstream completions and caller deadlines are
 * events on a virtual clock (milliseconds from the start); each request passes the stack's
 * protections at its arrival time and reports its outcome to them when it ends, exactly as the
 * middleware would. No timers, no fibers: an hour of traffic is a loop over a heap.
 */
import * as BreakerCore from "../breaker/core.js"
import * as Shedder from "../shedder.js"
import { Heap } from "./heap.js"
import * as Histogram from "./histogram.js"
import * as Random from "./random.js"
import type * as Scenario from "./scenario.js"
import type { Stack, Stage } from "./stack.js"

/** Outcomes, as the caller sees them. */
export const outcomes = ["ok", "failed", "timeout", "shed", "rateLimited", "breakerOpen"] as const
export type Outcome = typeof outcomes[number]
const OK = 0, FAILED = 1, TIMEOUT = 2, SHED = 3, RATE_LIMITED = 4, BREAKER_OPEN = 5
const OUTCOMES = outcomes.length

const STAGE_INDEX: Readonly<Record<Stage, number>> = { connections: 0, cpu: 1, "rate-limit": 2, breaker: 3 }
const BREAKER_CODE = { Closed: 0, HalfOpen: 1, Open: 2 } as const
const MAX_TRANSITIONS = 2000
const CPU_BUCKETS = 10
const CPU_BUCKET_MS = 100

interface Request {
  /** the request is its own CALL_END event */
  time: number
  seq: number
  readonly kind: number
  readonly request: undefined
  readonly arrival: number
  readonly second: number
  readonly phase: number
  readonly deadline: number
  /** breaker token, −1 when the breaker did not admit it (shadow) or there is none */
  readonly token: number
  /** whether the shedder counts it in flight */
  readonly shed: boolean
  /** whether the downstream call fails; decided when it starts */
  failing: boolean
  answered: boolean
}

const ARRIVAL = 0, CALL_END = 1, DEADLINE = 2
interface Event {
  time: number
  seq: number
  readonly kind: number
  readonly request: Request | undefined
}
type Scheduled = Event | Request

export interface Transition {
  readonly t: number
  readonly from: string
  readonly to: string
}

/** What a run records: per-second and per-phase counts, latency histograms, breaker states. */
export interface Recording {
  readonly seconds: number
  /** [second × OUTCOMES + outcome] */
  readonly perSecond: Float64Array
  /** [second × BINS + bin], answered requests only */
  readonly latencyPerSecond: Uint32Array
  /** [second]: the most severe breaker state seen (0 Closed, 1 HalfOpen, 2 Open), −1 without a breaker */
  readonly breakerPerSecond: Int8Array
  /** [second × 4 + stage]: would-reject counts in shadow mode */
  readonly wouldRejectPerSecond: Float64Array
  readonly perPhase: Float64Array
  readonly latencyPerPhase: Uint32Array
  readonly byPerPhase: Float64Array
  readonly wouldRejectPerPhase: Float64Array
  readonly transitions: Array<Transition>
  transitionsDropped: number
  requests: number
}

export const stagesCount = 4

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

/** Runs `scenario` through `stack` and returns what it recorded. */
export const run = (
  scenario: Scenario.Scenario,
  stack: Stack,
  downstreams: ReadonlyArray<Scenario.Downstream>
): Recording => {
  const phases = scenario.phases
  const phaseEnds: Array<number> = []
  let end = 0
  for (const p of phases) phaseEnds.push(end += p.durationSeconds * 1000)
  const seconds = Math.ceil(end / 1000)
  const BINS = Histogram.BINS
  const rec: Recording = {
    seconds,
    perSecond: new Float64Array(seconds * OUTCOMES),
    latencyPerSecond: new Uint32Array(seconds * BINS),
    breakerPerSecond: new Int8Array(seconds).fill(stack.breaker === undefined ? -1 : 0),
    wouldRejectPerSecond: new Float64Array(seconds * stagesCount),
    perPhase: new Float64Array(phases.length * OUTCOMES),
    latencyPerPhase: new Uint32Array(phases.length * BINS),
    byPerPhase: new Float64Array(phases.length * stagesCount),
    wouldRejectPerPhase: new Float64Array(phases.length * stagesCount),
    transitions: [],
    transitionsDropped: 0,
    requests: 0
  }
  const arrivalsRng = Random.make(scenario.seed, 1)
  const downstreamRng = Random.make(scenario.seed, 2)
  const breakerRng = Random.make(scenario.seed, 3)
  const pickUser = userPicker(scenario.traffic.users, Random.make(scenario.seed, 4))
  const poisson = scenario.traffic.arrivals === "poisson"
  const shadow = scenario.shadow
  const { breaker, limiter, maxConns, shedder, timeoutMs } = stack
  const cpuMs = scenario.service.cpuMsPerRequest / scenario.service.cores
  const cpuBuckets = new Float64Array(CPU_BUCKETS)
  let cpuBucketAt = 0
  let cpuSum = 0

  const heap = new Heap<Scheduled>()
  const samplers = downstreams.map((d) => latencySampler(d.latency, downstreamRng))
  let inFlight = 0
  let busy = 0
  const queue: Array<Request> = []
  let queueHead = 0
  let phase = 0

  const drainTransitions = () => {
    if (breaker === undefined || breaker.pending.length === 0) return
    for (const t of breaker.takePending()) {
      if (rec.transitions.length < MAX_TRANSITIONS) rec.transitions.push({ t: t.at, from: t.from, to: t.to })
      else rec.transitionsDropped++
    }
  }

  const record = (request: Request, outcome: number, now: number) => {
    rec.perSecond[request.second * OUTCOMES + outcome]++
    rec.perPhase[request.phase * OUTCOMES + outcome]++
    if (outcome <= TIMEOUT) {
      const bin = Histogram.binOf(now - request.arrival)
      rec.latencyPerSecond[request.second * BINS + bin]++
      rec.latencyPerPhase[request.phase * BINS + bin]++
    }
  }

  const rejected = (second: number, stage: Stage, outcome: number) => {
    rec.perSecond[second * OUTCOMES + outcome]++
    rec.perPhase[phase * OUTCOMES + outcome]++
    rec.byPerPhase[phase * stagesCount + STAGE_INDEX[stage]]++
  }

  /** In shadow mode a rejection is counted and the request goes on. */
  const wouldReject = (second: number, stage: Stage) => {
    rec.wouldRejectPerSecond[second * stagesCount + STAGE_INDEX[stage]]++
    rec.wouldRejectPerPhase[phase * stagesCount + STAGE_INDEX[stage]]++
  }

  /** The caller gets its answer: the protections learn the outcome. */
  const answer = (request: Request, outcome: number, now: number) => {
    request.answered = true
    inFlight--
    record(request, outcome, now)
    if (breaker !== undefined && request.token >= 0) {
      if (outcome === OK) breaker.success(request.token, now, now - request.arrival)
      else breaker.failure(request.token, now, now - request.arrival)
      drainTransitions()
    }
    if (request.shed) {
      if (outcome === OK) Shedder.pass(shedder!, request.arrival, now)
      else Shedder.fail(shedder!)
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

  const admit = (now: number, second: number) => {
    if (inFlight >= maxConns) {
      if (!shadow) return rejected(second, "connections", SHED)
      wouldReject(second, "connections")
    }
    let shed = false
    if (shedder !== undefined) {
      const cpu = Math.min(1000, cpuSum * cpuMs)
      if (Shedder.allow(shedder, now, cpu)) shed = true
      else if (!shadow) return rejected(second, "cpu", SHED)
      else wouldReject(second, "cpu")
    }
    if (limiter !== undefined && !limiter.run(pickUser(), now * 1000, 1, 0).allowed) {
      if (!shadow) return rejectShed(shed, second, "rate-limit", RATE_LIMITED)
      wouldReject(second, "rate-limit")
    }
    let token = -1
    if (breaker !== undefined) {
      token = breaker.acquire(now)
      if (token === BreakerCore.NEED_RANDOM) token = breaker.acquireRandom(now, breakerRng.next())
      drainTransitions()
      const code = BREAKER_CODE[breaker.state()]
      if (code > rec.breakerPerSecond[second]) rec.breakerPerSecond[second] = code
      if (token < 0) {
        if (!shadow) return rejectShed(shed, second, "breaker", BREAKER_OPEN)
        wouldReject(second, "breaker")
      }
    }
    if (cpuMs > 0) {
      cpuBuckets[cpuBucketAt]++
      cpuSum++
    }
    inFlight++
    const d = downstreams[phase]
    const request: Request = {
      time: 0,
      seq: 0,
      kind: CALL_END,
      request: undefined,
      arrival: now,
      second,
      phase,
      deadline: now + timeoutMs,
      token,
      shed,
      failing: false,
      answered: false
    }
    if (busy < d.capacity) startCall(request, now)
    else if (queue.length - queueHead < d.queueLimit) {
      queue.push(request)
      if (timeoutMs !== Infinity) heap.push({ time: request.deadline, seq: 0, kind: DEADLINE, request })
    } else answer(request, FAILED, now)
  }

  /** A request the shedder admitted and a later stage rejected leaves the shedder's flight. */
  const rejectShed = (shed: boolean, second: number, stage: Stage, outcome: number) => {
    if (shed) Shedder.fail(shedder!)
    rejected(second, stage, outcome)
  }

  const callEnded = (request: Request, now: number) => {
    busy--
    if (!request.answered) answer(request, request.failing ? FAILED : OK, now)
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

  let lastCpuBucket = 0
  // one arrival event, rescheduled after each arrival
  const arrival: Event = { time: nextArrival(0), seq: 0, kind: ARRIVAL, request: undefined }
  if (arrival.time < end) heap.push(arrival)
  for (;;) {
    const event = heap.pop()
    if (event === undefined) break
    const now = event.time
    if (event.kind === ARRIVAL) {
      while (now >= phaseEnds[phase]) phase++
      if (cpuMs > 0) {
        const bucket = Math.floor(now / CPU_BUCKET_MS)
        for (let b = lastCpuBucket + 1; b <= bucket && b - lastCpuBucket <= CPU_BUCKETS; b++) {
          cpuBucketAt = b % CPU_BUCKETS
          cpuSum -= cpuBuckets[cpuBucketAt]
          cpuBuckets[cpuBucketAt] = 0
        }
        lastCpuBucket = bucket
        cpuBucketAt = bucket % CPU_BUCKETS
      }
      rec.requests++
      admit(now, Math.floor(now / 1000))
      arrival.time = nextArrival(now)
      if (arrival.time < end) heap.push(arrival)
    } else if (event.kind === CALL_END) {
      callEnded(event as Request, now)
    } else if (!event.request!.answered) {
      answer(event.request!, TIMEOUT, now)
    }
  }
  return rec
}
