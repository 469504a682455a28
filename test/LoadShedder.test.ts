import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Logger, Metric, Scope, Stream, TestClock } from "effect"
import * as CpuUsage from "../src/CpuUsage.js"
import { InvalidOptionsError, OverloadedError } from "../src/Errors.js"
import * as Shedder from "../src/internal/shedder.js"
import * as Metrics from "../src/internal/sheddingMetrics.js"
import * as LoadShedder from "../src/LoadShedder.js"
import type * as ResilienceMode from "../src/ResilienceMode.js"

/** go-zero's constants: the CPU signal, threshold 900 per-mille */
const params: Shedder.Params = {
  threshold: 900,
  priorityThreshold: 950,
  factor: { _tag: "bounded", max: 1000 },
  allowanceMillis: 0,
  averageGuard: true,
  tierShares: Shedder.goZeroTierShares,
  passSpan: 1,
  buckets: 50,
  bucketMillis: 100
}

/** `count` requests that each took `rt` ms, completing at `now`. */
const complete = (state: Shedder.State, now: number, count: number, rt: number) => {
  for (let i = 0; i < count; i++) {
    expect(Shedder.allow(state, now - rt, 0)).toBe(true)
    Shedder.pass(state, now - rt, now)
  }
}

const withMode = (mode: ResilienceMode.ResilienceMode) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_MODE", mode]])))

const testCpu = (initial: number) => Effect.provide(CpuUsage.layerTest(initial))

describe("shedder algorithm (go-zero's suite)", () => {
  it("maxPass is the largest completed bucket, 1 when empty", () => {
    const state = Shedder.make(params, 0)
    expect(Shedder.maxPass(state, 0)).toBe(1)
    for (let i = 1; i <= 10; i++) complete(state, i * 100 - 50, i * 100, 1)
    // the tenth bucket (1000 passes) is still the current one: not counted yet
    expect(Shedder.maxPass(state, 950)).toBe(900)
    expect(Shedder.maxPass(state, 1000)).toBe(1000)
  })

  it("minRt is the lowest rounded bucket average, 1000 when empty", () => {
    const state = Shedder.make(params, 0)
    expect(Shedder.minRt(state, 0)).toBe(Shedder.defaultMinRt)
    for (let i = 0; i < 10; i++) {
      for (let j = i * 10 + 1; j <= i * 10 + 10; j++) complete(state, i * 100 + 50, 1, j)
    }
    // bucket 0 averages 5.5 → 6
    expect(Shedder.minRt(state, 1000)).toBe(6)
  })

  it("maxFlight = 54 for maxPass 900 and minRt 6", () => {
    const state = Shedder.make(params, 0)
    complete(state, 50, 900, 6)
    expect(Shedder.maxPass(state, 100)).toBe(900)
    expect(Shedder.minRt(state, 100)).toBe(6)
    expect(Shedder.maxFlight(state, 100)).toBe(54)
    expect(Shedder.maxFlightOf(900, 6, 100)).toBe(54)
    // never below 1
    expect(Shedder.maxFlightOf(1, 1, 100)).toBe(1)
  })

  it("maxFlight, kept from one window step to the next, equals a fresh reading", () => {
    // passes land in the current bucket between readings, the window moves by one bucket, by
    // several, and past its whole length; each reading must match maxPass and minRt computed anew
    const state = Shedder.make({ ...params, passSpan: 3 }, 0)
    const fresh = (now: number) =>
      Shedder.maxFlightOf(Shedder.maxPass(state, now), Shedder.minRt(state, now), params.bucketMillis)
    let now = 0
    for (const step of [0, 10, 30, 60, 100, 250, 5, 5, 400, 7_000, 40, 100]) {
      now += step
      const before = Shedder.maxFlight(state, now)
      expect(before).toBe(fresh(now))
      complete(state, now, 3 + (now % 7), 1 + (now % 5))
      // what the current bucket took does not count until the window moves
      expect(Shedder.maxFlight(state, now)).toBe(before)
      expect(Shedder.maxFlight(state, now)).toBe(fresh(now))
    }
    expect(Shedder.maxFlight(state, now + 100)).toBe(fresh(now + 100))
    expect(Shedder.maxFlight(state, now + 100)).not.toBe(Shedder.maxFlightOf(1, Shedder.defaultMinRt, 100))
  })

  it("the window forgets passes after 5 s", () => {
    const state = Shedder.make(params, 0)
    complete(state, 50, 900, 6)
    expect(Shedder.maxFlight(state, 4_900)).toBe(54)
    expect(Shedder.maxPass(state, 5_000)).toBe(1)
    expect(Shedder.minRt(state, 5_000)).toBe(1000)
  })

  it("overloadFactor at the bounds", () => {
    expect(Shedder.overloadFactor(0, 900)).toBe(1)
    expect(Shedder.overloadFactor(900, 900)).toBe(1)
    expect(Shedder.overloadFactor(950, 900)).toBeCloseTo(0.5, 10)
    expect(Shedder.overloadFactor(990, 900)).toBeCloseTo(0.1, 10)
    expect(Shedder.overloadFactor(1000, 900)).toBe(0.1)
    expect(Shedder.overloadFactor(995, 900)).toBe(0.1)
    expect(Shedder.overloadFactor(800, 0)).toBeCloseTo(0.2, 10)
  })

  it("shouldDrop: CPU over/under the threshold, throughput over/under maxFlight", () => {
    const state = Shedder.make(params, 0)
    complete(state, 50, 900, 6) // maxFlight 54
    const now = 150
    const cpuAtThreshold = 900 // factor 1: the limit is maxFlight itself
    // over threshold, in flight under maxFlight
    state.avgFlying = 50
    state.flying = 50
    expect(Shedder.shouldDrop(state, now, cpuAtThreshold)).toBe(false)
    // over threshold, average over maxFlight but current flying under it
    state.avgFlying = 80
    state.flying = 50
    expect(Shedder.shouldDrop(state, now, cpuAtThreshold)).toBe(false)
    // over threshold, both over
    state.avgFlying = 80
    state.flying = 80
    expect(Shedder.shouldDrop(state, now, cpuAtThreshold)).toBe(true)
    // under threshold and not hot: admitted however busy
    const fresh = Shedder.make(params, 0)
    complete(fresh, 50, 900, 6)
    fresh.avgFlying = 80
    fresh.flying = 80
    expect(Shedder.shouldDrop(fresh, now, 899)).toBe(false)
    // CPU far over the threshold scales maxFlight down to 10 %: 54 → 5.4
    fresh.avgFlying = 6
    fresh.flying = 6
    expect(Shedder.shouldDrop(fresh, now, 1000)).toBe(true)
    fresh.flying = 5
    expect(Shedder.shouldDrop(fresh, now, 1000)).toBe(false)
  })

  it("allow drops, counts the drop and stays hot for 1 s after the last overload", () => {
    const state = Shedder.make(params, 0)
    complete(state, 50, 900, 6)
    state.avgFlying = 80
    state.flying = 80
    expect(Shedder.allow(state, 200, 950)).toBe(false)
    expect(Shedder.droppedTotal(state)).toBe(1)
    expect(state.droppedRecently[1]).toBe(true)
    // CPU back under the threshold, but hot
    expect(Shedder.stillHot(state, 1_199)).toBe(true)
    expect(Shedder.allow(state, 1_199, 100)).toBe(false)
    // 1 s after the last overload: cooled off
    expect(Shedder.allow(state, 1_200, 100)).toBe(true)
    expect(state.droppedRecently[1]).toBe(false)
  })

  it("never hot without a drop", () => {
    const state = Shedder.make(params, 0)
    expect(Shedder.systemOverloaded(state, 10, 950)).toBe(true)
    expect(Shedder.stillHot(state, 20)).toBe(false)
  })

  it("avgFlying moves by β = 0.9 on completion only", () => {
    const state = Shedder.make(params, 0)
    for (let i = 0; i < 10; i++) Shedder.allow(state, 0, 0)
    expect(state.avgFlying).toBe(0)
    Shedder.fail(state) // 9 left
    expect(state.avgFlying).toBeCloseTo(0.9, 10)
    Shedder.pass(state, 0, 5) // 8 left
    expect(state.avgFlying).toBeCloseTo(0.9 * 0.9 + 0.8, 10)
    expect(state.passed).toBe(1)
  })

  it("priority threshold is halfway to 1000", () => {
    expect(Shedder.priorityThreshold(900)).toBe(950)
    expect(Shedder.priorityThreshold(801)).toBe(900)
    expect(Shedder.priorityThreshold(0)).toBe(500)
  })
})

/** Ten buckets of `perBucket` requests of `rt` ms each, completed through the shedder's tickets. */
const warmUp = (shedder: LoadShedder.LoadShedder, perBucket: number, rt: number) =>
  Effect.gen(function*() {
    for (let bucket = 0; bucket < 10; bucket++) {
      const tickets = yield* Effect.all(Array.from({ length: perBucket }, () => shedder.allow))
      yield* TestClock.adjust(rt)
      yield* Effect.forEach(tickets, (t) => t.pass, { discard: true })
      yield* TestClock.adjust(100 - rt)
    }
  })

describe("LoadShedder", () => {
  it.scoped("admits while the CPU is under the threshold, however many are in flight", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "api" })
      yield* warmUp(shedder, 10, 10)
      const held = yield* Effect.all(Array.from({ length: 100 }, () => shedder.allow))
      expect(held).toHaveLength(100)
      const stats = yield* shedder.stats
      expect(stats.flying).toBe(100)
      expect(stats.dropped).toBe(0)
      expect(stats.maxPass).toBe(10)
      expect(stats.minRt).toBe(10)
      expect(stats.maxFlight).toBe(1)
    }).pipe(testCpu(899), withMode("pro")))

  it.scoped("sheds over the threshold with high throughput", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "api" })
      yield* warmUp(shedder, 10, 10) // maxFlight 1, avgFlying > 0.1
      yield* CpuUsage.set(1000)
      // nothing in flight: low throughput, admitted
      const first = yield* shedder.allow
      // one in flight, over maxFlight · 0.1: dropped
      const dropped = yield* Effect.exit(shedder.allow)
      expect(dropped).toStrictEqual(Exit.fail(new OverloadedError({ shedder: "api", reason: "cpu" })))
      yield* first.pass
      yield* first.fail // only the first call counts
      const stats = yield* shedder.stats
      expect(stats).toMatchObject({ flying: 0, dropped: 1, passed: 101, total: 102, hot: true })
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("its view emits at subscription and at every drop", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "view" })
      yield* warmUp(shedder, 10, 10)
      const seen: Array<LoadShedder.Stats> = []
      yield* Effect.forkScoped(Stream.runForEach(shedder.view.changes, (s) => Effect.sync(() => seen.push(s))))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* CpuUsage.set(1000)
      const first = yield* shedder.allow
      yield* Effect.exit(shedder.allow)
      yield* Effect.exit(shedder.allow)
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* first.pass
      expect(seen.map((s) => [s.dropped, s.hot])).toEqual([[0, false], [1, true], [2, true]])
      expect(yield* shedder.view.get).toEqual(yield* shedder.stats)
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("stays hot for 1 s after the last overload, then cools off", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "cool" })
      yield* warmUp(shedder, 10, 10) // maxFlight 1
      const held = yield* Effect.all(Array.from({ length: 20 }, () => shedder.allow))
      for (let i = 0; i < 30; i++) yield* Effect.flatMap(shedder.allow, (t) => t.pass) // avgFlying → 20
      expect((yield* shedder.stats).avgFlying).toBeGreaterThan(15)
      // CPU under the threshold: admitted however busy
      yield* CpuUsage.set(899)
      yield* Effect.flatMap(shedder.allow, (t) => t.fail)
      yield* CpuUsage.set(1000)
      expect(Exit.isFailure(yield* Effect.exit(shedder.allow))).toBe(true)
      // CPU back under the threshold, but hot: 20 in flight is over maxFlight 1
      yield* CpuUsage.set(100)
      yield* TestClock.adjust("999 millis")
      expect(Exit.isFailure(yield* Effect.exit(shedder.allow))).toBe(true)
      expect((yield* shedder.stats).hot).toBe(true)
      yield* TestClock.adjust("1 millis")
      const admitted = yield* shedder.allow
      const stats = yield* shedder.stats
      expect(stats.dropped).toBe(2)
      expect(stats.hot).toBe(false)
      expect(stats.flying).toBe(21)
      yield* Effect.forEach([...held, admitted], (t) => t.fail, { discard: true })
      expect((yield* shedder.stats).flying).toBe(0)
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("protect: success passes, failure, defect and interruption fail", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "protect" })
      expect(yield* shedder.protect(Effect.succeed(1))).toBe(1)
      expect(yield* Effect.flip(shedder.protect(Effect.fail("boom")))).toBe("boom")
      expect(Exit.isFailure(yield* Effect.exit(shedder.protect(Effect.die("defect"))))).toBe(true)
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(LoadShedder.protect(shedder))
      )
      yield* Deferred.await(started)
      expect((yield* shedder.stats).flying).toBe(1)
      yield* Fiber.interrupt(fiber)
      const stats = yield* shedder.stats
      expect(stats.flying).toBe(0)
      expect(stats.total).toBe(4)
      expect(stats.passed).toBe(1)
      expect(stats.dropped).toBe(0)
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("protect records the round-trip time of a pass", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "rt" })
      yield* LoadShedder.protect(Effect.sleep("7 millis"), shedder).pipe(
        Effect.fork,
        Effect.tap(() => TestClock.adjust(7))
      )
      yield* TestClock.adjust(100)
      const stats = yield* shedder.stats
      expect(stats.minRt).toBe(7)
      expect(stats.maxPass).toBe(1)
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("counts shed requests in resilience_shed_requests_total{name,priority}", () =>
    Effect.gen(function*() {
      const name = "metered"
      const counter = Metrics.shedRequestsOf(name, "standard")
      const before = (yield* Metric.value(counter)).count
      const shedder = yield* LoadShedder.make({ name, signal: LoadShedder.cpu() })
      yield* warmUp(shedder, 10, 10)
      yield* CpuUsage.set(1000)
      yield* shedder.allow
      yield* Effect.exit(shedder.allow)
      yield* Effect.exit(shedder.protect(Effect.void))
      expect((yield* Metric.value(counter)).count - before).toBe(2)
    }).pipe(testCpu(0), withMode("pro")))

  it.scoped("a priority shedder uses threshold (cpu + 1000) / 2", () =>
    Effect.gen(function*() {
      const normal = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "normal" })
      const priority = yield* LoadShedder.makePriority({ signal: LoadShedder.cpu(), name: "priority" })
      expect((yield* priority.stats).priorityThreshold).toBe(950)
      yield* warmUp(normal, 10, 10)
      yield* warmUp(priority, 10, 10)
      yield* CpuUsage.set(920)
      yield* normal.allow
      yield* priority.allow
      expect(Exit.isFailure(yield* Effect.exit(normal.allow))).toBe(true)
      yield* priority.allow
      yield* CpuUsage.set(960)
      expect(Exit.isFailure(yield* Effect.exit(priority.allow))).toBe(true)
    }).pipe(testCpu(0), withMode("pro")))

  for (const mode of ["dev", "test", "rt", "pre"] as const) {
    it.scoped(`admits everything in mode ${mode}`, () =>
      Effect.gen(function*() {
        const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "off" })
        yield* warmUp(shedder, 10, 10)
        yield* CpuUsage.set(1000)
        const held = yield* Effect.all(Array.from({ length: 50 }, () => shedder.allow))
        expect(held).toHaveLength(50)
        expect((yield* shedder.stats).enabled).toBe(false)
      }).pipe(testCpu(0), withMode(mode)))
  }

  it.scoped("sheds in mode pro and by default", () =>
    Effect.gen(function*() {
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "on" })
      yield* warmUp(shedder, 10, 10)
      yield* CpuUsage.set(1000)
      yield* shedder.allow
      expect(Exit.isFailure(yield* Effect.exit(shedder.allow))).toBe(true)
      expect((yield* shedder.stats).enabled).toBe(true)
    }).pipe(testCpu(0), Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))

  it.scoped("an unknown mode is an InvalidOptionsError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LoadShedder.make({ signal: LoadShedder.cpu(), name: "x" }))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe("RESILIENCE_MODE")
      expect(error.value).toBe("production")
    }).pipe(
      testCpu(0),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_MODE", "production"]])))
    ))

  it.effect.each(
    [
      [{ name: "" }, "name"],
      [{ name: "x", cpuThreshold: 1000 }, "cpuThreshold"],
      [{ name: "x", cpuThreshold: -1 }, "cpuThreshold"],
      [{ name: "x", cpuThreshold: 899.5 }, "cpuThreshold"],
      [{ name: "x", cpuThreshold: Number.NaN }, "cpuThreshold"],
      [{ name: "x", window: "-5 seconds" }, "window"],
      [{ name: "x", window: 0 }, "window"],
      [{ name: "x", buckets: 0 }, "buckets"],
      [{ name: "x", buckets: 2.5 }, "buckets"],
      [{ name: "x", window: "10 millis", buckets: 50 }, "window"]
    ] as const
  )("rejects bad options %j", ([options, option]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LoadShedder.make(options as LoadShedder.Options))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe(option)
    }).pipe(Effect.scoped, testCpu(0), withMode("pro")))

  it.scoped("a group builds one shedder per name", () =>
    Effect.gen(function*() {
      const group = yield* LoadShedder.makeGroup({ cpuThreshold: 800 })
      const [a1, a2] = yield* Effect.all([group.get("a"), group.get("a")], { concurrency: "unbounded" })
      const b = yield* group.get("b")
      expect(a1).toBe(a2)
      expect(a1).not.toBe(b)
      expect((yield* b.stats).threshold).toBe(800)
      const error = yield* Effect.flip(LoadShedder.makeGroup({ buckets: -1 }))
      expect(error.option).toBe("buckets")
    }).pipe(testCpu(0), withMode("pro")))

  it.effect("the group layer provides LoadShedderGroup", () =>
    Effect.gen(function*() {
      const group = yield* LoadShedder.LoadShedderGroup
      const shedder = yield* group.get("route")
      expect(shedder.name).toBe("route")
      expect((yield* shedder.stats).priorityThreshold).toBe(950)
    }).pipe(
      Effect.provide(
        LoadShedder.layerGroup({ priority: true, signal: LoadShedder.cpu() }).pipe(Layer.provide(CpuUsage.layerTest(0)))
      ),
      withMode("pro")
    ))

  it.scoped("logs shedding_stat once a minute, only when there was traffic", () =>
    Effect.gen(function*() {
      const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        const record: Record<string, unknown> = {}
        for (const [k, v] of annotations) record[k] = v
        lines.push({ message: Array.isArray(message) ? message[0] : message, annotations: record })
      })
      yield* Effect.gen(function*() {
        const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "stat" })
        yield* TestClock.adjust("1 minute")
        expect(lines.filter((l) => l.message === "shedding_stat")).toHaveLength(0)
        yield* warmUp(shedder, 3, 10) // 30 requests, all passed
        yield* CpuUsage.set(1000)
        yield* shedder.allow // stays in flight
        yield* Effect.exit(shedder.allow) // dropped
        yield* TestClock.adjust("1 minute")
        const stat = lines.filter((l) => l.message === "shedding_stat")
        expect(stat).toHaveLength(1)
        expect(stat[0].annotations).toMatchObject({
          shedder: "stat",
          signal: "cpu",
          value: 1000,
          total: 32,
          pass: 30,
          drop: 1
        })
        yield* TestClock.adjust("1 minute")
        expect(lines.filter((l) => l.message === "shedding_stat")).toHaveLength(1)
        expect(lines.some((l) => l.message === "load shedding started")).toBe(true)
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    }).pipe(testCpu(0), withMode("pro")))

  it.effect("the stat fiber stops with the scope", () =>
    Effect.gen(function*() {
      const messages: Array<unknown> = []
      const logger = Logger.make(({ message }) => {
        messages.push(Array.isArray(message) ? message[0] : message)
      })
      yield* Effect.gen(function*() {
        const scope = yield* Scope.make()
        const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "closed" }).pipe(Scope.extend(scope))
        yield* shedder.protect(Effect.void)
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust("2 minutes")
        expect(messages).not.toContain("shedding_stat")
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    }).pipe(testCpu(0), withMode("pro")))
})
