/**
 * What a real run of the demo tells the simulator about the machine it ran on, worked out from
 * what was measured during the run — nothing here is a guess about the host:
 *
 * - the share of a core the API got, step by step: its main thread's time on the CPU against its
 *   time waiting for one (Linux's `/proc/<pid>/task/<pid>/schedstat`), so a starved process is
 *   simulated as starved, at the moments it was;
 * - what its event loop spends per HTTP exchange (an admitted request, a downstream try) and per
 *   rejection: a least-squares fit of the main thread's CPU time in each phase to its counts.
 */
import * as Fs from "node:fs"

/** One reading of a thread's scheduler statistics, ms since the run's start. */
export interface SchedSample {
  readonly t: number
  /** cumulative time on a CPU, ms */
  readonly runMs: number
  /** cumulative time runnable but waiting for a CPU, ms */
  readonly waitMs: number
}

/** The main thread's scheduler statistics of process `pid`; undefined where Linux does not provide them. */
export const readSchedstat = (pid: number): { readonly runMs: number; readonly waitMs: number } | undefined => {
  try {
    const [run, wait] = Fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(" ").map(Number)
    return Number.isFinite(run) && Number.isFinite(wait) ? { runMs: run / 1e6, waitMs: wait / 1e6 } : undefined
  } catch {
    return undefined
  }
}

/** A cumulative counter of `samples` at time `t`, linearly interpolated (clamped at both ends). */
const at = (samples: ReadonlyArray<SchedSample>, t: number, field: "runMs" | "waitMs"): number => {
  if (t <= samples[0].t) return samples[0][field]
  for (let i = 1; i < samples.length; i++) {
    const b = samples[i]
    if (t <= b.t) {
      const a = samples[i - 1]
      return a[field] + ((b[field] - a[field]) * (t - a.t)) / Math.max(1e-9, b.t - a.t)
    }
  }
  return samples[samples.length - 1][field]
}

/** Below this much runnable time in a step, its share is carried over from the step before. */
const MIN_RUNNABLE_MS = 2

/**
 * The share of a core the thread got while it was runnable, per step of `stepMs` over
 * `[0, endMs)`: time on a CPU / (time on a CPU + time waiting for one). A step in which it was
 * hardly runnable says little, and takes the previous step's share.
 */
export const shareTrace = (
  samples: ReadonlyArray<SchedSample>,
  stepMs: number,
  endMs: number
): ReadonlyArray<number> => {
  const shares: Array<number> = []
  let last = 1
  for (let t = 0; t < endMs; t += stepMs) {
    const run = at(samples, t + stepMs, "runMs") - at(samples, t, "runMs")
    const wait = at(samples, t + stepMs, "waitMs") - at(samples, t, "waitMs")
    if (run + wait >= MIN_RUNNABLE_MS) last = Math.min(1, Math.max(0.02, run / (run + wait)))
    shares.push(Math.round(last * 1000) / 1000)
  }
  return shares
}

/** What the API did in one phase, from the driver's records and the downstream's count. */
export interface PhaseWork {
  /** requests the server's stages let through to the handler */
  readonly admitted: number
  /** requests a server stage answered (max connections, breaker, shedder, rate limit) */
  readonly rejected: number
  /** calls the downstream answered */
  readonly tries: number
  /** the API's main-thread CPU time in the phase, ms */
  readonly cpuMs: number
}

export interface Costs {
  readonly cpuMsPerRequest: number
  readonly cpuMsPerTry: number
  readonly cpuMsPerRejection: number
}

/**
 * The per-unit CPU costs that best explain each phase's CPU time, by least squares. Two units:
 * an HTTP exchange — the server's handling of an admitted request, or the client's of one try
 * (both go through the same platform layers, and within one run the two cannot be told apart:
 * nearly every admitted request makes one try) — and a rejection by a server stage. A cost that
 * comes out negative is set to 0 and the other refitted.
 */
export const fitCosts = (phases: ReadonlyArray<PhaseWork>): Costs => {
  const xs = phases.map((p) => [p.admitted + p.tries, p.rejected] as const)
  const ys = phases.map((p) => p.cpuMs)
  const dot = (f: (i: number) => number) => xs.reduce((s, _, i) => s + f(i), 0)
  const aa = dot((i) => xs[i][0] * xs[i][0])
  const ab = dot((i) => xs[i][0] * xs[i][1])
  const bb = dot((i) => xs[i][1] * xs[i][1])
  const ay = dot((i) => xs[i][0] * ys[i])
  const by = dot((i) => xs[i][1] * ys[i])
  const det = aa * bb - ab * ab
  let exchange = det > 1e-9 ? (ay * bb - by * ab) / det : 0
  let rejection = det > 1e-9 ? (by * aa - ay * ab) / det : 0
  if (exchange < 0 || det <= 1e-9) {
    exchange = 0
    rejection = bb > 0 ? Math.max(0, by / bb) : 0
  } else if (rejection < 0) {
    rejection = 0
    exchange = aa > 0 ? ay / aa : 0
  }
  return { cpuMsPerRequest: exchange, cpuMsPerTry: exchange, cpuMsPerRejection: rejection }
}
