/**
 * The simulator against the demo run for real: the demo's three processes (load driver, user API,
 * downstream) over HTTP on 127.0.0.1, then the simulator on the same phases, users and policies
 * (`simulated.ts`), and per phase the share of ok, shed, breaker-open and rate-limited answers
 * side by side.
 *
 *   npx tsx examples/demo/compare.ts [--scale 0.3] [--seed 1] [--save run.json | --load run.json]
 *
 * The simulator cannot know what the machine did to the API during the run, so the run measures
 * it (`calibrate.ts`): the share of a core the API's main thread got, every 100 ms, from Linux's
 * scheduler statistics; what its event loop spends per admitted request, per downstream try and
 * per rejection, fitted to its CPU time in each phase; and the warm-up's traffic, which the
 * breakers' windows still hold when the first phase starts. The simulated API then runs with that
 * CPU, at those moments, through the warm-up and the phases.
 */
import { Clock, Effect, Fiber } from "effect"
import * as Fs from "node:fs"
import * as Simulator from "../../src/Simulator.js"
import * as Calibrate from "./calibrate.js"
import type { RequestRecord } from "./model.js"
import * as Phases from "./phases.js"
import type { ReportData } from "./report.js"
import { run } from "./run.js"
import * as Simulated from "./simulated.js"
import * as System from "./system.js"
import type { View } from "./terminal.js"

/** The outcomes compared; `rejected` is `shed` and `breakerOpen` together. */
export const compared = ["ok", "shed", "breakerOpen", "rejected", "rateLimited"] as const
export type Compared = typeof compared[number]

const parts = (outcome: Compared): ReadonlyArray<Exclude<Compared, "rejected">> =>
  outcome === "rejected" ? ["shed", "breakerOpen"] : [outcome]

export interface Row {
  readonly phase: string
  readonly outcome: Compared
  readonly real: number
  readonly simulated: number
}

/** A sample of the API's main thread and of the downstream's count, ms since the warm-up began. */
export interface Sample extends Calibrate.SchedSample {
  /** calls the downstream has answered so far */
  readonly served: number
}

/** What the real run measured. */
export interface Measured {
  readonly scale: number
  readonly report: ReportData
  readonly records: ReadonlyArray<RequestRecord>
  /** every 100 ms from the warm-up's start; empty where Linux's scheduler statistics are missing */
  readonly samples: ReadonlyArray<Sample>
  /** from the warm-up's start to the first phase's */
  readonly warmupMs: number
  /** of which the warm-up's requests took this long (then the API's shedder cooled off) */
  readonly sendingMs: number
}

export interface Comparison {
  readonly rows: ReadonlyArray<Row>
  readonly service: Simulated.Service
  readonly measured: Measured
}

const silent: View = { update: () => {}, endPhase: () => {}, log: () => {} }

const STEP_MS = 100

/** Runs the demo for real at `scale`, sampling the API's scheduler statistics as it goes. */
export const measure = (scale: number): Effect.Effect<Measured, Error> =>
  Effect.scoped(Effect.gen(function*() {
    const phases = Phases.phases(scale)
    const sut = yield* System.start({ onLog: () => {} })
    const pid = sut.pids.api
    const begin = yield* Clock.currentTimeMillis
    const samples: Array<Sample> = []
    const sample = Effect.gen(function*() {
      const stat = pid === undefined ? undefined : Calibrate.readSchedstat(pid)
      if (stat !== undefined) {
        samples.push({ t: (yield* Clock.currentTimeMillis) - begin, ...stat, served: yield* sut.served })
      }
    })
    yield* sample
    const sampler = yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sleep(`${STEP_MS} millis`), sample)))
    const result = yield* run(
      { ...sut, facts: {} },
      {
        phases,
        users: Phases.users,
        warmup: Phases.warmup(scale),
        maxInFlight: Phases.MAX_IN_FLIGHT,
        requestTimeoutMs: Phases.REQUEST_TIMEOUT_MS,
        view: silent,
        title: "compare"
      },
      () => Effect.void
    )
    yield* sample
    yield* Fiber.interrupt(sampler)
    const t0 = Date.parse(result.report.generatedAt) - begin
    const warmupMs = t0 + result.report.phases[0].startMs
    // times from the warm-up's start, the simulation's zero
    const shifted = (t: number) => t + t0
    return {
      scale,
      report: {
        ...result.report,
        phases: result.report.phases.map((w) => ({ ...w, startMs: shifted(w.startMs), endMs: shifted(w.endMs) }))
      },
      records: result.records.map((r) => ({ ...r, sentAt: shifted(r.sentAt) })),
      samples,
      warmupMs,
      sendingMs: result.warmup?.sendingMs ?? warmupMs
    }
  }))

/** The protections of the server's own stages, as the driver's records name them. */
const isServerRejection = (by: string) =>
  by === "overloaded" || by === "max_connections" || by === "rate-limit" || by.startsWith("breaker:GET ")

/** A cumulative field of the samples at `t`, interpolated. */
const sampled = (samples: ReadonlyArray<Sample>, t: number, field: "runMs" | "served"): number => {
  let previous = samples[0]
  for (const s of samples) {
    if (s.t >= t) {
      return previous[field] + ((s[field] - previous[field]) * (t - previous.t)) / Math.max(1e-9, s.t - previous.t)
    }
    previous = s
  }
  return previous[field]
}

/** The simulated API's costs and CPU, from what the run measured. */
export const calibrate = (m: Measured): Simulated.Service => {
  const windows = m.report.phases
  if (m.samples.length < 2) {
    return { cpuMsPerRequest: 0, cpuMsPerRejection: 0, cpuShare: 1 }
  }
  const work = windows.map((w): Calibrate.PhaseWork => {
    const records = m.records.filter((r) => r.phase === w.name && r.outcome !== "skipped")
    const rejected = records.filter((r) => isServerRejection(r.by)).length
    return {
      admitted: records.length - rejected,
      rejected,
      tries: sampled(m.samples, w.endMs, "served") - sampled(m.samples, w.startMs, "served"),
      cpuMs: sampled(m.samples, w.endMs, "runMs") - sampled(m.samples, w.startMs, "runMs")
    }
  })
  const costs = Calibrate.fitCosts(work)
  const shares = Calibrate.shareTrace(m.samples, STEP_MS, windows[windows.length - 1].endMs)
  return { ...costs, cpuShare: { everyMs: STEP_MS, shares } }
}

/**
 * The warm-up as phases of the simulation: its own users, at the rate the downstream saw their
 * calls, then quiet while the API's shedder cooled off.
 */
export const warmupPhases = (m: Measured): ReadonlyArray<Simulated.SimulatedPhase> => {
  const sending = Math.max(1, Math.min(m.sendingMs, m.warmupMs))
  const served = m.samples.length < 2 ? 0 : sampled(m.samples, sending, "served")
  const phase = { title: "Warm-up", description: "before the first phase, not compared", downstream: {} }
  return [
    {
      ...phase,
      name: "warm-up",
      durationMs: sending,
      rps: (served * 1000) / sending,
      users: Phases.warmup(m.scale).users
    },
    ...(m.warmupMs - sending >= 1 ? [{ ...phase, name: "settling", durationMs: m.warmupMs - sending, rps: 0 }] : [])
  ]
}

/** The demo's phases as they ran: each as long as it lasted. */
export const measuredPhases = (m: Measured): ReadonlyArray<Simulated.SimulatedPhase> =>
  Phases.phases(m.scale).map((p, i) => ({ ...p, durationMs: m.report.phases[i].endMs - m.report.phases[i].startMs }))

/** Simulates what `m` ran, with its measured machine, and compares each phase's shares. */
export const simulate = (m: Measured, seed = 1): Effect.Effect<Comparison, Error> =>
  Effect.gen(function*() {
    const service = calibrate(m)
    const windows = m.report.phases
    const warmup = warmupPhases(m)
    const phases = [...warmup, ...measuredPhases(m)]
    const simulated = yield* Simulator.run(Simulated.scenario(phases, Phases.users, service, seed)).pipe(
      Effect.mapError((e) => new Error(e.message))
    )
    const rows = windows.flatMap((w, i) => {
      const sim = simulated.phases[i + warmup.length]
      const records = m.records.filter((r) => r.phase === w.name && r.outcome !== "skipped")
      return compared.map((outcome): Row => ({
        phase: w.name,
        outcome,
        real: records.filter((r) => parts(outcome).some((o) => o === r.outcome)).length /
          Math.max(1, records.length),
        simulated: parts(outcome).reduce((n, o) => n + sim.outcomes[o], 0) / Math.max(1, sim.offered)
      }))
    })
    return { rows, service, measured: m }
  })

/** Runs the demo for real at `scale`, then the simulator, and compares. */
export const compare = (scale: number, seed = 1): Effect.Effect<Comparison, Error> =>
  Effect.flatMap(measure(scale), (m) => simulate(m, seed))

/** The share of a core the API got while runnable, on average over the run. */
export const meanShare = (service: Simulated.Service): number => {
  const shares = typeof service.cpuShare === "number" ? [service.cpuShare] : service.cpuShare.shares
  return shares.reduce((a, b) => a + b, 0) / shares.length
}

/** The comparison as a table, with what the calibration found. */
export const format = ({ measured, rows, service }: Comparison): string => {
  const shares = typeof service.cpuShare === "number" ? [service.cpuShare] : service.cpuShare.shares
  const mean = meanShare(service)
  const lines = [
    `calibrated: ${service.cpuMsPerRequest.toFixed(2)} ms of CPU per admitted request, ${
      (service.cpuMsPerTry ?? 0).toFixed(2)
    } per downstream try, ${service.cpuMsPerRejection.toFixed(2)} per rejection; the API got ${
      mean.toFixed(2)
    } of a core while runnable (${Math.min(...shares).toFixed(2)}–${Math.max(...shares).toFixed(2)} per 100 ms); ` +
    `warm-up ${(measured.warmupMs / 1000).toFixed(1)} s`,
    "phase     outcome      real  simulated   gap"
  ]
  for (const r of rows) {
    lines.push(
      `${r.phase.padEnd(9)} ${r.outcome.padEnd(11)} ${r.real.toFixed(2).padStart(5)}  ${
        r.simulated.toFixed(2).padStart(9)
      }  ${(r.simulated - r.real).toFixed(2).padStart(5)}`
    )
  }
  return lines.join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const option = (name: string) => {
    const i = process.argv.indexOf(`--${name}`)
    return i > 0 ? process.argv[i + 1] : undefined
  }
  const scale = Number(option("scale") ?? 0.3)
  const seed = Number(option("seed") ?? 1)
  const load = option("load")
  const save = option("save")
  // --save keeps what the run measured; --load simulates a saved run again (no processes started)
  const measured = load === undefined
    ? await Effect.runPromise(measure(scale))
    : (JSON.parse(Fs.readFileSync(load, "utf8")) as Measured)
  if (save !== undefined) Fs.writeFileSync(save, JSON.stringify(measured))
  console.log(format(await Effect.runPromise(simulate(measured, seed))))
  process.exit(0)
}
