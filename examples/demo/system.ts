/**
 * The system under test, each part in its own process: the flaky downstream
 * (`downstream-process.ts`) and the user API (`api-process.ts`), both started from here, the load
 * driver's process. Their breaker states and load-shedder readings arrive every 100 ms; their log
 * lines are handed to `onLog`.
 *
 * Only the API is under test. The load driver and the downstream are the test's instruments: the
 * offered load and the downstream's latency must be what the phase says, even on a busy machine.
 * So when the OS allows it they run at a raised priority, and the API at the normal one, where it
 * competes with whatever else the machine runs.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { setPriority } from "node:os"
import type { Behaviour } from "../shared/flakyServer.js"
import { cpuMs, spawnChild } from "./ipc.js"
import type { LogLine } from "./logging.js"
import type { BreakerState, OverloadSample } from "./model.js"
import type { Downstream } from "./run.js"

export interface Breaker {
  readonly name: string
  readonly state: BreakerState
  readonly dropRatio?: number | undefined
}

export interface System {
  readonly downstream: Downstream
  readonly apiPort: number
  /** The rate-limit store the API uses, e.g. "memory". */
  readonly store: string
  /** The API's protections, in words. */
  readonly description: string
  /** The latest breaker states the API reported. */
  readonly breakers: Effect.Effect<ReadonlyArray<Breaker>>
  /** The latest reading of the API's load shedder, when it has one. */
  readonly overload: Effect.Effect<Omit<OverloadSample, "t"> | undefined>
  /** CPU time used so far by each process (`driver`, `api`, `downstream`), in milliseconds. */
  readonly cpu: Effect.Effect<Readonly<Record<string, number>>>
  /** Calls the downstream has answered so far (every try of the API's client that reached it). */
  readonly served: Effect.Effect<number>
  readonly pids: { readonly downstream: number | undefined; readonly api: number | undefined }
  /** Which process runs at which priority, in words. */
  readonly priority: string
}

/** The nice value of the load driver and the downstream, when the OS allows it. */
const INSTRUMENT_PRIORITY = -10

/** Raises this process's priority (children inherit it); false when the OS does not allow it. */
const raise = (): boolean => {
  try {
    setPriority(INSTRUMENT_PRIORITY)
    return true
  } catch {
    return false
  }
}

/** Puts a child back to the normal priority; false when that fails. */
const normal = (pid: number | undefined): boolean => {
  try {
    if (pid !== undefined) setPriority(pid, 0)
    return pid !== undefined
  } catch {
    return false
  }
}

/** Starts both processes (they compile at the same time) and waits until the API listens. */
export const start = (
  options: { readonly redisUrl?: string | undefined; readonly onLog: (line: LogLine) => void }
): Effect.Effect<System, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const raised = raise()
    const downstream = yield* spawnChild("examples/demo/downstream-process.ts")
    const api = yield* spawnChild("examples/demo/api-process.ts")
    const priority = !raised
      ? "every process at the normal priority (raising the instruments' was not permitted)"
      : normal(api.pid)
      ? `load driver and downstream at nice ${INSTRUMENT_PRIORITY} (the instruments), the user API at 0`
      : `every process at nice ${INSTRUMENT_PRIORITY} (the API's could not be reset)`
    let breakers: ReadonlyArray<Breaker> = []
    let overload: Omit<OverloadSample, "t"> | undefined
    const cpu = { driver: 0, api: 0, downstream: 0 }
    let served = 0
    for (const [name, child] of [["downstream", downstream], ["api", api]] as const) {
      child.onMessage((m) => {
        if (m.type === "log") options.onLog(m as unknown as LogLine)
        if (m.type === "sample" && typeof m.cpuMs === "number") cpu[name] = m.cpuMs
        if (m.type === "sample" && typeof m.served === "number") served = m.served
      })
    }
    api.onMessage((m) => {
      if (m.type !== "sample") return
      breakers = m.breakers as ReadonlyArray<Breaker>
      overload = m.overload as Omit<OverloadSample, "t"> | undefined
    })
    const url = String((yield* downstream.next("ready")).url)
    yield* api.next("waiting")
    yield* api.send({ type: "start", downstreamUrl: url, ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}) })
    const ready = yield* api.next("ready")
    return {
      downstream: {
        url,
        set: (behaviour: Partial<Behaviour>) => Effect.asVoid(downstream.request({ type: "set", behaviour }))
      },
      apiPort: Number(ready.port),
      store: String(ready.store),
      description: String(ready.description),
      breakers: Effect.sync(() => breakers),
      overload: Effect.sync(() => overload),
      cpu: Effect.sync(() => ({ ...cpu, driver: cpuMs() })),
      served: Effect.sync(() => served),
      pids: { downstream: downstream.pid, api: api.pid },
      priority
    } satisfies System
  })
