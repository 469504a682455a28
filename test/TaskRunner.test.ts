import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  HashMap,
  Logger,
  Option,
  Scope,
  Stream,
  Supervisor,
  TestClock
} from "effect"
import { InvalidOptionsError, TaskRunnerBusyError } from "../src/Errors.js"
import * as TaskRunner from "../src/TaskRunner.js"

const settle = Effect.repeatN(Effect.yieldNow(), 50)

interface Logged {
  readonly level: string
  readonly message: unknown
  readonly cause: Cause.Cause<unknown>
  readonly annotations: Record<string, unknown>
}

/** runs `f` with a logger that records every entry */
const withLogs = <A, E, R>(f: (logs: Array<Logged>) => Effect.Effect<A, E, R>) => {
  const logs: Array<Logged> = []
  const logger = Logger.make<unknown, void>(({ annotations, cause, logLevel, message }) => {
    logs.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message[0] : message,
      cause,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return f(logs).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
}

describe("TaskRunner", () => {
  it.scoped("rejects a bad concurrency with InvalidOptionsError", () =>
    Effect.gen(function*() {
      for (const concurrency of [0, -1, 1.5, Number.NaN, Infinity]) {
        const result = yield* Effect.either(TaskRunner.make(concurrency))
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left).toBeInstanceOf(InvalidOptionsError)
          expect(result.left.option).toBe("concurrency")
        }
      }
    }))

  it.scoped("schedule runs every task; wait waits for all (go-zero TestTaskRunner_Schedule)", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.make(4)
      let counter = 0
      // schedule blocks while all four slots are busy, so the loop runs in its own fiber
      const scheduling = yield* Effect.fork(Effect.gen(function*() {
        for (let i = 0; i < 100; i++) {
          yield* runner.schedule(Effect.sleep(`${(i % 5) + 1} millis`).pipe(Effect.tap(() => counter++)))
        }
        yield* runner.wait
      }))
      yield* settle
      expect(counter).toBe(0)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(scheduling)
      expect(counter).toBe(100)
      expect(yield* runner.stats).toEqual({ running: 0, waiting: 0, pending: 0, concurrency: 4 })
    }))

  it.scoped("never runs more than `concurrency` tasks at once (observed)", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.make(3)
      let running = 0
      let peak = 0
      const task = Effect.gen(function*() {
        running++
        peak = Math.max(peak, running)
        yield* Effect.sleep("10 millis")
        running--
      })
      const scheduler = yield* Effect.fork(Effect.forEach(Array.from({ length: 20 }), () => runner.schedule(task)))
      yield* settle
      expect(running).toBe(3)
      expect(yield* runner.stats).toMatchObject({ running: 3, waiting: 1 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(scheduler)
      yield* runner.wait
      expect(peak).toBe(3)
    }))

  it.scoped("schedule waits for a free slot", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.make(1)
      const gate = yield* Deferred.make<void>()
      yield* runner.schedule(Deferred.await(gate))
      const second = yield* Effect.fork(runner.schedule(Effect.void))
      yield* settle
      expect(second.unsafePoll()).toBeNull()
      expect(yield* runner.stats).toMatchObject({ running: 1, waiting: 1, pending: 2 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(second)
      yield* runner.wait
      expect(yield* runner.stats).toMatchObject({ running: 0, waiting: 0, pending: 0 })
    }))

  it.scoped("tasks run with the services of the caller that scheduled them", () =>
    Effect.gen(function*() {
      class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
      const runner = yield* TaskRunner.make(1)
      const seen: Array<string> = []
      yield* runner.schedule(Effect.flatMap(Greeting, (g) => Effect.sync(() => seen.push(g)))).pipe(
        Effect.provideService(Greeting, "hello")
      )
      yield* runner.wait
      expect(seen).toEqual(["hello"])
    }))

  it.scoped("scheduleImmediately fails TaskRunnerBusyError when every slot is taken", () =>
    Effect.gen(function*() {
      const cpus = 4
      const runner = yield* TaskRunner.make(cpus)
      let counter = 0
      for (let i = 0; i < cpus * 2; i++) {
        const result = yield* Effect.either(
          runner.scheduleImmediately(Effect.sync(() => counter++).pipe(Effect.zipRight(Effect.sleep("100 millis"))))
        )
        if (i < cpus) expect(Either.isRight(result)).toBe(true)
        else {
          expect(Either.isLeft(result)).toBe(true)
          if (Either.isLeft(result)) {
            expect(result.left).toBeInstanceOf(TaskRunnerBusyError)
            expect(result.left.concurrency).toBe(cpus)
          }
        }
      }
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* runner.wait
      expect(counter).toBe(cpus)
      // slots are free again
      yield* runner.scheduleImmediately(Effect.void)
    }))

  it.scoped("a failing or defecting task is logged with its cause and frees its slot", () =>
    withLogs((logs) =>
      Effect.gen(function*() {
        const runner = yield* TaskRunner.make(1)
        yield* runner.schedule(Effect.fail("boom"))
        yield* runner.schedule(Effect.die(new Error("kaput")))
        yield* runner.schedule(Effect.sync(() => {
          throw new Error("thrown")
        }))
        let ran = false
        yield* runner.schedule(Effect.sync(() => (ran = true)))
        yield* runner.wait
        expect(ran).toBe(true)
        const failures = logs.filter((l) => l.message === "task failed")
        expect(failures).toHaveLength(3)
        expect(failures.every((l) => l.level === "WARN" && l.annotations.module === "TaskRunner")).toBe(true)
        expect(Cause.failureOption(failures[0].cause)).toEqual(Option.some("boom"))
        expect(Cause.isDie(failures[1].cause)).toBe(true)
        expect(String(Chunk.unsafeHead(Cause.defects(failures[2].cause)))).toContain("thrown")
        expect(yield* runner.stats).toMatchObject({ running: 0, pending: 0 })
      })
    ))

  it.scoped("wait returns at once when idle and also covers tasks scheduled by tasks", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.make(2)
      yield* runner.wait
      const order: Array<string> = []
      yield* runner.schedule(
        Effect.sleep("1 second").pipe(
          Effect.tap(() => order.push("parent")),
          Effect.zipRight(runner.schedule(Effect.sleep("1 second").pipe(Effect.tap(() => order.push("child")))))
        )
      )
      const waiting = yield* Effect.fork(runner.wait)
      yield* TestClock.adjust("1 second")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
      expect(order).toEqual(["parent", "child"])
    }))

  it.scoped("an interrupted schedule call leaves the queue and is not waited for", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.make(1)
      const gate = yield* Deferred.make<void>()
      yield* runner.schedule(Deferred.await(gate))
      let ran = false
      const waiter = yield* Effect.fork(runner.schedule(Effect.sync(() => (ran = true))))
      yield* settle
      yield* Fiber.interrupt(waiter)
      expect(yield* runner.stats).toMatchObject({ running: 1, waiting: 0, pending: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* runner.wait
      expect(ran).toBe(false)
      expect(yield* runner.stats).toMatchObject({ running: 0, waiting: 0, pending: 0 })
    }))

  it.effect("closing the scope interrupts running tasks and waiting callers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const runner = yield* Scope.extend(TaskRunner.make(2), scope)
      let interrupted = 0
      for (let i = 0; i < 2; i++) {
        yield* runner.schedule(Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++))))
      }
      const blocked = yield* Effect.fork(runner.schedule(Effect.void))
      const waiting = yield* Effect.fork(runner.wait)
      yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(interrupted).toBe(2)
      expect(Exit.isInterrupted(yield* Fiber.await(blocked))).toBe(true)
      yield* Fiber.join(waiting)
      expect(yield* runner.stats).toMatchObject({ running: 0, waiting: 0, pending: 0 })
      expect(Exit.isInterrupted(yield* Effect.exit(runner.schedule(Effect.void)))).toBe(true)
      const busy = yield* Effect.either(runner.scheduleImmediately(Effect.void))
      expect(Either.isLeft(busy) && busy.left instanceof TaskRunnerBusyError).toBe(true)
    }))
})

describe("TaskRunner fibers", () => {
  it.effect("no task fiber outlives the runner's scope", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const scope = yield* Scope.make()
      yield* Effect.gen(function*() {
        const runner = yield* Scope.extend(TaskRunner.make(3), scope)
        for (let i = 0; i < 3; i++) yield* runner.schedule(Effect.never)
        yield* runner.schedule(Effect.void).pipe(Effect.fork)
        yield* settle
        expect((yield* supervisor.value).length).toBeGreaterThanOrEqual(3)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.supervised(supervisor))
      yield* settle
      expect((yield* supervisor.value).length).toBe(0)
    }))
})

describe("TaskRunner.workerGroup", () => {
  it.effect("runs `workers` copies of the job and waits for all", () =>
    Effect.gen(function*() {
      let started = 0
      let done = 0
      const fiber = yield* Effect.fork(TaskRunner.workerGroup({
        job: Effect.sync(() => started++).pipe(Effect.zipRight(Effect.sleep("1 second")), Effect.tap(() => done++)),
        workers: 5
      }))
      yield* settle
      expect(started).toBe(5)
      expect(done).toBe(0)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(done).toBe(5)
    }))

  it.effect("a failing worker is logged; the others carry on", () =>
    withLogs((logs) =>
      Effect.gen(function*() {
        let i = 0
        let ok = 0
        yield* TaskRunner.workerGroup({
          job: Effect.suspend(() => i++ === 0 ? Effect.die("first worker panics") : Effect.sync(() => ok++)),
          workers: 3
        })
        expect(ok).toBe(2)
        expect(logs.filter((l) => l.message === "task failed")).toHaveLength(1)
      })
    ))

  it.effect("bad workers → InvalidOptionsError", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(TaskRunner.workerGroup({ job: Effect.void, workers: 0 }))
      expect(Either.isLeft(result) && result.left.option).toBe("workers")
    }))
})

describe("TaskRunner.makeOrdered (go-zero StableRunner)", () => {
  it.scoped("returns results in push order although tasks finish out of order", () =>
    Effect.gen(function*() {
      const buffer = 8
      const size = buffer * 2
      const runner = yield* TaskRunner.makeOrdered(
        (v: number) => Effect.sleep(`${(v * 7) % 10} millis`).pipe(Effect.as(v + 0.5)),
        { concurrency: 4, buffer }
      )
      const producer = yield* Effect.fork(
        Effect.forEach(Array.from({ length: size }, (_, i) => i), (i) => runner.push(i)).pipe(
          Effect.zipRight(runner.close)
        )
      )
      const consumer = yield* Effect.fork(Stream.runCollect(runner.results))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(producer)).toBeUndefined()
      const values = Chunk.toReadonlyArray(yield* Fiber.join(consumer))
      expect(values).toEqual(Array.from({ length: size }, (_, i) => i + 0.5))
      // closed: pushes are refused, takes find nothing
      expect(yield* runner.push(1)).toBe(false)
      expect(yield* runner.take).toEqual(Option.none())
    }))

  it.scoped("runs at most `concurrency` tasks and pushes wait while `buffer` results are untaken", () =>
    Effect.gen(function*() {
      let running = 0
      let peak = 0
      const runner = yield* TaskRunner.makeOrdered(
        (v: number) =>
          Effect.sync(() => peak = Math.max(peak, ++running)).pipe(
            Effect.zipRight(Effect.sleep("1 millis")),
            Effect.ensuring(Effect.sync(() => running--)),
            Effect.as(v)
          ),
        { concurrency: 2, buffer: 3 }
      )
      let pushed = 0
      const producer = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => Effect.tap(runner.push(i), () => pushed++))
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(pushed).toBe(3)
      expect(peak).toBe(2)
      const taken: Array<number> = []
      for (let i = 0; i < 10; i++) {
        taken.push(Option.getOrThrow(yield* runner.take))
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      yield* Fiber.join(producer)
      expect(taken).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(peak).toBe(2)
    }))

  it.scoped("a failed task surfaces at its own take; later results still arrive", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.makeOrdered(
        (v: number) => v === 1 ? Effect.fail(`bad ${v}`) : Effect.succeed(v),
        { concurrency: 2 }
      )
      for (const v of [0, 1, 2]) yield* runner.push(v)
      yield* runner.close
      expect(yield* runner.take).toEqual(Option.some(0))
      expect(yield* Effect.either(runner.take)).toEqual(Either.left("bad 1"))
      expect(yield* runner.take).toEqual(Option.some(2))
      expect(yield* runner.take).toEqual(Option.none())
    }))

  it.scoped("an interrupted take does not lose the result", () =>
    Effect.gen(function*() {
      const runner = yield* TaskRunner.makeOrdered(
        (v: number) => Effect.sleep("1 second").pipe(Effect.as(v)),
        { concurrency: 1 }
      )
      yield* runner.push(7)
      const taker = yield* Effect.fork(runner.take)
      yield* settle
      yield* Fiber.interrupt(taker)
      yield* TestClock.adjust("1 second")
      expect(yield* runner.take).toEqual(Option.some(7))
    }))

  it.scoped("bad options → InvalidOptionsError", () =>
    Effect.gen(function*() {
      const a = yield* Effect.either(TaskRunner.makeOrdered(Effect.succeed, { concurrency: 0 }))
      expect(Either.isLeft(a) && a.left.option).toBe("concurrency")
      const b = yield* Effect.either(TaskRunner.makeOrdered(Effect.succeed, { concurrency: 1, buffer: -2 }))
      expect(Either.isLeft(b) && b.left.option).toBe("buffer")
    }))
})
