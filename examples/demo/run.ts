/**
 * Runs the demo's phases against a system under test: switches the downstream's behaviour, drives
 * the load, samples breaker states, shows live progress, and builds the report data.
 */
import { Clock, Effect, Fiber, Random } from "effect"
import type { Behaviour } from "../shared/flakyServer.js"
import * as Load from "./load.js"
import type { BreakerSample, BreakerState, OverloadSample, PhaseWindow, RequestRecord } from "./model.js"
import type { Phase, User, Warmup } from "./phases.js"
import type { ReportData } from "./report.js"
import { emptyTally, percentile, perSecond, summarize } from "./stats.js"
import type { Tally } from "./stats.js"
import type { View } from "./terminal.js"

export type { Phase, User } from "./phases.js"

/** The downstream as the run sees it: the phases switch its behaviour. */
export interface Downstream {
  readonly url: string
  readonly set: (behaviour: Partial<Behaviour>) => Effect.Effect<void, Error>
}

export interface SystemUnderTest {
  readonly apiPort: number
  readonly downstream: Downstream
  /** The current state of every breaker worth charting. */
  readonly breakers: Effect.Effect<
    ReadonlyArray<{ readonly name: string; readonly state: BreakerState; readonly dropRatio?: number | undefined }>
  >
  readonly facts: Readonly<Record<string, string>>
  /** The server's load shedder now, when it has one. */
  readonly overload?: Effect.Effect<Omit<OverloadSample, "t"> | undefined>
  /** CPU time each process has used so far, in milliseconds, by process name. */
  readonly cpu?: Effect.Effect<Readonly<Record<string, number>>>
}

export interface RunOptions {
  readonly phases: ReadonlyArray<Phase>
  readonly users: ReadonlyArray<User>
  readonly maxInFlight: number
  readonly requestTimeoutMs: number
  /** Traffic from a separate user before the first phase (connections, JIT), not recorded. */
  readonly warmup?: Warmup
  readonly view: View
  readonly title: string
  /** Log lines collected while the run goes on (epoch milliseconds); they end up in the report. */
  readonly events?: ReadonlyArray<{ readonly at: number; readonly level: string; readonly message: string }>
}

export interface RunResult {
  readonly report: ReportData
  readonly records: ReadonlyArray<RequestRecord>
  /** how long the warm-up's requests took, then the wait for the API's shedder to cool off, ms */
  readonly warmup?: { readonly sendingMs: number; readonly settlingMs: number }
}

/** After the warm-up, the API's shedder must drop nothing for this long before the first phase. */
const SETTLE_MS = 1000
/** … but the first phase starts after this long whatever the shedder does. */
const SETTLE_MAX_MS = 5000

const cpuSince = (start: Readonly<Record<string, number>>, end: Readonly<Record<string, number>>) =>
  Object.fromEntries(Object.entries(end).map(([k, v]) => [k, Math.round(v - (start[k] ?? 0))]))

/**
 * Runs every phase in order. The result is also produced when the run is interrupted (SIGINT):
 * `onResult` receives the data collected so far, marked as interrupted.
 */
export const run = (
  sut: SystemUnderTest,
  options: RunOptions,
  onResult: (r: RunResult) => Effect.Effect<void>
): Effect.Effect<RunResult, Error> =>
  Effect.scoped(Effect.gen(function*() {
    let t0 = yield* Clock.currentTimeMillis
    const now = Effect.map(Clock.currentTimeMillis, (t) => t - t0)
    const records: Array<RequestRecord> = []
    const samples: Array<BreakerSample> = []
    const windows: Array<PhaseWindow> = []
    const overload: Array<OverloadSample> = []
    // one tally per phase: the live line shows it and the summary is made from it
    const tallies = new Map<string, Tally>()
    const record = (r: RequestRecord) => {
      records.push(r)
      const tally = tallies.get(r.phase)
      if (tally !== undefined) tally.counts[r.outcome]++
    }
    const sentIn = (phase: string) => () => {
      const tally = tallies.get(phase)
      if (tally !== undefined) tally.sent++
    }
    const driver = yield* Load.make({ maxSockets: options.maxInFlight })

    const totalWeight = options.users.reduce((s, u) => s + u.weight, 0)
    const next = Effect.map(Random.nextRange(0, totalWeight), (x) => {
      let acc = 0
      let user = options.users[options.users.length - 1]
      for (const u of options.users) {
        acc += u.weight
        if (x < acc) {
          user = u
          break
        }
      }
      const id = Math.floor(x * 1000) % 100
      return {
        user: user.id,
        path: `/api/users/${id}`,
        headers: { "x-user-id": user.id, "x-user-tier": user.tier }
      } satisfies Load.Target
    })

    let latest: ReadonlyArray<
      { readonly name: string; readonly state: BreakerState; readonly dropRatio?: number | undefined }
    > = []
    const sample = Effect.gen(function*() {
      const t = yield* now
      latest = yield* sut.breakers
      const shedder = sut.overload === undefined ? undefined : yield* sut.overload
      if (shedder !== undefined) overload.push({ t, ...shedder })
      for (const b of latest) {
        samples.push(
          b.dropRatio === undefined || !Number.isFinite(b.dropRatio)
            ? { t, name: b.name, state: b.state }
            : { t, name: b.name, state: b.state, dropRatio: Math.round(b.dropRatio * 1000) / 1000 }
        )
      }
    })

    const lastSecond = (t: number) => {
      const lat: Array<number> = []
      for (let i = records.length - 1; i >= 0 && records[i].sentAt >= t - 3000; i--) {
        const r = records[i]
        if (r.sentAt >= t - 1000 && r.status !== 0) lat.push(r.latencyMs)
      }
      lat.sort((a, b) => a - b)
      const r1 = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : null)
      return { p50: r1(percentile(lat, 0.5)), p99: r1(percentile(lat, 0.99)) }
    }

    const snapshot = (w: PhaseWindow, index: number, t: number) => {
      const tally = tallies.get(w.name) ?? emptyTally()
      const answered = Object.values(tally.counts).reduce((a, b) => a + b, 0) - tally.counts.skipped
      return {
        phase: w,
        index,
        phaseCount: options.phases.length,
        now: t,
        sent: tally.sent,
        counts: tally.counts,
        inFlight: tally.sent - answered,
        ...lastSecond(t),
        breakers: latest
      }
    }

    const build = (interrupted: boolean) =>
      Effect.gen(function*() {
        const totalMs = windows.length > 0 ? windows[windows.length - 1].endMs : yield* now
        const report: ReportData = {
          title: options.title,
          generatedAt: new Date(t0).toISOString(),
          totalMs,
          facts: warmedUp === undefined ? sut.facts : { ...sut.facts, "warm-up": warmedUp },
          phases: windows,
          seconds: perSecond(records, windows, totalMs),
          breakers: samples,
          summary: summarize(records, windows, samples, tallies),
          overload,
          events: (options.events ?? []).filter((e) => e.at >= t0).map((e) => ({
            t: e.at - t0,
            level: e.level,
            message: e.message
          })),
          ...(interrupted ? { interrupted } : {})
        }
        return (warmupTimes === undefined
          ? { report, records }
          : { report, records, warmup: warmupTimes }) satisfies RunResult
      })

    let warmedUp: string | undefined
    let warmupTimes: RunResult["warmup"]
    // a cold process reads busy and sheds much of the warm-up: the phases start once that is over
    const settle = Effect.gen(function*() {
      if (sut.overload === undefined) return
      const start = yield* Clock.currentTimeMillis
      let dropped = (yield* sut.overload)?.dropped
      let calmSince = start
      for (;;) {
        const t = yield* Clock.currentTimeMillis
        if (t - calmSince >= SETTLE_MS || t - start >= SETTLE_MAX_MS) return
        yield* Effect.sleep("50 millis")
        const now = (yield* sut.overload)?.dropped
        if (now !== dropped) {
          dropped = now
          calmSince = yield* Clock.currentTimeMillis
        }
      }
    })
    const warmup = options.warmup === undefined ? Effect.void : Effect.gen(function*() {
      const w = options.warmup!
      const start = yield* Clock.currentTimeMillis
      const answered = yield* driver.warmup({
        port: sut.apiPort,
        requests: w.requests,
        concurrency: w.concurrency,
        maxMs: 120_000,
        requestTimeoutMs: options.requestTimeoutMs,
        target: (i) => {
          const user = w.users[i % w.users.length]
          return {
            user: user.id,
            path: `/api/users/${i % 100}`,
            headers: { "x-user-id": user.id, "x-user-tier": user.tier }
          }
        }
      })
      const sent = yield* Clock.currentTimeMillis
      yield* settle
      const settled = yield* Clock.currentTimeMillis
      warmupTimes = { sendingMs: sent - start, settlingMs: settled - sent }
      warmedUp =
        `${answered} of ${w.requests} requests answered, ${w.concurrency} at a time, from users of their own, in ${
          ((sent - start) / 1000).toFixed(1)
        } s before the first phase, then ${
          ((settled - sent) / 1000).toFixed(1)
        } s until the API's shedder had dropped nothing for a second; not recorded`
      options.view.log(`warm-up     ${warmedUp}\n`)
    })

    const body = Effect.gen(function*() {
      yield* warmup
      t0 = yield* Clock.currentTimeMillis
      yield* sample
      const sampler = yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep("100 millis"), sample)))
      for (let i = 0; i < options.phases.length; i++) {
        const p = options.phases[i]
        yield* sut.downstream.set({ ...p.downstream })
        const startMs = yield* now
        const cpuAtStart = sut.cpu === undefined ? undefined : yield* sut.cpu
        const w: PhaseWindow = { ...p, startMs, endMs: startMs + p.durationMs }
        windows.push(w)
        tallies.set(p.name, emptyTally())
        const ticker = yield* Effect.forkScoped(Effect.forever(
          Effect.zipRight(
            Effect.sleep("200 millis"),
            Effect.flatMap(now, (t) => Effect.sync(() => options.view.update(snapshot(w, i, t))))
          )
        ))
        yield* driver.run({
          port: sut.apiPort,
          phase: p.name,
          rps: p.rps,
          durationMs: p.durationMs,
          maxInFlight: options.maxInFlight,
          requestTimeoutMs: options.requestTimeoutMs,
          next,
          now,
          record,
          sent: sentIn(p.name)
        })
        yield* Fiber.interrupt(ticker)
        const endMs = yield* now
        const cpuMs = cpuAtStart === undefined || sut.cpu === undefined
          ? undefined
          : cpuSince(cpuAtStart, yield* sut.cpu)
        windows[windows.length - 1] = cpuMs === undefined ? { ...w, endMs } : { ...w, endMs, cpuMs }
        options.view.endPhase(snapshot(windows[windows.length - 1], i, endMs))
      }
      yield* driver.drain("3 seconds")
      yield* sample
      yield* Fiber.interrupt(sampler)
      return yield* build(false)
    })

    return yield* body.pipe(
      Effect.tap(onResult),
      Effect.onInterrupt(() =>
        Effect.gen(function*() {
          if (windows.length > 0) {
            const t = yield* now
            windows[windows.length - 1] = { ...windows[windows.length - 1], endMs: Math.max(t, 1) }
          }
          yield* Effect.flatMap(build(true), onResult)
        })
      )
    )
  }))
