import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberRef,
  Metric,
  Option,
  Ref,
  Supervisor,
  TestClock
} from "effect"
import { InvalidOptionsError, TimeoutError } from "../src/Errors.js"
import * as Timeout from "../src/Timeout.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const remainingMillis = Effect.map(Timeout.remaining, Option.map(Duration.toMillis))

describe("Timeout.within", () => {
  it.effect("passes the result through when the work is fast enough", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.as(Effect.sleep("500 millis"), 42).pipe(Timeout.within("1 second")))
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(fiber)).toBe(42)
    }))

  it.effect("fails with TimeoutError carrying the duration, interrupts the work and runs its finalizer", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const supervisor = yield* Supervisor.track
      const work = Effect.never.pipe(Effect.ensuring(Ref.set(finalized, true)))
      const fiber = yield* Effect.fork(
        work.pipe(Timeout.within({ duration: "1 second", operation: "slow-call" }), Effect.supervised(supervisor))
      )
      yield* TestClock.adjust("999 millis")
      expect(yield* Ref.get(finalized)).toBe(false)
      // the work runs on the caller's fiber: under TestClock the timer is the one fiber alive
      expect((yield* supervisor.value).length).toBe(1)
      yield* TestClock.adjust("1 millis")
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(Duration.toMillis((error as TimeoutError).duration)).toBe(1000)
      expect((error as TimeoutError).operation).toBe("slow-call")
      expect(yield* Ref.get(finalized)).toBe(true)
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("leaves no timer fiber behind when the work ends first", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const result = yield* Effect.succeed("ok").pipe(Timeout.within("1 minute"), Effect.supervised(supervisor))
      expect(result).toBe("ok")
      expect(yield* supervisor.value).toEqual([])
      const failed = yield* Effect.fail("boom").pipe(
        Timeout.within("1 minute"),
        Effect.supervised(supervisor),
        Effect.flip
      )
      expect(failed).toBe("boom")
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("fiber refs set by the work flow back to the caller; the deadline does not", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake("before")
      const fiber = yield* Effect.fork(
        Effect.gen(function*() {
          yield* FiberRef.set(ref, "set inside")
          yield* Effect.sleep("10 millis")
        }).pipe(Timeout.within("1 second"), Effect.zipRight(Effect.all([FiberRef.get(ref), remainingMillis])))
      )
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toEqual(["set inside", Option.none()])
    }))

  it.effect("keeps the work's own failure and defects", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.die("kaput").pipe(Timeout.within("1 second")))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }))

  it.effect("interrupting the caller interrupts the work and its timer", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const supervisor = yield* Supervisor.track
      const fiber = yield* Effect.fork(
        Effect.never.pipe(
          Effect.ensuring(Ref.set(finalized, true)),
          Timeout.within("1 minute"),
          Effect.supervised(supervisor)
        )
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(finalized)).toBe(true)
      expect(yield* supervisor.value).toEqual([])
    }))

  it.effect("counts resilience_timeouts_total{name}", () =>
    Effect.gen(function*() {
      const counter = Timeout.timeoutsTotal.pipe(Metric.tagged("name", "counted-op"))
      const before = (yield* Metric.value(counter)).count
      const fiber = yield* Effect.fork(Effect.never.pipe(Timeout.within({ duration: 10, operation: "counted-op" })))
      yield* TestClock.adjust(10)
      yield* Fiber.await(fiber)
      expect((yield* Metric.value(counter)).count - before).toBe(1)
    }))

  it.effect("a bad duration is an InvalidOptionsError defect", () =>
    Effect.gen(function*() {
      for (const bad of [-1, Number.NaN, "soon", "-2 seconds"] as const) {
        const exit = yield* Effect.exit(Effect.void.pipe(Timeout.within(bad as Duration.DurationInput)))
        const defect = Exit.isFailure(exit) ? Cause.dieOption(exit.cause) : Option.none()
        expect(Option.getOrUndefined(defect)).toBeInstanceOf(InvalidOptionsError)
      }
    }))

  it.effect("with a live-style clock the timer is a callback on the clock's scheduler (no extra fiber)", () =>
    Effect.gen(function*() {
      const tasks: Array<{ task: () => void; millis: number; cancelled: boolean }> = []
      const clock = fakeLiveClock(tasks)
      const supervisor = yield* Supervisor.track
      // synchronous work finishes before any timer is armed
      expect(yield* Effect.succeed(1).pipe(Timeout.within("2 seconds"), Effect.withClock(clock))).toBe(1)
      expect(tasks).toEqual([])
      // asynchronous work that ends in time: the timer is armed, then cancelled
      const fast = Effect.zipRight(Effect.yieldNow(), Effect.succeed(2))
      expect(yield* fast.pipe(Timeout.within("2 seconds"), Effect.withClock(clock))).toBe(2)
      expect(tasks.map((t) => [t.millis, t.cancelled])).toEqual([[2000, true]])
      // slow work: firing the timer interrupts it
      const finalized = yield* Ref.make(false)
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.ensuring(Ref.set(finalized, true)),
          Timeout.within("3 seconds"),
          Effect.withClock(clock),
          Effect.supervised(supervisor)
        )
      )
      yield* Deferred.await(started)
      expect(tasks[1].millis).toBe(3000)
      tasks[1].task()
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(yield* Ref.get(finalized)).toBe(true)
      expect(yield* supervisor.value).toEqual([])
    }))
})

const fakeLiveClock = (tasks: Array<{ task: () => void; millis: number; cancelled: boolean }>): Clock.Clock => {
  const scheduler: Clock.ClockScheduler = {
    unsafeSchedule: (task, duration) => {
      const entry = { task, millis: Duration.toMillis(duration), cancelled: false }
      tasks.push(entry)
      return () => {
        entry.cancelled = true
        return true
      }
    }
  }
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => 0,
    currentTimeMillis: Effect.succeed(0),
    unsafeCurrentTimeNanos: () => 0n,
    currentTimeNanos: Effect.succeed(0n),
    sleep: () => Effect.never,
    scheduler: () => Effect.succeed(scheduler)
  } as Clock.Clock
}

describe("Timeout.deadline", () => {
  it.effect("remaining is None outside a deadline", () =>
    Effect.gen(function*() {
      expect(yield* remainingMillis).toEqual(Option.none())
    }))

  it.effect("request 30 s → gateway 28 s → service 10 s → DB 5 s: each level sees its own budget", () =>
    Effect.gen(function*() {
      const seen: Array<[string, Option.Option<number>]> = []
      const record = (label: string) => Effect.map(remainingMillis, (r) => void seen.push([label, r]))
      const db = record("db").pipe(Timeout.within({ duration: "5 seconds", operation: "db" }))
      const service = Effect.zipRight(record("service"), db).pipe(Timeout.within("10 seconds"))
      const gateway = Effect.zipRight(record("gateway"), service).pipe(Timeout.within("28 seconds"))
      yield* Effect.zipRight(record("request"), gateway).pipe(Timeout.deadline("30 seconds"))
      expect(seen).toEqual([
        ["request", Option.some(30_000)],
        ["gateway", Option.some(28_000)],
        ["service", Option.some(10_000)],
        ["db", Option.some(5_000)]
      ])
    }))

  it.effect("nested timeouts are clamped to what remains, at three levels", () =>
    Effect.gen(function*() {
      const seen: Array<[string, Option.Option<number>]> = []
      const record = (label: string) => Effect.map(remainingMillis, (r) => void seen.push([label, r]))
      // t=25 s: only 3 s of the 28 s gateway budget remain, so the 5 s DB timeout is armed for 3 s
      const db = Effect.zipRight(record("db"), Effect.never).pipe(
        Timeout.within({ duration: "5 seconds", operation: "db" })
      )
      // t=20 s: 8 s remain, so the 10 s service timeout is armed for 8 s
      const service = record("service").pipe(
        Effect.zipRight(Effect.sleep("5 seconds")),
        Effect.zipRight(db),
        Timeout.within({ duration: "10 seconds", operation: "service" })
      )
      const gateway = record("gateway").pipe(
        Effect.zipRight(Effect.sleep("20 seconds")),
        Effect.zipRight(service),
        Timeout.within({ duration: "28 seconds", operation: "gateway" })
      )
      const fiber = yield* Effect.fork(gateway.pipe(Timeout.deadline("30 seconds")))
      yield* TestClock.adjust("27999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(seen).toEqual([
        ["gateway", Option.some(28_000)],
        ["service", Option.some(8_000)],
        ["db", Option.some(3_000)]
      ])
    }))

  it.effect("an inner timeout shorter than the budget still fires on its own", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.never.pipe(Timeout.within({ duration: "2 seconds", operation: "db" }), Timeout.deadline("30 seconds"))
      )
      yield* TestClock.adjust("2 seconds")
      const error = failureOf(yield* Fiber.await(fiber)) as TimeoutError
      expect(error.operation).toBe("db")
      expect(Duration.toMillis(error.duration)).toBe(2000)
    }))

  it.effect("a spent budget fails at once without starting the work", () =>
    Effect.gen(function*() {
      const started = yield* Ref.make(false)
      const fiber = yield* Effect.fork(
        Effect.sleep("5 seconds").pipe(
          Effect.zipRight(Ref.set(started, true).pipe(Timeout.within("1 second"))),
          Effect.catchAll((e) => Effect.succeed(e)),
          Effect.zipRight(Effect.never),
          Timeout.deadline("5 seconds")
        )
      )
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(started)).toBe(false)
    }))

  it.effect("remaining shrinks as the clock advances", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.gen(function*() {
          const first = yield* remainingMillis
          yield* Effect.sleep("4 seconds")
          const second = yield* remainingMillis
          return [first, second]
        }).pipe(Timeout.deadline("10 seconds"))
      )
      yield* TestClock.adjust("4 seconds")
      expect(yield* Fiber.join(fiber)).toEqual([Option.some(10_000), Option.some(6_000)])
    }))

  it.effect("a nested deadline cannot extend the budget; child fibers inherit it", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.gen(function*() {
        const child = yield* Effect.fork(remainingMillis)
        return yield* Fiber.join(child)
      }).pipe(Timeout.deadline("1 minute"), Timeout.deadline("10 seconds"))
      expect(inner).toEqual(Option.some(10_000))
    }))

  it.effect("the deadline fails the whole block when it is spent", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.sleep("1 minute").pipe(Timeout.deadline("30 seconds")))
      yield* TestClock.adjust("30 seconds")
      const error = failureOf(yield* Fiber.await(fiber)) as TimeoutError
      expect(error.operation).toBe("deadline")
      expect(Duration.toMillis(error.duration)).toBe(30_000)
    }))
})
