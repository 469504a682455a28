import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, TestClock } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { settle } from "./support.js"

/** A call of `weight` that records when it starts and holds its permits until released. */
const caller = (bulkhead: Bulkhead.Bulkhead, weight: number, label: string, started: Array<string>) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      Bulkhead.protectWeighted(
        Effect.zipRight(Effect.sync(() => started.push(label)), Deferred.await(gate)),
        bulkhead,
        weight
      )
    )
    yield* settle
    return { release: Effect.zipRight(Deferred.succeed(gate, undefined), settle), fiber }
  })

const active = (bulkhead: Bulkhead.Bulkhead) => Effect.map(bulkhead.stats, (s) => [s.active, s.queued])

describe("Bulkhead weighted permits", () => {
  it.scoped("a call holds its weight; a light newcomer never barges past a heavy waiter", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "w", maxConcurrent: 5, maxQueue: 10 })
      const started: Array<string> = []
      const first = yield* caller(bulkhead, 3, "first", started)
      expect(yield* active(bulkhead)).toEqual([3, 0])
      const heavy = yield* caller(bulkhead, 3, "heavy", started)
      // two permits are free, but the heavy waiter is ahead: the light one queues behind it
      const light = yield* caller(bulkhead, 2, "light", started)
      expect(started).toEqual(["first"])
      expect(yield* active(bulkhead)).toEqual([3, 2])
      yield* first.release
      // the heavy one goes first, and the light one fits beside it
      expect(started).toEqual(["first", "heavy", "light"])
      expect(yield* active(bulkhead)).toEqual([5, 0])
      yield* heavy.release
      yield* light.release
      expect(yield* active(bulkhead)).toEqual([0, 0])
    }))

  it.scoped("a heavy waiter is not starved by a stream of light calls", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "starve", maxConcurrent: 4, maxQueue: 100 })
      const started: Array<string> = []
      // light calls, each one second long, arriving every 250 ms: without FIFO they would always
      // keep at least one permit busy and a weight-4 call would never fit
      const light = (i: number) =>
        Effect.fork(
          Bulkhead.protectWeighted(
            Effect.zipRight(Effect.sync(() => started.push(`l${i}`)), Effect.sleep("1 second")),
            bulkhead,
            1
          )
        )
      for (let i = 0; i < 4; i++) {
        yield* light(i)
        yield* TestClock.adjust("250 millis")
      }
      const heavy = yield* Effect.fork(
        Bulkhead.protectWeighted(Effect.sync(() => started.push("heavy")), bulkhead, 4)
      )
      yield* settle
      const later = []
      for (let i = 4; i < 8; i++) {
        later.push(yield* light(i))
        yield* TestClock.adjust("250 millis")
      }
      yield* TestClock.adjust("2 seconds")
      expect(Exit.isSuccess(yield* Fiber.await(heavy))).toBe(true)
      // the heavy call ran once the four ahead of it finished, before any light call that came after it
      expect(started.indexOf("heavy")).toBe(4)
      expect(started).toHaveLength(9)
    }))

  it.scoped("a heavy waiter that gives up lets the lighter ones behind it through", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({
        name: "abandon",
        maxConcurrent: 3,
        maxQueue: 10,
        queueTimeout: "1 second"
      })
      const started: Array<string> = []
      const first = yield* caller(bulkhead, 2, "first", started)
      const heavy = yield* caller(bulkhead, 3, "heavy", started)
      const light = yield* caller(bulkhead, 1, "light", started)
      expect(started).toEqual(["first"])
      yield* Fiber.interrupt(heavy.fiber)
      yield* settle
      expect(started).toEqual(["first", "light"])
      expect(yield* active(bulkhead)).toEqual([3, 0])
      // a timed-out heavy waiter does the same
      const heavy2 = yield* caller(bulkhead, 3, "heavy2", started)
      yield* TestClock.adjust("500 millis")
      const light2 = yield* caller(bulkhead, 1, "light2", started)
      yield* light.release
      expect(started).toEqual(["first", "light"])
      yield* TestClock.adjust("500 millis")
      yield* settle
      const timedOut = yield* Fiber.await(heavy2.fiber)
      expect(Exit.isFailure(timedOut)).toBe(true)
      expect(started).toEqual(["first", "light", "light2"])
      yield* first.release
      yield* light2.release
      expect(yield* active(bulkhead)).toEqual([0, 0])
    }))

  it.scoped("interrupted weighted work gives back its whole weight", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "interrupt", maxConcurrent: 4, maxQueue: 10 })
      const started: Array<string> = []
      const running = yield* caller(bulkhead, 3, "running", started)
      const waiting = yield* caller(bulkhead, 4, "waiting", started)
      yield* Fiber.interrupt(running.fiber)
      yield* settle
      expect(started).toEqual(["running", "waiting"])
      expect(yield* active(bulkhead)).toEqual([4, 0])
      yield* waiting.release
      expect(yield* active(bulkhead)).toEqual([0, 0])
    }))

  it.scoped("weights mix with plain protect, which weighs one", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "mix", maxConcurrent: 2, maxQueue: 10 })
      const started: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const plain = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
      yield* settle
      const heavy = yield* caller(bulkhead, 2, "heavy", started)
      const plain2 = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("plain2"))))
      yield* settle
      expect(started).toEqual([])
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      expect(started).toEqual(["heavy"])
      yield* heavy.release
      expect(started).toEqual(["heavy", "plain2"])
      yield* Fiber.join(plain)
      yield* Fiber.join(plain2)
      expect(yield* active(bulkhead)).toEqual([0, 0])
    }))

  it.scoped("a weight above the capacity, or not a whole number ≥ 1, is InvalidOptionsError", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "invalid", maxConcurrent: 3 })
      for (const weight of [4, 0, -1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(bulkhead.protectWeighted(weight)(Effect.void))
        expect(error).toMatchObject({ _tag: "InvalidOptionsError", option: "weight", value: weight })
      }
      expect(yield* Bulkhead.protectWeighted(Effect.succeed(7), bulkhead, 3)).toBe(7)
      // full and no queue: a weighted call is rejected like any other
      const gate = yield* Deferred.make<void>()
      yield* Effect.fork(bulkhead.protectWeighted(2)(Deferred.await(gate)))
      yield* settle
      expect((yield* Effect.flip(bulkhead.protectWeighted(2)(Effect.void)))._tag).toBe("BulkheadFullError")
      expect(yield* Effect.exit(bulkhead.protectWeighted(1)(Effect.void))).toEqual(Exit.void)
    }))
})
