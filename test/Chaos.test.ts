import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  Cron,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Random,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as Chaos from "../src/Chaos.js"
import { InvalidOptionsError } from "../src/Errors.js"
import { defectOf, failureOf } from "./support.js"

class Injected extends Data.TaggedError("Injected")<{ readonly n?: number }> {}

/** A call that counts how often it really ran. */
const counted = Effect.gen(function*() {
  const runs = yield* Ref.make(0)
  return { runs, call: Effect.as(Ref.update(runs, (n) => n + 1), "real") }
})

/** A Random that must never be asked: a decision that needs no draw makes none. */
const noDraws = Effect.withRandom({
  ...Random.make(0),
  next: Effect.dieMessage("Random was consulted")
} as Random.Random)

const injectedCount = (name: string, kind: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(Chaos.injectionsTotal, "name", name), "kind", kind)),
    (state) => state.count
  )

describe("Chaos options", () => {
  const invalid = (options: unknown) =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Chaos.make(options as Chaos.Options))
      const error = failureOf(exit)
      expect(error).toBeInstanceOf(InvalidOptionsError)
      return error as InvalidOptionsError
    })

  it.effect("a rate outside [0, 1], or not a number, names the option and the value", () =>
    Effect.gen(function*() {
      for (const rate of [1.5, -0.1, Number.NaN, "0.5"]) {
        const error = yield* invalid({ name: "x", rate })
        expect(error.option).toBe("rate")
        expect(error.value).toBe(rate)
      }
    }))

  it.effect("an empty name, an unknown key and a bad window are refused", () =>
    Effect.gen(function*() {
      expect((yield* invalid({ name: "" })).option).toBe("name")
      const typo = yield* invalid({ name: "x", rat: 0.5 })
      expect(typo.option).toBe("rat")
      expect(typo.value).toBe(0.5)
      const zero = yield* invalid({ name: "x", window: { schedule: Schedule.spaced("1 minute"), duration: 0 } })
      expect(zero.option).toBe("window.duration")
      const notSchedule = yield* invalid({ name: "x", window: { schedule: "hourly", duration: "1 minute" } })
      expect(notSchedule.option).toBe("window.schedule")
      expect(notSchedule.value).toBe("hourly")
    }))

  it.effect("a bad latency or status makes every call die with InvalidOptionsError, injected or not", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "bad" })
      const slow = defectOf(yield* Effect.exit(Effect.void.pipe(Chaos.latency(chaos, -5))))
      expect(slow).toBeInstanceOf(InvalidOptionsError)
      expect((slow as InvalidOptionsError).option).toBe("delay")
      const status = defectOf(yield* Effect.exit(Effect.void.pipe(Chaos.httpStatus(chaos, 700))))
      expect((status as InvalidOptionsError).option).toBe("status")
      expect((status as InvalidOptionsError).value).toBe(700)
    }))
})

describe("Chaos off", () => {
  it.effect("is off unless enabled: the call runs untouched and nothing is drawn", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "default-off", rate: 1 })
      const { call, runs } = yield* counted
      const wrapped = call.pipe(
        Chaos.fault(chaos, () => new Injected({})),
        Chaos.latency(chaos, "1 hour"),
        Chaos.outcome(chaos, Effect.succeed("fake"))
      )
      for (let i = 0; i < 100; i++) expect(yield* wrapped.pipe(noDraws)).toBe("real")
      expect(yield* Ref.get(runs)).toBe(100)
      expect(yield* chaos.status).toMatchObject({ enabled: false, decisions: 0, injections: 0 })
    }))

  it.effect("off, failures, defects and interruptions of the call pass through unchanged", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "off-passthrough", rate: 1 })
      const wrap = Chaos.fault(chaos, () => new Injected({}))
      expect(failureOf(yield* Effect.exit(wrap(Effect.fail("own error"))))).toBe("own error")
      expect(defectOf(yield* Effect.exit(wrap(Effect.die("own defect"))))).toBe("own defect")
      const interrupted = yield* Effect.exit(wrap(Effect.interrupt))
      expect(Exit.isInterrupted(interrupted)).toBe(true)
    }))

  it.effect("switching off at run time stops injection at once; on again resumes it", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "switch", enabled: true, rate: 1 })
      const call = Effect.succeed("real").pipe(Chaos.outcome(chaos, Effect.succeed("fake")))
      expect(yield* call).toBe("fake")
      yield* chaos.disable
      expect(yield* call).toBe("real")
      yield* chaos.enable
      expect(yield* call).toBe("fake")
      yield* chaos.setRate(0)
      expect(yield* call.pipe(noDraws)).toBe("real")
      const error = failureOf(yield* Effect.exit(chaos.setRate(2)))
      expect(error).toMatchObject({ _tag: "InvalidOptionsError", option: "rate", value: 2 })
      expect((yield* chaos.status).rate).toBe(0)
    }))
})

describe("Chaos rate", () => {
  const injectedIndices = (chaos: Chaos.Injector, calls: number) =>
    Effect.gen(function*() {
      const call = Effect.succeed(false).pipe(Chaos.outcome(chaos, Effect.succeed(true)))
      const hits: Array<number> = []
      for (let i = 0; i < calls; i++) if (yield* call) hits.push(i)
      return hits
    })

  it.effect("injects the configured share of calls with a seeded Random (10,000 calls, within 4 σ)", () =>
    Effect.gen(function*() {
      for (const rate of [0.001, 0.05, 0.2, 0.5, 0.9]) {
        const chaos = yield* Chaos.make({ name: `rate-${rate}`, enabled: true, rate })
        const hits = yield* injectedIndices(chaos, 10_000).pipe(Effect.withRandom(Random.make(`seed-${rate}`)))
        const sigma = Math.sqrt(10_000 * rate * (1 - rate))
        expect(Math.abs(hits.length - 10_000 * rate)).toBeLessThanOrEqual(4 * sigma + 1)
        expect(yield* chaos.status).toMatchObject({ decisions: 10_000, injections: hits.length })
        expect(yield* injectedCount(`rate-${rate}`, "outcome")).toBe(hits.length)
      }
    }))

  it.effect("one seed gives one sequence of injected calls", () =>
    Effect.gen(function*() {
      const run = (seed: number) =>
        Effect.flatMap(
          Chaos.make({ name: "replay", enabled: true, rate: 0.3 }),
          (chaos) => injectedIndices(chaos, 500)
        ).pipe(Effect.withRandom(Random.make(seed)))
      const first = yield* run(42)
      expect(yield* run(42)).toEqual(first)
      expect(yield* run(43)).not.toEqual(first)
    }))

  it.effect("rate 1 always injects and rate 0 never does, without drawing", () =>
    Effect.gen(function*() {
      const always = yield* Chaos.make({ name: "always", enabled: true, rate: 1 })
      const never = yield* Chaos.make({ name: "never", enabled: true, rate: 0 })
      for (let i = 0; i < 50; i++) {
        expect(yield* always.decide.pipe(noDraws)).toBe(true)
        expect(yield* never.decide.pipe(noDraws)).toBe(false)
      }
    }))

  it.effect("works under the default TestRandom too", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "test-random", enabled: true, rate: 0.5 })
      const hits = yield* injectedIndices(chaos, 2_000)
      expect(hits.length).toBeGreaterThan(800)
      expect(hits.length).toBeLessThan(1_200)
    }))
})

describe("Chaos windows", () => {
  const at = (chaos: Chaos.Injector, millis: number) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(millis)
      return (yield* chaos.status).window
    })

  it.effect("a window opens each time the schedule fires and closes after its duration", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({
        name: "every-10-min",
        enabled: true,
        rate: 1,
        window: { schedule: Schedule.spaced("10 minutes"), duration: "1 minute" }
      })
      const call = Effect.succeed("real").pipe(Chaos.outcome(chaos, Effect.succeed("fake")))
      const minute = 60_000
      expect(yield* call).toBe("real")
      yield* TestClock.setTime(10 * minute - 1)
      expect(yield* call).toBe("real")
      yield* TestClock.setTime(10 * minute)
      expect(yield* call).toBe("fake")
      yield* TestClock.setTime(11 * minute - 1)
      expect(yield* call).toBe("fake")
      yield* TestClock.setTime(11 * minute)
      expect(yield* call).toBe("real")
      expect(yield* at(chaos, 20 * minute + 30_000)).toBe("open")
      expect(yield* at(chaos, 21 * minute)).toBe("closed")
      // no call for hours: the schedule catches up on time, not on calls
      expect(yield* at(chaos, 300 * minute + 59_999)).toBe("open")
      expect(yield* at(chaos, 305 * minute)).toBe("closed")
    }))

  it.effect("calls outside a window are counted, never drawn for, never injected", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({
        name: "closed-window",
        enabled: true,
        rate: 0.5,
        window: { schedule: Schedule.spaced("1 hour"), duration: "1 minute" }
      })
      for (let i = 0; i < 20; i++) expect(yield* chaos.decide.pipe(noDraws)).toBe(false)
      expect(yield* chaos.status).toMatchObject({ window: "closed", decisions: 20, injections: 0 })
    }))

  it.effect("a schedule that ends leaves no more windows", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({
        name: "two-windows",
        enabled: true,
        rate: 1,
        window: {
          schedule: Schedule.spaced("10 minutes").pipe(Schedule.intersect(Schedule.recurs(2))),
          duration: "1 minute"
        }
      })
      const minute = 60_000
      expect(yield* at(chaos, 10 * minute)).toBe("open")
      expect(yield* at(chaos, 20 * minute)).toBe("open")
      expect(yield* at(chaos, 30 * minute)).toBe("closed")
      expect(yield* at(chaos, 40 * minute)).toBe("closed")
    }))

  it.effect("a cron window: every day at 14:00 UTC for 30 minutes", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({
        name: "cron",
        enabled: true,
        rate: 1,
        window: { schedule: Schedule.cron(Cron.unsafeParse("0 14 * * *", "UTC")), duration: "30 minutes" }
      })
      const hour = 3_600_000
      expect(yield* at(chaos, 13 * hour)).toBe("closed")
      expect(yield* at(chaos, 14 * hour + 10 * 60_000)).toBe("open")
      expect(yield* at(chaos, 14 * hour + 31 * 60_000)).toBe("closed")
      expect(yield* at(chaos, 24 * hour + 14 * hour)).toBe("open")
      expect(yield* at(chaos, 24 * hour + 15 * hour)).toBe("closed")
    }))

  it.effect("many fibers arriving at a boundary step the schedule once", () =>
    Effect.gen(function*() {
      const steps = yield* Ref.make(0)
      const chaos = yield* Chaos.make({
        name: "concurrent-window",
        enabled: true,
        rate: 1,
        window: {
          schedule: Schedule.spaced("1 minute").pipe(Schedule.tapOutput(() => Ref.update(steps, (n) => n + 1))),
          duration: "10 seconds"
        }
      })
      expect(yield* Ref.get(steps)).toBe(1)
      yield* TestClock.setTime(60_000)
      const decisions = yield* Effect.all(Array.from({ length: 100 }, () => chaos.decide), { concurrency: "unbounded" })
      expect(decisions.every((d) => d)).toBe(true)
      expect(yield* Ref.get(steps)).toBe(2)
    }))
})

describe("Chaos strategies", () => {
  const enabled = (name: string) => Chaos.make({ name, enabled: true, rate: 1 })

  it.effect("fault fails with a fresh error and never runs the call", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("fault")
      const { call, runs } = yield* counted
      let n = 0
      const wrapped = call.pipe(Chaos.fault(chaos, () => new Injected({ n: ++n })))
      expect(failureOf(yield* Effect.exit(wrapped))).toEqual(new Injected({ n: 1 }))
      expect(failureOf(yield* Effect.exit(wrapped))).toEqual(new Injected({ n: 2 }))
      expect(yield* Ref.get(runs)).toBe(0)
      expect(yield* injectedCount("fault", "fault")).toBe(2)
    }))

  it.effect("data-first and data-last forms are the same strategy", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("dual")
      const first = Chaos.fault(Effect.succeed(1), chaos, () => new Injected({}))
      expect(failureOf(yield* Effect.exit(first))).toBeInstanceOf(Injected)
      expect(yield* Chaos.outcome(Effect.succeed(1), chaos, Effect.succeed(2))).toBe(2)
    }))

  it.effect("latency waits the delay on the Clock, then runs the call", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("latency")
      const { call, runs } = yield* counted
      const fiber = yield* Effect.fork(call.pipe(Chaos.latency(chaos, "2 seconds")))
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      expect(yield* Ref.get(runs)).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("real")
      expect(yield* Ref.get(runs)).toBe(1)
    }))

  it.effect("latency is interruptible: a caller that gives up does not wait, and the call never runs", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("latency-interrupt")
      const { call, runs } = yield* counted
      const fiber = yield* Effect.fork(call.pipe(Chaos.latency(chaos, "1 hour")))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* TestClock.adjust("2 hours")
      expect(yield* Ref.get(runs)).toBe(0)
    }))

  it.effect("the injected wait is interruptible inside an uninterruptible region; the call keeps its own", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("latency-uninterruptible")
      const { call, runs } = yield* counted
      const fiber = yield* Effect.fork(Effect.uninterruptible(call.pipe(Chaos.latency(chaos, "1 hour"))))
      yield* TestClock.adjust("1 second")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(yield* Ref.get(runs)).toBe(0)
      // once past the wait, an uninterruptible call runs to its end
      const finished = yield* Ref.make(false)
      const work = Effect.sleep("1 second").pipe(Effect.zipRight(Ref.set(finished, true)))
      const second = yield* Effect.fork(Effect.uninterruptible(work.pipe(Chaos.latency(chaos, "1 second"))))
      yield* TestClock.adjust("1500 millis")
      const interrupting = yield* Effect.fork(Fiber.interrupt(second))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      expect(yield* Ref.get(finished)).toBe(true)
    }))

  it.effect("latency chosen per call by an effect", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("latency-random")
      const delays = [100, 300]
      const choose = Effect.sync(() => Duration.millis(delays.shift()!))
      const call = (label: string) => Effect.succeed(label).pipe(Chaos.latency(chaos, choose))
      const a = yield* Effect.fork(call("a"))
      const b = yield* Effect.fork(call("b"))
      yield* TestClock.adjust("100 millis")
      expect(a.unsafePoll()).not.toBeNull()
      expect(b.unsafePoll()).toBeNull()
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(b)).toBe("b")
    }))

  it.effect("outcome replaces the result, or fails or dies, without running the call", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("outcome")
      const { call, runs } = yield* counted
      expect(yield* call.pipe(Chaos.outcome(chaos, Effect.succeed(503)))).toBe(503)
      expect(defectOf(yield* Effect.exit(call.pipe(Chaos.outcome(chaos, Effect.die("crash")))))).toBe("crash")
      expect(yield* Ref.get(runs)).toBe(0)
    }))

  it.effect("behavior runs the given effect, then the call; a failing behaviour fails the call", () =>
    Effect.gen(function*() {
      const chaos = yield* enabled("behavior")
      const order: Array<string> = []
      const call = Effect.sync(() => order.push("call")).pipe(Effect.as("real"))
      const restart = Effect.sync(() => order.push("restart cache"))
      expect(yield* call.pipe(Chaos.behavior(chaos, restart))).toBe("real")
      expect(order).toEqual(["restart cache", "call"])
      const broken = call.pipe(Chaos.behavior(chaos, Effect.fail(new Injected({}))))
      expect(failureOf(yield* Effect.exit(broken))).toBeInstanceOf(Injected)
      expect(order).toEqual(["restart cache", "call"])
      expect(yield* injectedCount("behavior", "behavior")).toBe(2)
    }))
})

describe("Chaos middleware", () => {
  it.effect("applies its strategies to the app, the first one outermost", () =>
    Effect.gen(function*() {
      const chaos = yield* Chaos.make({ name: "middleware-order", enabled: true, rate: 1 })
      const order: Array<string> = []
      const step = (label: string) => Effect.sync(() => order.push(label))
      const middleware = Chaos.middleware(Chaos.behavior(chaos, step("first")), Chaos.behavior(chaos, step("second")))
      const app = Effect.as(step("app"), HttpServerResponse.text("ok"))
      const response = yield* (middleware(app as never) as Effect.Effect<HttpServerResponse.HttpServerResponse>)
      expect(response.status).toBe(200)
      expect(order).toEqual(["first", "second", "app"])
    }))
})

describe("Chaos config", () => {
  class Users extends Context.Tag("test/UsersChaos")<Users, Chaos.Injector>() {}
  const fromMap = (entries: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries))))
  const withUsers = <A, E>(entries: Record<string, string>, body: (chaos: Chaos.Injector) => Effect.Effect<A, E>) =>
    Effect.flatMap(Users, body).pipe(
      Effect.provide(Chaos.layerConfig(Users, Chaos.config("users")).pipe(Layer.provide(fromMap(entries))))
    )
  const statusOf = (entries: Record<string, string>) => withUsers(entries, (chaos) => chaos.status)

  it.effect("nothing configured: off, rate 0.001, no window", () =>
    Effect.gen(function*() {
      expect(yield* statusOf({})).toMatchObject({ name: "users", enabled: false, rate: 0.001, window: "none" })
    }))

  it.effect("enabled, rate and a window read from the provider", () =>
    Effect.gen(function*() {
      const status = yield* statusOf({
        enabled: "true",
        rate: "0.25",
        "window.every": "10 minutes",
        "window.duration": "1 minute"
      })
      expect(status).toMatchObject({ enabled: true, rate: 0.25, window: "closed" })
    }))

  it.effect("a cron window with a time zone", () =>
    Effect.gen(function*() {
      const hour = 3_600_000
      yield* TestClock.setTime(14 * hour + 60_000)
      const windows = yield* withUsers({
        enabled: "true",
        "window.cron": "0 14 * * *",
        "window.timeZone": "UTC",
        "window.duration": "5 minutes"
      }, (chaos) =>
        Effect.gen(function*() {
          // the schedule starts now: today's 14:00 window has passed, the next is tomorrow's
          const today = (yield* chaos.status).window
          yield* TestClock.setTime(38 * hour + 4 * 60_000)
          const tomorrow = (yield* chaos.status).window
          yield* TestClock.setTime(38 * hour + 5 * 60_000)
          return [today, tomorrow, (yield* chaos.status).window]
        }))
      expect(windows).toEqual(["closed", "open", "closed"])
    }))

  it.effect("an incomplete or contradictory window, or a bad cron, is a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const errorOf = (entries: Record<string, string>) => Effect.map(Effect.flip(statusOf(entries)), (e) => String(e))
      expect(yield* errorOf({ "window.every": "1 minute" })).toContain("window.duration")
      expect(yield* errorOf({ "window.duration": "1 minute" })).toContain("window.duration")
      expect(yield* errorOf({ "window.every": "1 minute", "window.cron": "* * * * *", "window.duration": "1 second" }))
        .toContain("window.cron")
      expect(yield* errorOf({ "window.cron": "not a cron", "window.duration": "1 second" })).toContain("window.cron")
    }))

  it.effect("a rate out of range fails with InvalidOptionsError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(statusOf({ enabled: "true", rate: "1.5" }))
      expect(error).toMatchObject({ _tag: "InvalidOptionsError", option: "rate", value: 1.5 })
    }))
})
