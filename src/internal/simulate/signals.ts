/**
 * The overload signals of a simulated service, read the way the live layers read them and
 * computed with the library's own arithmetic (`internal/signals.ts`, `internal/cpu.ts`), from the
 * work the service's simulated event loop does:
 *
 * - event-loop utilization: a timer every 10 ms (itself work on the loop, so it runs late when the
 *   loop is backlogged) pushes the loop's cumulative busy time into the same ring the live
 *   sampler uses; the value is the busy share over the last 50 ms;
 * - event-loop delay: the same timer's lateness, averaged over windows of 100 ms, the larger of
 *   the last window and the current one;
 * - queue delay: CoDel's minimum over 100 ms of each request's wait between its arrival and the
 *   shedder's decision;
 * - CPU: the loop's CPU time per 250 ms against the quota (`cores`), smoothed with go-zero's β.
 */
import * as Duration from "effect/Duration"
import * as CpuUsage from "../../CpuUsage.js"
import * as EventLoopDelay from "../../EventLoopDelay.js"
import * as EventLoopUtilization from "../../EventLoopUtilization.js"
import * as QueueDelay from "../../QueueDelay.js"
import * as Cpu from "../cpu.js"
import type { Kind } from "../shedderSignal.js"
import * as Signals from "../signals.js"

const ELU_INTERVAL_MS = Duration.toMillis(EventLoopUtilization.defaults.interval)
const ELU_WINDOW_MS = Duration.toMillis(EventLoopUtilization.defaults.window)
const ELD_RESOLUTION_MS = Duration.toMillis(EventLoopDelay.defaults.resolution)
const ELD_WINDOW_MS = Duration.toMillis(EventLoopDelay.defaults.window)
const CODEL_INTERVAL_MS = Duration.toMillis(QueueDelay.defaults.interval)
const CPU_SAMPLE_MS = Duration.toMillis(CpuUsage.sampleInterval)

/** A signal as the simulated service shows it. */
export interface Probe {
  readonly kind: Kind
  /** how often the signal's timer fires on the loop, ms; 0 when it has none */
  readonly tickMillis: number
  /** the timer ran at `at` (it was due at `due`); `active` is the loop's cumulative busy time, ms */
  tick(at: number, due: number, active: number): void
  /** the loop started `cpuMs` of CPU work at `at` */
  work(at: number, cpuMs: number): void
  /** a request reaches the shedder at `at` after waiting `wait` ms since its arrival */
  arrived(wait: number, at: number): void
  /** the value the shedder reads at `at` */
  read(at: number): number
}

class Utilization implements Probe {
  readonly kind = "event-loop-utilization" as const
  readonly tickMillis = ELU_INTERVAL_MS
  private readonly ring = Signals.makeEluRing(Math.round(ELU_WINDOW_MS / ELU_INTERVAL_MS) + 1, { active: 0, idle: 0 })
  private value = 0
  tick(at: number, _due: number, active: number): void {
    Signals.pushElu(this.ring, { active, idle: at - active })
    this.value = Signals.eluOf(this.ring)
  }
  work(): void {}
  arrived(): void {}
  read(): number {
    return this.value
  }
}

class Delay implements Probe {
  readonly kind = "event-loop-delay" as const
  readonly tickMillis = ELD_RESOLUTION_MS
  private lastFire = 0
  private count = 0
  /** sum of the intervals between firings, ns, as the histogram records them */
  private sum = 0
  private last = 0
  private windowEnd = ELD_WINDOW_MS
  private current(): number {
    return Signals.meanDelayMillis({ count: this.count, mean: this.sum / this.count }, ELD_RESOLUTION_MS)
  }
  tick(at: number): void {
    // the sampler's own timer closes a window every 100 ms; it runs as late as this one
    if (at >= this.windowEnd) {
      this.last = this.current()
      this.count = 0
      this.sum = 0
      this.windowEnd = at + ELD_WINDOW_MS
    }
    this.count++
    this.sum += (at - this.lastFire) * 1e6
    this.lastFire = at
  }
  work(): void {}
  arrived(): void {}
  read(): number {
    const now = this.current()
    return now > this.last ? now : this.last
  }
}

class Queue implements Probe {
  readonly kind = "queue-delay" as const
  readonly tickMillis = 0
  private readonly codel = Signals.makeCoDel(CODEL_INTERVAL_MS, 0)
  tick(): void {}
  work(): void {}
  arrived(wait: number, at: number): void {
    Signals.recordDelay(this.codel, wait, at)
  }
  read(at: number): number {
    return Signals.standingDelay(this.codel, at)
  }
}

class CpuShare implements Probe {
  readonly kind = "cpu" as const
  readonly tickMillis = 0
  private value = 0
  private pending = 0
  private next = CPU_SAMPLE_MS
  constructor(private readonly cores: number) {}
  private advance(at: number): void {
    while (at >= this.next) {
      const usage = Math.min(1000, (this.pending * 1000) / (CPU_SAMPLE_MS * this.cores))
      this.value = Cpu.smooth(this.value, usage)
      this.pending = 0
      this.next += CPU_SAMPLE_MS
    }
  }
  tick(): void {}
  work(at: number, cpuMs: number): void {
    this.advance(at)
    this.pending += cpuMs
  }
  arrived(): void {}
  read(at: number): number {
    this.advance(at)
    return this.value
  }
}

/** The probe of `kind`; `cores` is the CPU quota the CPU signal divides by. */
export const make = (kind: Kind, cores: number): Probe => {
  switch (kind) {
    case "event-loop-utilization":
      return new Utilization()
    case "event-loop-delay":
      return new Delay()
    case "queue-delay":
      return new Queue()
    case "cpu":
      return new CpuShare(cores)
  }
}
