import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Exit, Fiber, Option, Stream, Supervisor, TestClock } from "effect"
import { InvalidOptionsError, NoOutputError } from "../src/Errors.js"
import * as MapReduce from "../src/MapReduce.js"

class Dummy extends Error {
  constructor(readonly label = "dummy") {
    super(label)
  }
}
const errDummy = new Dummy()

const settle = Effect.repeatN(Effect.yieldNow(), 50)

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) throw new Error("expected a defect")
  const defects = Chunk.toReadonlyArray(Cause.defects(exit.cause))
  if (defects.length === 0) throw new Error(`expected a defect, got ${Cause.pretty(exit.cause)}`)
  return defects[0]
}

/**
 * Runs `effect` under a tracking supervisor and checks that no fiber it forked is still alive.
 * TestClock forks one helper fiber (its "not advancing the clock" warning) on the first sleep; that
 * sleep happens here, outside the supervised region, so only the fibers of `effect` are counted.
 */
const noFiberLeft = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* Fiber.interrupt(yield* Effect.fork(Effect.sleep("1 hour")).pipe(Effect.tap(settle)))
    const supervisor = yield* Supervisor.track
    const exit = yield* Effect.exit(Effect.supervised(effect, supervisor))
    const alive = yield* supervisor.value
    expect(alive.length).toBe(0)
    return exit
  })

const oneToFour = [1, 2, 3, 4]
const generate = <A>(items: ReadonlyArray<A>) => (emit: (item: A) => Effect.Effect<void>) =>
  Effect.forEach(items, emit, { discard: true })

const sumReducer = (pipe: Stream.Stream<number>, writer: MapReduce.Writer<number>) =>
  Effect.flatMap(Stream.runFold(pipe, 0, (a, b) => a + b), writer.write)

describe("MapReduce.mapReduce", () => {
  const sources = {
    array: oneToFour,
    set: new Set(oneToFour),
    stream: Stream.fromIterable(oneToFour),
    generator: generate(oneToFour)
  } as const

  for (const [kind, source] of Object.entries(sources)) {
    it.effect(`maps and reduces a source given as ${kind}`, () =>
      Effect.gen(function*() {
        const exit = yield* noFiberLeft(MapReduce.mapReduce({
          source: source as MapReduce.Source<number>,
          map: (n: number) => Effect.succeed(n * n),
          initial: 0,
          reduce: (sum, n) => sum + n
        }))
        expect(exit).toEqual(Exit.succeed(30))
      }))
  }

  it.effect("infers item and result types without annotations", () =>
    Effect.gen(function*() {
      const lengths = yield* MapReduce.mapReduce({
        source: ["a", "bb", "ccc"],
        map: (word) => Effect.succeed(word.length),
        initial: [] as Array<number>,
        reduce: (acc, n) => [...acc, n].sort()
      })
      expect(lengths).toEqual([1, 2, 3])
      const fromStream = yield* MapReduce.mapReduce({
        source: Stream.make(1, 2, 3),
        map: (n, cancel) => n > 5 ? cancel("too big" as const) : Effect.succeed(n * 2),
        initial: 0,
        reduce: (a, b) => a + b
      })
      expect(fromStream).toBe(12)
      // a string is an Iterable too
      const letters = yield* MapReduce.mapReduce({
        source: "abc",
        map: (c) => Effect.succeed(c.toUpperCase()),
        initial: "",
        reduce: (acc, c) => acc + c,
        workers: 1
      })
      expect(letters).toBe("ABC")
    }))

  it.effect("cancel with an error stops everything and fails with it", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduce({
        source: oneToFour,
        map: (n: number, cancel) => n % 3 === 0 ? cancel(errDummy) : Effect.succeed(n * n),
        initial: 0,
        reduce: (sum, n) => sum + n
      }))
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("the first cancellation wins", () =>
    Effect.gen(function*() {
      const exit = yield* MapReduce.mapReduce({
        source: [1, 2, 3, 4, 5, 6],
        map: (n: number, cancel) =>
          n >= 3
            ? Effect.sleep(`${10 - n} millis`).pipe(Effect.zipRight(cancel(new Dummy(`cancel-${n}`))))
            : Effect.succeed(n),
        initial: 0,
        reduce: (sum, n) => sum + n,
        workers: 6
      }).pipe(Effect.exit, Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
      expect((failureOf(exit) as Dummy).label).toBe("cancel-6")
    }))

  it.effect("a failing source fails the whole run and interrupts the mappers", () =>
    Effect.gen(function*() {
      let mapped = 0
      const exit = yield* noFiberLeft(MapReduce.mapReduce({
        source: Stream.concat(Stream.fromIterable([1, 2]), Stream.fail(errDummy)),
        map: (n: number) => Effect.sync(() => mapped += n),
        initial: 0,
        reduce: (sum, n) => sum + n
      }))
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("runs at most `workers` mappers at once (observed)", () =>
    Effect.gen(function*() {
      for (const source of [Array.from({ length: 100 }, (_, i) => i), Stream.range(0, 99)] as const) {
        let running = 0
        let peak = 0
        const fiber = yield* Effect.fork(MapReduce.mapReduce({
          source: source as MapReduce.Source<number>,
          map: (n: number) =>
            Effect.gen(function*() {
              running++
              peak = Math.max(peak, running)
              yield* Effect.sleep(`${(n % 7) + 1} millis`)
              running--
              return n
            }),
          initial: 0,
          reduce: (sum, n) => sum + n,
          workers: 4
        }))
        yield* settle
        expect(running).toBe(4)
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toBe(4950)
        expect(peak).toBe(4)
      }
    }))

  it.effect("defaults to 16 workers", () =>
    Effect.gen(function*() {
      let running = 0
      let peak = 0
      const fiber = yield* Effect.fork(MapReduce.forEach({
        source: Array.from({ length: 64 }, (_, i) => i),
        f: () =>
          Effect.sync(() => peak = Math.max(peak, ++running)).pipe(
            Effect.zipRight(Effect.sleep("1 millis")),
            Effect.ensuring(Effect.sync(() => running--))
          )
      }))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(peak).toBe(MapReduce.defaultWorkers)
    }))

  it.effect("a defect in a mapper propagates with its cause and stops the other mappers early", () =>
    Effect.gen(function*() {
      let run = 0
      const exit = yield* noFiberLeft(MapReduce.mapReduce({
        source: Array.from({ length: 1000 }, (_, i) => i),
        map: (n: number) =>
          Effect.sync(() => run++).pipe(
            Effect.zipRight(Effect.yieldNow()),
            Effect.zipRight(Effect.die(new Error(`foo ${n}`)))
          ),
        initial: 0,
        reduce: (sum, n) => sum + n
      }))
      expect(Cause.isDie((exit as Exit.Failure<number, never>).cause)).toBe(true)
      expect(String(defectOf(exit))).toContain("foo")
      expect(run).toBeLessThan(500)
    }))

  it.effect("a defect in the generator propagates", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.forEach({
        source: (_emit: (n: number) => Effect.Effect<void>) => Effect.die("generate panics"),
        f: () => Effect.void
      }))
      expect(defectOf(exit)).toBe("generate panics")
    }))

  it.effect("an iterable that throws is a defect", () =>
    Effect.gen(function*() {
      function* items() {
        yield 1
        throw new Error("iterator broke")
      }
      const exit = yield* noFiberLeft(MapReduce.forEach({ source: items(), f: () => Effect.void, workers: 2 }))
      expect(String(defectOf(exit))).toContain("iterator broke")
    }))

  it.effect("closes an iterator it stops early (generator `finally` runs)", () =>
    Effect.gen(function*() {
      let closed = false
      function* items() {
        try {
          for (let i = 0;; i++) yield i
        } finally {
          closed = true
        }
      }
      const exit = yield* MapReduce.forEach({
        source: items(),
        f: (n: number, cancel) => n === 10 ? cancel(errDummy) : Effect.void,
        workers: 3
      }).pipe(Effect.exit)
      expect(failureOf(exit)).toBe(errDummy)
      expect(closed).toBe(true)
    }))

  it.effect("bad workers → InvalidOptionsError (no silent clamp)", () =>
    Effect.gen(function*() {
      for (const workers of [0, -1, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(MapReduce.mapReduce({
          source: oneToFour,
          map: (n: number) => Effect.succeed(n),
          initial: 0,
          reduce: (a, b) => a + b,
          workers
        }))
        const error = failureOf(exit)
        expect(error).toBeInstanceOf(InvalidOptionsError)
        expect((error as InvalidOptionsError).option).toBe("workers")
      }
      const forEachExit = yield* Effect.exit(MapReduce.forEach({ source: [], f: () => Effect.void, workers: 0 }))
      expect(failureOf(forEachExit)).toBeInstanceOf(InvalidOptionsError)
    }))

  it.effect("interrupting the caller interrupts the source and every mapper", () =>
    Effect.gen(function*() {
      let sourceInterrupted = false
      let mappersInterrupted = 0
      const supervisor = yield* Supervisor.track
      const fiber = yield* Effect.fork(
        MapReduce.forEach({
          source: (emit: (n: number) => Effect.Effect<void>) =>
            Effect.forever(emit(1)).pipe(Effect.onInterrupt(() => Effect.sync(() => sourceInterrupted = true))),
          f: () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => mappersInterrupted++))),
          workers: 3
        }).pipe(Effect.supervised(supervisor))
      )
      yield* settle
      expect((yield* supervisor.value).length).toBeGreaterThanOrEqual(4)
      yield* Fiber.interrupt(fiber)
      expect(sourceInterrupted).toBe(true)
      expect(mappersInterrupted).toBe(3)
      expect((yield* supervisor.value).length).toBe(0)
      expect(yield* Fiber.await(fiber)).toSatisfy(Exit.isInterrupted)
    }))
})

describe("MapReduce.forEach (go-zero TestForEach)", () => {
  const tasks = 1000
  it.effect("all", () =>
    Effect.gen(function*() {
      let count = 0
      yield* MapReduce.forEach({
        source: generate(Array.from({ length: tasks }, (_, i) => i)),
        f: () => Effect.sync(() => count++)
      })
      expect(count).toBe(tasks)
    }))

  it.effect("odd", () =>
    Effect.gen(function*() {
      let count = 0
      yield* MapReduce.forEach({
        source: Array.from({ length: tasks }, (_, i) => i),
        f: (item: number) => Effect.sync(() => item % 2 === 0 && count++)
      })
      expect(count).toBe(tasks / 2)
    }))
})

describe("MapReduce.mapReduceWriter (go-zero MapReduce)", () => {
  const square = (n: number, writer: MapReduce.Writer<number>) => writer.write(n * n)

  it.effect("simple", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: generate(oneToFour),
        mapper: square,
        reducer: sumReducer
      }))
      expect(exit).toEqual(Exit.succeed(30))
    }))

  it.effect("a mapper may write nothing (filter) or several values", () =>
    Effect.gen(function*() {
      const result = yield* MapReduce.mapReduceWriter({
        source: [1, 2, 3, 4, 5],
        mapper: (n: number, writer: MapReduce.Writer<number>) =>
          n % 2 === 0 ? Effect.void : Effect.zipRight(writer.write(n), writer.write(n)),
        reducer: sumReducer
      })
      expect(result).toBe(18)
    }))

  it.effect("cancel with error in a mapper", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: generate(oneToFour),
        mapper: (n: number, writer: MapReduce.Writer<number>, cancel) =>
          n % 3 === 0 ? cancel(errDummy) : writer.write(n * n),
        reducer: sumReducer
      }))
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("cancel with more: the reducer cancels", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: generate(oneToFour),
        mapper: square,
        reducer: (pipe, writer: MapReduce.Writer<number>, cancel) =>
          Effect.gen(function*() {
            let result = 0
            yield* Stream.runForEach(pipe, (n) => {
              result += n
              return result > 10 ? cancel(errDummy) : Effect.void
            })
            yield* writer.write(result)
          })
      }))
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("a reducer writing twice is a defect, as go-zero panics", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: Array.from({ length: 10 }, (_, i) => i),
        mapper: (n: number, writer: MapReduce.Writer<number>) => writer.write(n),
        reducer: (pipe, writer: MapReduce.Writer<string>) =>
          Stream.runDrain(pipe).pipe(Effect.zipRight(writer.write("one")), Effect.zipRight(writer.write("two")))
      }))
      expect(String(defectOf(exit))).toContain("more than one element written in reducer")
    }))

  it.effect("a reducer that never writes fails with NoOutputError", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: [1, 2, 3],
        mapper: (n: number, writer: MapReduce.Writer<number>) => writer.write(n),
        reducer: (pipe, _writer: MapReduce.Writer<number>) => Stream.runDrain(pipe)
      }))
      expect(failureOf(exit)).toBeInstanceOf(NoOutputError)
    }))

  it.effect("a defect in the reducer propagates and interrupts the mappers", () =>
    Effect.gen(function*() {
      let mapperInterrupted = false
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: [0, 1],
        mapper: (n: number, writer: MapReduce.Writer<number>) =>
          n === 0
            ? writer.write(n)
            : Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => mapperInterrupted = true))),
        reducer: (pipe, _writer: MapReduce.Writer<number>) => Stream.runForEach(pipe, () => Effect.dieMessage("panic"))
      }))
      expect(String(defectOf(exit))).toContain("panic")
      expect(mapperInterrupted).toBe(true)
    }))

  it.effect("a defect in a mapper and in the reducer: the run dies", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: [0, 1],
        mapper: () => Effect.die("foo"),
        reducer: (_pipe, _writer: MapReduce.Writer<number>) =>
          Effect.yieldNow().pipe(Effect.zipRight(Effect.die("bar")))
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(["foo", "bar"]).toContain(defectOf(exit))
    }))

  it.effect("panic once: a mapper defect ends the run even with a reducer that would die too", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: Array.from({ length: 100 }, (_, i) => i),
        mapper: (n: number, writer: MapReduce.Writer<number>) => n === 0 ? Effect.die("foo") : writer.write(n),
        reducer: (pipe, _writer: MapReduce.Writer<number>) => Stream.runForEach(pipe, () => Effect.die("bar"))
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }))

  it.effect("a reducer that returns early interrupts the mappers still running", () =>
    Effect.gen(function*() {
      let interrupted = 0
      const exit = yield* noFiberLeft(MapReduce.mapReduceWriter({
        source: Array.from({ length: 8 }, (_, i) => i),
        mapper: (n: number, writer: MapReduce.Writer<number>) =>
          n === 0
            ? writer.write(n)
            : Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++))),
        reducer: (pipe, writer: MapReduce.Writer<number>) =>
          Stream.runHead(pipe).pipe(Effect.flatMap((head) => writer.write(Option.getOrElse(head, () => -1)))),
        workers: 4
      }))
      expect(exit).toEqual(Exit.succeed(0))
      // one mapper wrote and moved on to the next item: four are in flight when the reducer returns
      expect(interrupted).toBe(4)
    }))
})

describe("MapReduce.mapReduceVoid (go-zero MapReduceVoid)", () => {
  const run = (
    mapper: (n: number, writer: MapReduce.Writer<number>, cancel: MapReduce.Cancel) => Effect.Effect<void, Dummy>,
    reducer?: (pipe: Stream.Stream<number>, cancel: MapReduce.Cancel) => Effect.Effect<void, Dummy>
  ) =>
    Effect.gen(function*() {
      let value = 0
      const exit = yield* noFiberLeft(MapReduce.mapReduceVoid({
        source: generate(oneToFour),
        mapper,
        reducer: reducer ?? ((pipe) => Stream.runForEach(pipe, (n) => Effect.sync(() => value += n)))
      }))
      return { exit, value }
    })

  it.effect("simple", () =>
    Effect.gen(function*() {
      const { exit, value } = yield* run((n, writer) => writer.write(n * n))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(value).toBe(30)
    }))

  it.effect("cancel with error", () =>
    Effect.gen(function*() {
      const { exit } = yield* run((n, writer, cancel) => n % 3 === 0 ? cancel(errDummy) : writer.write(n * n))
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("cancel with more (reducer)", () =>
    Effect.gen(function*() {
      let value = 0
      const { exit } = yield* run(
        (n, writer) => writer.write(n * n),
        (pipe, cancel) =>
          Stream.runForEach(pipe, (n) => {
            value += n
            return value > 10 ? cancel(errDummy) : Effect.void
          })
      )
      expect(failureOf(exit)).toBe(errDummy)
    }))

  it.effect("with delay: values reach the reducer in completion order (TestClock)", () =>
    Effect.gen(function*() {
      const result: Array<number> = []
      const fiber = yield* Effect.fork(MapReduce.mapReduceVoid({
        source: generate([0, 1]),
        mapper: (i: number, writer: MapReduce.Writer<number>) =>
          (i === 0 ? Effect.sleep("50 millis") : Effect.void).pipe(Effect.zipRight(writer.write(i))),
        reducer: (pipe) => Stream.runForEach(pipe, (i) => Effect.sync(() => result.push(i)))
      }))
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(fiber)
      expect(result).toEqual([1, 0])
    }))

  it.effect("cancel with leftover items: the generator is stopped, nothing leaks", () =>
    Effect.gen(function*() {
      const workers = MapReduce.defaultWorkers
      let generatorDone = false
      let generatorInterrupted = false
      let emitted = 0
      const exit = yield* noFiberLeft(MapReduce.mapReduceVoid({
        source: (emit: (n: number) => Effect.Effect<void>) =>
          Effect.gen(function*() {
            for (let i = 0; i < workers * 4; i++) {
              yield* emit(i)
              emitted++
            }
            generatorDone = true
          }).pipe(Effect.onInterrupt(() => Effect.sync(() => generatorInterrupted = true))),
        mapper: (i: number, writer: MapReduce.Writer<number>, cancel) =>
          i === workers / 2
            ? cancel(new Dummy("anything"))
            : Effect.sleep("1 second").pipe(Effect.zipRight(writer.write(i))),
        reducer: (pipe) => Stream.runDrain(pipe)
      }))
      expect((failureOf(exit) as Dummy).label).toBe("anything")
      expect(generatorDone).toBe(false)
      expect(generatorInterrupted).toBe(true)
      expect(emitted).toBeLessThan(workers * 4)
    }))

  it.effect("a defect in the reducer with one worker", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.mapReduceVoid({
        source: generate(Array.from({ length: 32 }, (_, i) => i)),
        mapper: (i: number, writer: MapReduce.Writer<number>) => writer.write(i),
        reducer: () => Effect.die("foo"),
        workers: 1
      }))
      expect(defectOf(exit)).toBe("foo")
    }))
})

describe("MapReduce.finish / finishVoid", () => {
  it.effect("finish runs all concurrently and returns their results", () =>
    Effect.gen(function*() {
      let total = 0
      const results = yield* MapReduce.finish(
        Effect.sync(() => (total += 2)),
        Effect.sync(() => (total += 3)).pipe(Effect.as("three")),
        Effect.sync(() => (total += 5))
      )
      expect(total).toBe(10)
      expect(results).toEqual([2, "three", 10])
    }))

  it.effect("finish with no effects succeeds", () =>
    Effect.gen(function*() {
      expect(yield* MapReduce.finish()).toEqual([])
      yield* MapReduce.finishVoid()
    }))

  it.effect("the first failure interrupts the rest (one or two errors)", () =>
    Effect.gen(function*() {
      let interrupted = 0
      const slow = Effect.sleep("1 hour").pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++)))
      const one = yield* noFiberLeft(MapReduce.finish(Effect.fail(errDummy), slow, slow))
      expect(failureOf(one)).toBe(errDummy)
      expect(interrupted).toBe(2)
      const two = yield* noFiberLeft(MapReduce.finishVoid(Effect.fail(errDummy), Effect.fail(errDummy), slow))
      expect(failureOf(two)).toBe(errDummy)
      expect(interrupted).toBe(3)
    }))

  it.effect("finishVoid runs every effect", () =>
    Effect.gen(function*() {
      let total = 0
      yield* MapReduce.finishVoid(
        Effect.sync(() => (total += 2)),
        Effect.sync(() => (total += 3)),
        Effect.sync(() => (total += 5))
      )
      expect(total).toBe(10)
    }))

  it.effect("a defect in finish propagates with its cause", () =>
    Effect.gen(function*() {
      const exit = yield* noFiberLeft(MapReduce.finishVoid(Effect.die("boom"), Effect.never))
      expect(defectOf(exit)).toBe("boom")
    }))
})
