/**
 * The simulator against the demo run for real: the demo's three processes (load driver, user API,
 * downstream) over HTTP on 127.0.0.1, then the simulator on the same phases, users and policies
 * (`simulated.ts`), and per phase the share of ok, shed and breaker-open answers side by side.
 *
 *   npx tsx examples/demo/compare.ts [--scale 0.5] [--seed 1]
 *
 * The simulator cannot know what a request costs the API on this machine, so the real normal
 * phase calibrates it: the API's CPU time per request (measured by the API process itself), and
 * the share of a core it got — its CPU time against the event-loop utilization its shedder read
 * (a process preempted mid-callback reads busy: utilization ≈ CPU / share).
 */
import { Effect } from "effect"
import * as Simulator from "../../src/Simulator.js"
import * as Phases from "./phases.js"
import { run } from "./run.js"
import * as Simulated from "./simulated.js"
import * as System from "./system.js"
import type { View } from "./terminal.js"

export const compared = ["ok", "shed", "breakerOpen"] as const
export type Compared = typeof compared[number]

export interface Row {
  readonly phase: string
  readonly outcome: Compared
  readonly real: number
  readonly simulated: number
}

export interface Comparison {
  readonly rows: ReadonlyArray<Row>
  readonly service: Simulated.Service
  /** the event-loop utilization the API's shedder read in the normal phase, on average */
  readonly normalElu: number
}

const silent: View = { update: () => {}, endPhase: () => {}, log: () => {} }

/** The API's CPU per request and share of a core, from the real normal phase. */
export const calibrate = (
  normal: { readonly cpuMs: number; readonly seconds: number; readonly requests: number; readonly elu: number }
): Simulated.Service => {
  const cpuMsPerRequest = normal.cpuMs / Math.max(1, normal.requests)
  const cpuFraction = normal.cpuMs / (normal.seconds * 1000)
  const cpuShare = Math.min(1, Math.max(0.05, normal.elu > 0 ? cpuFraction / normal.elu : 1))
  return { cpuMsPerRequest, cpuMsPerRejection: cpuMsPerRequest / 4, cpuShare }
}

/** Runs the demo for real at `scale`, then the simulator, and compares. */
export const compare = (scale: number, seed = 1): Effect.Effect<Comparison, Error> =>
  Effect.scoped(Effect.gen(function*() {
    const phases = Phases.phases(scale)
    const sut = yield* System.start({ onLog: () => {} })
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
    const { report } = result
    const [normal] = report.summary
    const window = report.phases[0]
    const elus = (report.overload ?? []).filter((s) => s.t >= window.startMs && s.t < window.endMs).map((s) => s.value)
    const normalElu = elus.reduce((a, b) => a + b, 0) / Math.max(1, elus.length)
    const service = calibrate({
      cpuMs: ((normal.cpuPct?.api ?? 0) / 100) * normal.seconds * 1000,
      seconds: normal.seconds,
      requests: normal.sent,
      elu: normalElu
    })
    const simulated = yield* Simulator.run(Simulated.scenario(phases, Phases.users, service, seed)).pipe(
      Effect.mapError((e) => new Error(e.message))
    )
    const rows = report.summary.flatMap((real, i) => {
      const sim = simulated.phases[i]
      const answered = Object.values(real.counts).reduce((a, b) => a + b, 0) - real.counts.skipped
      return compared.map((outcome): Row => ({
        phase: real.phase,
        outcome,
        real: real.counts[outcome] / Math.max(1, answered),
        simulated: sim.outcomes[outcome] / Math.max(1, sim.offered)
      }))
    })
    return { rows, service, normalElu }
  }))

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`)
    return i > 0 ? Number(process.argv[i + 1]) : fallback
  }
  const { normalElu, rows, service } = await Effect.runPromise(compare(arg("scale", 0.5), arg("seed", 1)))
  console.log(
    `calibrated on the normal phase: ${service.cpuMsPerRequest.toFixed(2)} ms of CPU per request, ` +
      `${service.cpuShare.toFixed(2)} of a core (utilization read ${normalElu.toFixed(2)})`
  )
  console.log("phase     outcome      real  simulated   gap")
  for (const r of rows) {
    console.log(
      `${r.phase.padEnd(9)} ${r.outcome.padEnd(11)} ${r.real.toFixed(2).padStart(5)}  ${
        r.simulated.toFixed(2).padStart(9)
      }  ${(r.simulated - r.real).toFixed(2).padStart(5)}`
    )
  }
  process.exit(0)
}
