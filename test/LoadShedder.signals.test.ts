import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Metric, TestClock } from "effect"
import * as CpuUsage from "../src/CpuUsage.js"
import { InvalidOptionsError, OverloadedError } from "../src/Errors.js"
import * as EventLoopDelay from "../src/EventLoopDelay.js"
import * as EventLoopUtilization from "../src/EventLoopUtilization.js"
import * as Shedder from "../src/internal/shedder.js"
import * as Metrics from "../src/internal/sheddingMetrics.js"
import * as LoadShedder from "../src/LoadShedder.js"
import * as QueueDelay from "../src/QueueDelay.js"
import type * as ResilienceMode from "../src/ResilienceMode.js"

const withMode = (mode: ResilienceMode.ResilienceMode) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_MODE", mode]])))

const elu = (initial: number) => Effect.provide(EventLoopUtilization.layerTest(initial))

/** `n` admissions of `priority` held in flight. */
const hold = (shedder: LoadShedder.LoadShedder, n: number, priority?: LoadShedder.Priority) =>
  Effect.all(Array.from({ length: n }, () => shedder.admit(priority)))

const isShed = <A>(effect: Effect.Effect<A, OverloadedError>) => Effect.map(Effect.exit(effect), Exit.isFailure)

// From cold the window is empty: maxPass 1, minRt 1000 ms, so with the default 50 ms allowance and
// 100 ms buckets the flight limit is 1 · (1000 + 50) / 100 = 10.5 requests.
const coldLimit = 10

describe("LoadShedder on event-loop utilization (the default)", () => {
  it.scoped("protects from cold: no warm-up, the flight limit holds as soon as the loop is busy", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "cold" })
      const held = yield* hold(shedder, coldLimit + 1)
      expect(held).toHaveLength(coldLimit + 1)
      const exit = yield* Effect.exit(shedder.allow)
      expect(exit).toStrictEqual(Exit.fail(new OverloadedError({ shedder: "cold", reason: "event-loop-utilization" })))
      const stats = yield* shedder.stats
      expect(stats).toMatchObject({ signal: "event-loop-utilization", value: 1, threshold: 0.9, hot: true })
      expect(stats.maxFlight).toBeCloseTo(10.5, 10)
    }).pipe(elu(1), withMode("pro")))

  it.scoped("a loop with spare time admits however many are in flight", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "spare" })
      yield* hold(shedder, 100)
      expect(yield* isShed(shedder.allow)).toBe(false)
      yield* EventLoopUtilization.set(0.89)
      expect(yield* isShed(shedder.allow)).toBe(false)
      yield* EventLoopUtilization.set(0.9)
      expect(yield* isShed(shedder.allow)).toBe(true)
    }).pipe(elu(0.3), withMode("pro")))

  it.scoped("compares the in-flight count itself: a burst read in one loop turn is cut at the limit", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "burst" })
      // no request has completed: go-zero's moving average is still 0, the count is not
      const results = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.exit(shedder.allow))
      expect(results.filter(Exit.isSuccess)).toHaveLength(coldLimit + 1)
      expect((yield* shedder.stats).avgFlying).toBe(0)
    }).pipe(elu(1), withMode("pro")))

  it.scoped("the allowance sizes the limit: maxPass · (minRt + allowance) per bucket", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({
        name: "sized",
        signal: LoadShedder.eventLoopUtilization({ allowance: "40 millis" })
      })
      // five buckets of 20 requests of 10 ms: maxFlight = 20 · (10 + 40) / 100 = 10
      for (let bucket = 0; bucket < 5; bucket++) {
        const tickets = yield* hold(shedder, 20)
        yield* TestClock.adjust(10)
        yield* Effect.forEach(tickets, (t) => t.pass, { discard: true })
        yield* TestClock.adjust(90)
      }
      const stats = yield* shedder.stats
      expect(stats.maxPass).toBe(20)
      expect(stats.maxFlight).toBe(10)
      yield* EventLoopUtilization.set(1)
      yield* hold(shedder, 11)
      expect(yield* isShed(shedder.allow)).toBe(true)
    }).pipe(elu(0), withMode("pro")))

  it.scoped("maxPass averages half a second: a batch finishing in one bucket does not raise the limit", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "batch" })
      const tickets = yield* hold(shedder, 50)
      yield* TestClock.adjust(20)
      yield* Effect.forEach(tickets, (t) => t.pass, { discard: true })
      yield* TestClock.adjust(80)
      // 50 passes in one bucket, none in the four before it: 10 per bucket over the span
      expect((yield* shedder.stats).maxPass).toBe(10)
    }).pipe(elu(0), withMode("pro")))

  it.scoped("stays hot for 1 s after the loop was last saturated, then cools off", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "cool" })
      yield* hold(shedder, coldLimit + 1)
      expect(yield* isShed(shedder.allow)).toBe(true)
      yield* EventLoopUtilization.set(0.2)
      yield* TestClock.adjust("999 millis")
      expect(yield* isShed(shedder.allow)).toBe(true)
      expect((yield* shedder.stats).hot).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* isShed(shedder.allow)).toBe(false)
      expect((yield* shedder.stats).hot).toBe(false)
    }).pipe(elu(1), withMode("pro")))

  it.scoped("tiers: sheddable first (half the limit), critical last (twice the limit)", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "tiers" })
      // 6 in flight: over half the limit of 10.5
      yield* hold(shedder, 6)
      expect(yield* isShed(shedder.admit("sheddable"))).toBe(true)
      expect(yield* isShed(shedder.admit("standard"))).toBe(false)
      // 11 in flight: over the limit
      yield* hold(shedder, 4)
      expect(yield* isShed(shedder.admit("standard"))).toBe(true)
      expect(yield* isShed(shedder.admit())).toBe(true)
      expect(yield* isShed(shedder.admit("critical"))).toBe(false)
      // 22 in flight: over twice the limit
      yield* hold(shedder, 10, "critical")
      expect(yield* isShed(shedder.admit("critical"))).toBe(true)
      const stats = yield* shedder.stats
      expect(stats.droppedByPriority).toStrictEqual({ sheddable: 1, standard: 2, critical: 1 })
      expect(stats.dropped).toBe(4)
    }).pipe(elu(1), withMode("pro")))

  it.scoped("critical requests are not shed under the priority threshold (0.95)", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "critical" })
      yield* hold(shedder, 30, "critical")
      expect(yield* isShed(shedder.admit("critical"))).toBe(false)
      expect(yield* isShed(shedder.admit("standard"))).toBe(true)
      yield* EventLoopUtilization.set(0.95)
      expect(yield* isShed(shedder.admit("critical"))).toBe(true)
      expect((yield* shedder.stats).priorityThreshold).toBe(0.95)
    }).pipe(elu(0.92), withMode("pro")))

  it.scoped("makePriority admits as critical unless told otherwise", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.makePriority({ name: "checkout" })
      yield* hold(shedder, 15)
      expect(yield* isShed(shedder.allow)).toBe(false)
      expect(yield* isShed(shedder.admit("standard"))).toBe(true)
    }).pipe(elu(1), withMode("pro")))

  it.scoped("counts drops per tier in resilience_shed_requests_total{name,priority}", () =>
    Effect.gen(function*() {
      const name = "tier-metrics"
      const sheddable = Metrics.shedRequestsOf(name, "sheddable")
      const critical = Metrics.shedRequestsOf(name, "critical")
      const before = [(yield* Metric.value(sheddable)).count, (yield* Metric.value(critical)).count]
      const shedder = yield* LoadShedder.make({ name })
      yield* hold(shedder, 22, "critical")
      yield* Effect.exit(shedder.admit("sheddable"))
      yield* Effect.exit(shedder.admit("sheddable"))
      yield* Effect.exit(shedder.admit("critical"))
      expect((yield* Metric.value(sheddable)).count - before[0]).toBe(2)
      expect((yield* Metric.value(critical)).count - before[1]).toBe(1)
    }).pipe(elu(1), withMode("pro")))

  for (const mode of ["dev", "test", "rt", "pre"] as const) {
    it.scoped(`admits every tier in mode ${mode}`, () =>
      Effect.gen(function*() {
        const shedder = yield* LoadShedder.make({ name: "off" })
        yield* hold(shedder, 50, "sheddable")
        expect(yield* isShed(shedder.admit("sheddable"))).toBe(false)
        expect((yield* shedder.stats).enabled).toBe(false)
      }).pipe(elu(1), withMode(mode)))
  }
})

describe("LoadShedder on event-loop delay and queue delay", () => {
  it.scoped("event-loop delay: hot at the threshold, the limit shrinks by threshold / delay", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "delay", signal: LoadShedder.eventLoopDelay() })
      yield* hold(shedder, 6)
      expect(yield* isShed(shedder.allow)).toBe(false) // 24 ms: under the 25 ms threshold
      yield* EventLoopDelay.set(50) // factor 0.5: limit 5.1
      const exit = yield* Effect.exit(shedder.allow)
      expect(exit).toStrictEqual(Exit.fail(new OverloadedError({ shedder: "delay", reason: "event-loop-delay" })))
      expect((yield* shedder.stats).overloadFactor).toBe(0.5)
      expect((yield* shedder.stats).priorityThreshold).toBe(50)
    }).pipe(Effect.provide(EventLoopDelay.layerTest(24)), withMode("pro")))

  it.scoped("queue delay: the shedder records each request's wait from its arrival time", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "queue", signal: LoadShedder.queueDelay() })
      yield* TestClock.adjust(1_000)
      const ticket = yield* shedder.admit("standard", 993)
      yield* ticket.pass
      yield* shedder.admit("critical") // no arrival time: nothing recorded
      expect(yield* Effect.flatMap(QueueDelay.QueueDelayTest, (t) => t.recorded)).toStrictEqual([7])
      yield* hold(shedder, 10)
      expect(yield* isShed(shedder.allow)).toBe(false)
      yield* QueueDelay.set(5)
      expect(yield* isShed(shedder.allow)).toBe(true)
    }).pipe(Effect.provide(QueueDelay.layerTest(0)), withMode("pro")))
})

describe("LoadShedder options", () => {
  it.effect.each(
    [
      [{ name: "x", signal: LoadShedder.eventLoopUtilization({ threshold: 1 }) }, "signal.threshold"],
      [{ name: "x", signal: LoadShedder.eventLoopUtilization({ threshold: 0 }) }, "signal.threshold"],
      [{ name: "x", signal: LoadShedder.eventLoopUtilization({ threshold: Number.NaN }) }, "signal.threshold"],
      [{ name: "x", signal: LoadShedder.eventLoopUtilization({ allowance: "-1 millis" }) }, "signal.allowance"],
      [{ name: "x", signal: LoadShedder.eventLoopDelay({ threshold: 0 }) }, "signal.threshold"],
      [{ name: "x", signal: LoadShedder.queueDelay({ threshold: "soon" as "1 second" }) }, "signal.threshold"],
      [{ name: "x", signal: LoadShedder.cpu({ threshold: 1000 }) }, "signal.threshold"],
      [{ name: "x", signal: { _tag: "Memory" } }, "signal._tag"],
      [{ name: "x", signal: LoadShedder.cpu(), cpuThreshold: 900 }, "cpuThreshold"],
      [{ name: "x", cpuThreshold: 1.5 }, "cpuThreshold"]
    ] as const
  )("rejects %j", ([options, option]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LoadShedder.make(options as unknown as LoadShedder.Options))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe(option)
    }).pipe(Effect.scoped, Effect.provide(CpuUsage.layerTest(0)), withMode("pro")))

  it.scoped("cpuThreshold alone means go-zero's CPU signal", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "cfg", cpuThreshold: 800 })
      expect(yield* shedder.stats).toMatchObject({ signal: "cpu", threshold: 800, priorityThreshold: 900 })
    }).pipe(Effect.provide(CpuUsage.layerTest(0)), withMode("pro")))

  it.scoped("a group shares one signal between its shedders", () =>
    Effect.gen(function*() {
      const group = yield* LoadShedder.makeGroup({ signal: LoadShedder.eventLoopDelay({ threshold: "10 millis" }) })
      const a = yield* group.get("a")
      const b = yield* group.get("b")
      expect(yield* group.get("a")).toBe(a)
      yield* EventLoopDelay.set(30)
      expect((yield* a.stats).value).toBe(30)
      expect((yield* b.stats).value).toBe(30)
      expect((yield* Effect.flip(group.get(""))).option).toBe("name")
      expect(Shedder.priorities).toStrictEqual(LoadShedder.priorities)
    }).pipe(Effect.provide(EventLoopDelay.layerTest(0)), withMode("pro")))
})

/** Yields to the event loop through its check phase, so the loop never waits for I/O. */
const setImmediateYield = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

describe("LoadShedder with its own live sampler", () => {
  // Real time: this thread saturates its own event loop, which reads busy whatever the rest of
  // the machine does (time spent descheduled while running counts as busy).
  it.live("a saturated event loop makes the default shedder hold its flight limit", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ name: "live" })
      yield* hold(shedder, coldLimit + 1)
      expect(yield* isShed(shedder.allow)).toBe(false)
      let shed = false
      for (let round = 0; round < 500 && !shed; round++) {
        const end = performance.now() + 20
        while (performance.now() < end) {
          // busy
        }
        yield* setImmediateYield
        shed = yield* isShed(shedder.allow)
      }
      expect(shed).toBe(true)
      const stats = yield* shedder.stats
      expect(stats.value).toBeGreaterThanOrEqual(0.9)
    }).pipe(Effect.scoped, withMode("pro")), 60_000)
})
