import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, Scope, TestClock } from "effect"
import { InvalidOptionsError } from "../src/Errors.js"
import * as EventLoopDelay from "../src/EventLoopDelay.js"
import * as EventLoopUtilization from "../src/EventLoopUtilization.js"
import * as Metrics from "../src/internal/sheddingMetrics.js"
import * as Signals from "../src/internal/signals.js"
import * as QueueDelay from "../src/QueueDelay.js"

/** Keeps this thread busy for `ms` of wall time, so the event loop reads active. */
const spinFor = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // busy
  }
}

describe("signal arithmetic", () => {
  it("utilization over the ring: the oldest to the newest reading", () => {
    const ring = Signals.makeEluRing(3, { active: 0, idle: 0 })
    expect(Signals.eluOf(ring)).toBe(0)
    Signals.pushElu(ring, { active: 5, idle: 5 })
    expect(Signals.eluOf(ring)).toBe(0.5)
    Signals.pushElu(ring, { active: 15, idle: 5 })
    expect(Signals.eluOf(ring)).toBe(0.75)
    // the first reading leaves the ring: 5 → 25 active, 5 → 5 idle
    Signals.pushElu(ring, { active: 25, idle: 5 })
    expect(Signals.eluOf(ring)).toBe(1)
    Signals.pushElu(ring, { active: 25, idle: 25 })
    expect(Signals.eluOf(ring)).toBeCloseTo(10 / 30, 10)
  })

  it("mean delay: the mean interval less the resolution, never negative", () => {
    expect(Signals.meanDelayMillis({ count: 0, mean: Number.NaN }, 10)).toBe(0)
    expect(Signals.meanDelayMillis({ count: 3, mean: 9.5e6 }, 10)).toBe(0)
    expect(Signals.meanDelayMillis({ count: 3, mean: 35e6 }, 10)).toBe(25)
  })

  it("CoDel: the standing delay is the lowest wait of the last interval", () => {
    const codel = Signals.makeCoDel(100, 0)
    Signals.recordDelay(codel, 30, 10)
    Signals.recordDelay(codel, 8, 50)
    Signals.recordDelay(codel, 40, 90)
    // a burst within the interval is not a standing queue yet
    expect(Signals.standingDelay(codel, 99)).toBe(0)
    expect(Signals.standingDelay(codel, 100)).toBe(8)
    Signals.recordDelay(codel, 2, 150)
    expect(Signals.standingDelay(codel, 199)).toBe(8)
    expect(Signals.standingDelay(codel, 200)).toBe(2)
    // an interval with no request: the queue drained
    expect(Signals.standingDelay(codel, 300)).toBe(0)
    Signals.recordDelay(codel, 12, 310)
    expect(Signals.standingDelay(codel, 450)).toBe(12)
    expect(Signals.standingDelay(codel, 650)).toBe(0)
  })
})

describe("EventLoopUtilization", () => {
  it.effect("layerTest reports the value a test sets, clamped to [0, 1]", () =>
    Effect.gen(function*() {
      const elu = yield* EventLoopUtilization.EventLoopUtilization
      expect(yield* elu.current).toBe(0.4)
      yield* EventLoopUtilization.set(2)
      expect(elu.unsafeCurrent()).toBe(1)
      yield* EventLoopUtilization.set(Number.NaN)
      expect(yield* elu.current).toBe(0)
    }).pipe(Effect.provide(EventLoopUtilization.layerTest(0.4))))

  it.effect("the live sampler reads a busy loop within a few intervals, and stops with its scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(EventLoopUtilization.layer, scope)
      const elu = Context.get(context, EventLoopUtilization.EventLoopUtilization)
      expect(yield* elu.current).toBe(0)
      for (let i = 0; i < 5; i++) {
        // busy well beyond the idle waits a descheduled process shows between samples under CPU
        // hogs (5 ms of spinning read 0.499 there)
        spinFor(25)
        yield* TestClock.adjust(EventLoopUtilization.defaults.interval)
      }
      const busy = yield* elu.current
      expect(busy).toBeGreaterThan(0.5)
      expect((yield* Metric.value(Metrics.eventLoopUtilization)).value).toBe(busy)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 second")
      expect(yield* elu.current).toBe(busy)
    }))

  it.effect("rejects a window shorter than the interval, and bad durations", () =>
    Effect.gen(function*() {
      const build = (options: EventLoopUtilization.Options) =>
        Effect.flip(Effect.scoped(Layer.build(EventLoopUtilization.layerWith(options))))
      const short = yield* build({ interval: "20 millis", window: "10 millis" })
      expect(short).toBeInstanceOf(InvalidOptionsError)
      expect(short.option).toBe("window")
      expect((yield* build({ interval: -1 })).option).toBe("interval")
    }))
})

describe("EventLoopDelay", () => {
  it.effect("layerTest reports the value a test sets; negative reads 0", () =>
    Effect.gen(function*() {
      const delay = yield* EventLoopDelay.EventLoopDelay
      expect(yield* delay.current).toBe(3)
      yield* EventLoopDelay.set(-4)
      expect(delay.unsafeCurrent()).toBe(0)
    }).pipe(Effect.provide(EventLoopDelay.layerTest(3))))

  // Real time: a 150 ms stall of this thread must show as at least 20 ms of mean delay in the
  // window it falls in (more on a busy machine, never less).
  it.live("the live sampler sees the loop stall as soon as the stalled timer fires", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(EventLoopDelay.layer)
      const delay = Context.get(context, EventLoopDelay.EventLoopDelay)
      yield* Effect.sleep("30 millis")
      spinFor(150)
      yield* Effect.sleep("15 millis")
      expect(yield* delay.current).toBeGreaterThanOrEqual(20)
    }).pipe(Effect.scoped), 30_000)

  it.effect("rejects a fractional resolution and a window under the resolution", () =>
    Effect.gen(function*() {
      const build = (options: EventLoopDelay.Options) =>
        Effect.flip(Effect.scoped(Layer.build(EventLoopDelay.layerWith(options))))
      expect((yield* build({ resolution: 2.5 })).option).toBe("resolution")
      expect((yield* build({ resolution: 20, window: 10 })).option).toBe("window")
    }))
})

describe("QueueDelay", () => {
  it.effect("record: the wait from arrival to now feeds CoDel", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(1_000)
      const queue = yield* QueueDelay.QueueDelay
      yield* QueueDelay.record(990)
      yield* TestClock.adjust(50)
      yield* QueueDelay.record(1_030)
      expect(yield* queue.current).toBe(0)
      yield* TestClock.adjust(50)
      expect(yield* queue.current).toBe(10)
      yield* TestClock.adjust(200)
      expect(yield* queue.current).toBe(0)
    }).pipe(Effect.provide(QueueDelay.layer)))

  it.effect("rejects a bad interval", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(QueueDelay.layerWith({ interval: 0 })).pipe(Effect.scoped))
      expect(error.option).toBe("interval")
    }))
})
