import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, TestClock } from "effect"
import { Worker } from "node:worker_threads"
import * as CpuUsage from "../src/CpuUsage.js"
import { InvalidOptionsError } from "../src/Errors.js"

const build = (layer: Layer.Layer<CpuUsage.CpuUsage, InvalidOptionsError>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, CpuUsage.CpuUsage))

const spin = Effect.acquireRelease(
  Effect.sync(() => new Worker("for (;;) {}", { eval: true })),
  (worker) => Effect.promise(() => worker.terminate())
)

/** Keeps this thread busy for `ms` of wall time, so the event loop reads active. */
const spinFor = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // busy
  }
}

describe("CpuUsage", () => {
  it.effect("layerTest reports the value a test sets, clamped to [0, 1000]", () =>
    Effect.gen(function*() {
      const cpu = yield* CpuUsage.CpuUsage
      expect(yield* cpu.current).toBe(300)
      yield* CpuUsage.set(950)
      expect(yield* cpu.current).toBe(950)
      expect(cpu.unsafeCurrent?.()).toBe(950)
      yield* CpuUsage.set(4000)
      expect(yield* cpu.current).toBe(1000)
      yield* CpuUsage.set(-3)
      expect(yield* cpu.current).toBe(0)
    }).pipe(Effect.provide(CpuUsage.layerTest(300))))

  it.effect("two test layers do not share their value", () =>
    Effect.gen(function*() {
      const a = yield* Effect.provide(CpuUsage.set(10).pipe(Effect.zipRight(CpuUsage.CpuUsage)), CpuUsage.layerTest(0))
      const b = yield* Effect.provide(CpuUsage.CpuUsage, CpuUsage.layerTest(0))
      expect(yield* a.current).toBe(10)
      expect(yield* b.current).toBe(0)
    }))

  it.effect("rejects bad options", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(build(CpuUsage.layerWith({ source: "process", cores: 0 }))))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe("cores")
      const source = yield* Effect.flip(Effect.scoped(build(CpuUsage.layerWith({ source: "proc" as "process" }))))
      expect(source.option).toBe("source")
    }))

  it.effect("the live sampler's first sample comes one interval after its first reading", () =>
    Effect.gen(function*() {
      const cpu = yield* build(CpuUsage.layerWith({ source: "event-loop" }))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      expect(yield* cpu.current).toBe(0)
      spinFor(5)
      yield* TestClock.adjust(CpuUsage.sampleInterval)
      expect(yield* cpu.current).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  // Real time on this machine: a busy loop in a worker thread must show up within a few seconds.
  it.live("the live sampler sees a busy worker thread", () =>
    Effect.gen(function*() {
      const auto = yield* build(CpuUsage.layerWith())
      const own = yield* build(CpuUsage.layerWith({ source: "process", cores: 1 }))
      yield* Effect.sleep("1500 millis")
      const idle = yield* own.current
      yield* spin
      let busy = idle
      // the container-wide reading includes this process's busy core, so it rises too
      let container = yield* auto.current
      // What the process really got, from the OS, over the last two seconds: on a machine shared
      // with busy neighbours a spinning thread may get much less than a core, and the sampler
      // must report what it got.
      const marks: Array<{ readonly at: number; readonly cpu: number }> = []
      const mark = () => {
        const used = process.cpuUsage()
        marks.push({ at: performance.now(), cpu: used.user + used.system })
      }
      const got = () => {
        const last = marks[marks.length - 1]
        const from = marks.find((m) => last.at - m.at <= 2_000) ?? marks[0]
        return last.at === from.at ? 0 : (last.cpu - from.cpu) / (last.at - from.at)
      }
      mark()
      const expected = () => Math.min(idle + 150, idle + 0.5 * (got() - idle))
      for (let i = 0; i < 40 && ((busy < idle + 150 && (i < 12 || busy < expected())) || container < 100); i++) {
        yield* Effect.sleep("250 millis")
        busy = yield* own.current
        container = yield* auto.current
        mark()
      }
      expect(got(), "the spinning thread got some CPU").toBeGreaterThan(idle + 20)
      expect(busy).toBeGreaterThanOrEqual(expected())
      expect(container).toBeGreaterThanOrEqual(100)
      expect(container).toBeLessThanOrEqual(1000)
    }).pipe(Effect.scoped), 30_000)
})
