import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Config,
  ConfigProvider,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  HashMap,
  Layer,
  Logger,
  Scope,
  Supervisor,
  TestClock
} from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { BulkheadFullError, InvalidOptionsError, UnknownNameError } from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"
import { failureOf, settle } from "./support.js"

const hold = (bulkhead: Bulkhead.Bulkhead) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
    yield* settle
    return { release: Deferred.succeed(gate, undefined), fiber }
  })

describe("Bulkhead", () => {
  describe("options", () => {
    const invalid = (options: unknown, option: string) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(Bulkhead.make(options as Bulkhead.Options))
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left).toBeInstanceOf(InvalidOptionsError)
          expect(result.left.option).toBe(option)
        }
      })

    it.scoped("rejects bad options with InvalidOptionsError naming the option", () =>
      Effect.gen(function*() {
        yield* invalid({ name: "x", maxConcurrent: 0 }, "maxConcurrent")
        yield* invalid({ name: "x", maxConcurrent: 1.5 }, "maxConcurrent")
        yield* invalid({ name: "x", maxConcurrent: Number.NaN }, "maxConcurrent")
        yield* invalid({ name: "x", maxConcurrent: 1, maxQueue: -1 }, "maxQueue")
        yield* invalid({ name: "x", maxConcurrent: 1, queueTimeout: "-1 second" }, "queueTimeout")
        yield* invalid({ name: "x", maxConcurrent: 1, queueTimeout: 0 }, "queueTimeout")
        yield* invalid({ name: "", maxConcurrent: 1 }, "name")
      }))

    it.scoped("defaults maxQueue to 0", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "defaults", maxConcurrent: 2 })
        const stats = yield* bulkhead.stats
        expect(stats).toEqual({ active: 0, queued: 0, rejected: 0, timedOut: 0, maxConcurrent: 2, maxQueue: 0 })
      }))
  })

  it.scoped("runs at most maxConcurrent at once (observed inside the work)", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "cap", maxConcurrent: 3, maxQueue: 100 })
      let running = 0
      let peak = 0
      const work = Effect.gen(function*() {
        running++
        peak = Math.max(peak, running)
        yield* Effect.sleep("1 second")
        running--
      })
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 20 }), () => bulkhead.protect(work), { concurrency: "unbounded" })
      )
      yield* settle
      expect(running).toBe(3)
      expect(yield* bulkhead.stats).toMatchObject({ active: 3, queued: 17 })
      yield* TestClock.adjust("10 seconds")
      const results = yield* Fiber.join(fiber)
      expect(results).toHaveLength(20)
      expect(peak).toBe(3)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
    }))

  it.scoped("serves the queue in FIFO order and hands permits over directly", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "fifo", maxConcurrent: 1, maxQueue: 10 })
      const { release } = yield* hold(bulkhead)
      const order: Array<number> = []
      const fibers: Array<Fiber.RuntimeFiber<void, BulkheadFullError>> = []
      for (let i = 0; i < 6; i++) {
        fibers.push(yield* Effect.fork(bulkhead.protect(Effect.sync(() => order.push(i)).pipe(Effect.asVoid))))
        yield* settle
      }
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 6 })
      yield* release
      yield* Effect.forEach(fibers, Fiber.join)
      expect(order).toEqual([0, 1, 2, 3, 4, 5])
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("a newcomer never overtakes a queued caller", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "no-barging", maxConcurrent: 1, maxQueue: 1 })
      const { release } = yield* hold(bulkhead)
      const order: Array<string> = []
      const queued = yield* Effect.fork(bulkhead.protect(Effect.sync(() => order.push("queued"))))
      yield* settle
      // the permit is handed to the waiter, so a newcomer finds no free permit and a full queue
      yield* release
      const newcomer = yield* Effect.exit(bulkhead.tryProtect(Effect.sync(() => order.push("newcomer"))))
      yield* Fiber.join(queued)
      expect(order).toEqual(["queued"])
      expect(failureOf(newcomer).reason).toBe("full")
    }))

  it.scoped("rejects with reason \"full\" when permits and queue are taken", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "full", maxConcurrent: 1, maxQueue: 1 })
      const { release } = yield* hold(bulkhead)
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.succeed("waited")))
      yield* settle
      const rejected = yield* Effect.exit(bulkhead.protect(Effect.succeed("never")))
      const error = failureOf(rejected)
      expect(error).toBeInstanceOf(BulkheadFullError)
      expect(error).toMatchObject({ bulkhead: "full", reason: "full", maxConcurrent: 1, maxQueue: 1 })
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 1, rejected: 1 })
      yield* release
      expect(yield* Fiber.join(waiter)).toBe("waited")
    }))

  it.scoped("tryProtect never queues", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "try", maxConcurrent: 1, maxQueue: 5 })
      const { release } = yield* hold(bulkhead)
      const rejected = yield* Effect.exit(bulkhead.tryProtect(Effect.void))
      expect(failureOf(rejected).reason).toBe("full")
      expect(yield* bulkhead.stats).toMatchObject({ queued: 0, rejected: 1 })
      yield* release
      yield* settle
      expect(yield* bulkhead.tryProtect(Effect.succeed(1))).toBe(1)
    }))

  it.scoped("a queued caller gives up after queueTimeout (TestClock)", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "qt", maxConcurrent: 1, maxQueue: 2, queueTimeout: "1 second" })
      const { release } = yield* hold(bulkhead)
      let ran = false
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.sync(() => (ran = true))))
      yield* settle
      yield* TestClock.adjust("999 millis")
      expect(waiter.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(waiter)
      expect(failureOf(exit).reason).toBe("queue-timeout")
      expect(ran).toBe(false)
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 0, timedOut: 1, rejected: 0 })
      yield* release
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("a permit handed over as the queue timeout fires is never lost", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({
        name: "qt-race",
        maxConcurrent: 1,
        maxQueue: 5,
        queueTimeout: "1 second"
      })
      // the holder finishes at the very instant the waiters' timeouts fire
      const holder = yield* Effect.fork(bulkhead.protect(Effect.sleep("1 second")))
      yield* settle
      const waiters = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.fork(Effect.exit(bulkhead.protect(Effect.sleep("1 second")))),
        { concurrency: "unbounded" }
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      yield* TestClock.adjust("5 seconds")
      const exits = yield* Effect.forEach(waiters, Fiber.join)
      const served = exits.filter(Exit.isSuccess).length
      const timedOut = exits.filter((exit) => Exit.isFailure(exit) && failureOf(exit).reason === "queue-timeout").length
      expect(served + timedOut).toBe(5)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, timedOut })
      expect(yield* bulkhead.tryProtect(Effect.succeed("free"))).toBe("free")
    }))

  it.scoped("a waiter interrupted just as a permit is handed to it passes the permit on", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "grant-race", maxConcurrent: 1, maxQueue: 2 })
      let ranW = false
      let w: Fiber.RuntimeFiber<unknown, unknown> | undefined
      yield* bulkhead.protect(Effect.gen(function*() {
        w = yield* Effect.fork(bulkhead.protect(Effect.sync(() => (ranW = true))))
        yield* settle
        // the interrupt reaches w before w runs again; then our release hands it the permit
        w.unsafeInterruptAsFork(FiberId.none)
      }))
      expect(Exit.isInterrupted(yield* Fiber.await(w!))).toBe(true)
      expect(ranW).toBe(false)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
      expect(yield* bulkhead.tryProtect(Effect.succeed("free"))).toBe("free")
    }))

  it.scoped("a caller timed out by Effect.timeout frees the permit of interruptible work", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "timeout-ok", maxConcurrent: 1 })
      let interrupted = false
      const work = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const caller = yield* Effect.fork(bulkhead.protect(work).pipe(Effect.timeout("1 second")))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(Exit.isFailure(yield* Fiber.await(caller))).toBe(true)
      expect(interrupted).toBe(true)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0 })
    }))

  it.scoped("no fiber is left behind by queueing, timing out or being interrupted", () =>
    Effect.gen(function*() {
      // TestClock forks its warning fiber on the first sleep: trigger it outside the supervised region
      yield* Fiber.interrupt(yield* Effect.fork(Effect.sleep("1 hour")).pipe(Effect.tap(settle)))
      const supervisor = yield* Supervisor.track
      const bulkhead = yield* Bulkhead.make({ name: "fibers", maxConcurrent: 1, maxQueue: 3, queueTimeout: "1 second" })
      const { release } = yield* hold(bulkhead)
      const run = Effect.gen(function*() {
        const timedOut = yield* Effect.fork(Effect.exit(bulkhead.protect(Effect.void)))
        const interrupted = yield* Effect.fork(bulkhead.protect(Effect.void))
        const alsoTimedOut = yield* Effect.fork(Effect.exit(bulkhead.protect(Effect.void)))
        yield* settle
        expect((yield* supervisor.value).length).toBeGreaterThan(0)
        yield* Fiber.interrupt(interrupted)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(timedOut)
        yield* Fiber.join(alsoTimedOut)
      }).pipe(Effect.supervised(supervisor))
      yield* Effect.fork(run).pipe(Effect.flatMap(Fiber.join))
      yield* release
      yield* settle
      expect((yield* supervisor.value).length).toBe(0)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, timedOut: 2 })
    }))

  it.scoped("a queued caller served before queueTimeout runs normally", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "qt-ok", maxConcurrent: 1, maxQueue: 1, queueTimeout: "1 second" })
      const { release } = yield* hold(bulkhead)
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.succeed("served")))
      yield* TestClock.adjust("500 millis")
      yield* release
      expect(yield* Fiber.join(waiter)).toBe("served")
      yield* TestClock.adjust("5 seconds")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, timedOut: 0 })
    }))

  it.scoped("an interrupted waiter leaves the queue at once and frees its slot", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "int-waiter", maxConcurrent: 1, maxQueue: 1 })
      const { release } = yield* hold(bulkhead)
      let ranA = false
      const a = yield* Effect.fork(bulkhead.protect(Effect.sync(() => (ranA = true))))
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ queued: 1 })
      yield* Fiber.interrupt(a)
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 0 })
      // its slot is free again: a new caller is queued, not rejected
      const b = yield* Effect.fork(bulkhead.protect(Effect.succeed("b")))
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ queued: 1, rejected: 0 })
      yield* release
      expect(yield* Fiber.join(b)).toBe("b")
      expect(ranA).toBe(false)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("work still running after its caller timed out keeps its permit until it stops", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "held", maxConcurrent: 1 })
      let finished = false
      const stubborn = Effect.uninterruptible(Effect.sleep("10 seconds").pipe(Effect.tap(() => (finished = true))))
      // disconnect: the caller gives up after 1 second even though the work cannot be interrupted
      const caller = yield* Effect.fork(
        bulkhead.protect(stubborn).pipe(Effect.disconnect, Effect.timeout("1 second"))
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(caller)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(finished).toBe(false)
      // the caller is gone, the work is not: its permit is still taken
      expect(yield* bulkhead.stats).toMatchObject({ active: 1 })
      expect(failureOf(yield* Effect.exit(bulkhead.tryProtect(Effect.void))).reason).toBe("full")
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(finished).toBe(true)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0 })
      expect(yield* bulkhead.tryProtect(Effect.succeed("free"))).toBe("free")
    }))

  it.scoped("a slow finalizer keeps the permit until it has run", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "finalizer", maxConcurrent: 1 })
      const work = Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("5 seconds")))
      const fiber = yield* Effect.fork(bulkhead.protect(work))
      yield* settle
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 1 })
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(interrupting)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0 })
    }))

  it.scoped("permits never leak: 10,000 calls that fail, defect or are interrupted", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "leak", maxConcurrent: 4, maxQueue: 10_000 })
      const outcomes = [
        Effect.fail("boom"),
        Effect.die(new Error("defect")),
        Effect.interrupt,
        Effect.yieldNow().pipe(Effect.zipRight(Effect.fail("late"))),
        Effect.sync(() => {
          throw new Error("thrown")
        })
      ] as const
      const exits = yield* Effect.forEach(
        Array.from({ length: 10_000 }, (_, i) => i),
        (i) => Effect.exit(bulkhead.protect(outcomes[i % outcomes.length])),
        { concurrency: 64 }
      )
      expect(exits.every(Exit.isFailure)).toBe(true)
      // and callers interrupted from outside, while running and while queued
      const fibers = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => Effect.fork(bulkhead.protect(Effect.never)),
        { concurrency: "unbounded" }
      )
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 4, queued: 196 })
      yield* Effect.forEach(fibers.slice().reverse(), Fiber.interrupt, { discard: true })
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
      // every permit is free: four callers can hold one at the same time
      const gate = yield* Deferred.make<void>()
      const holders = yield* Effect.forEach(
        Array.from({ length: 4 }),
        () => Effect.fork(bulkhead.tryProtect(Deferred.await(gate)))
      )
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 4 })
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(holders, Fiber.join)
    }))

  it.scoped("failures and defects reach the caller unchanged", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "passthrough", maxConcurrent: 1 })
      const failed = yield* Effect.exit(bulkhead.protect(Effect.fail("boom" as const)))
      expect(failureOf(failed)).toBe("boom")
      const died = yield* Effect.exit(bulkhead.protect(Effect.die("kaput")))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      if (Exit.isFailure(died)) expect(Cause.squash(died.cause)).toBe("kaput")
    }))

  it.scoped("protect is dual", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "dual", maxConcurrent: 1 })
      expect(yield* Bulkhead.protect(bulkhead, Effect.succeed(1))).toBe(1)
      expect(yield* Effect.succeed(2).pipe(Bulkhead.protect(bulkhead))).toBe(2)
      expect(yield* Bulkhead.protect(Effect.succeed(3), bulkhead)).toBe(3)
      expect(yield* Effect.succeed(4).pipe(Bulkhead.tryProtect(bulkhead))).toBe(4)
      expect(yield* Bulkhead.tryProtect(bulkhead, Effect.succeed(5))).toBe(5)
      expect(yield* Bulkhead.tryProtect(Effect.succeed(6), bulkhead)).toBe(6)
    }))

  it.effect("closing the scope rejects queued callers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const bulkhead = yield* Scope.extend(Bulkhead.make({ name: "closing", maxConcurrent: 1, maxQueue: 3 }), scope)
      const { release } = yield* hold(bulkhead)
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.void))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(failureOf(yield* Fiber.await(waiter)).reason).toBe("full")
      expect(failureOf(yield* Effect.exit(bulkhead.protect(Effect.void))).reason).toBe("full")
      yield* release
      yield* settle
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("updates resilience_bulkhead_active, _queued and _rejected_total; the series go with the bulkhead", () =>
    Effect.gen(function*() {
      const metric = (name: string, labels: Record<string, string> = {}) =>
        Effect.map(
          Metrics.snapshot,
          (samples) =>
            samples.find((s) =>
              s.metric === name && s.labels.name === "metrics-bh" &&
              Object.entries(labels).every(([k, v]) => s.labels[k] === v)
            )?.value
        )
      const scope = yield* Scope.make()
      const bulkhead = yield* Bulkhead.make({ name: "metrics-bh", maxConcurrent: 1, maxQueue: 1 }).pipe(
        Scope.extend(scope)
      )
      const { release } = yield* hold(bulkhead)
      expect(yield* metric("resilience_bulkhead_active")).toBe(1)
      const queued = yield* Effect.fork(bulkhead.protect(Effect.void))
      yield* settle
      expect(yield* metric("resilience_bulkhead_queued")).toBe(1)
      yield* Effect.exit(bulkhead.protect(Effect.void))
      expect(yield* metric("resilience_bulkhead_rejected_total", { reason: "full" })).toBe(1)
      expect(yield* metric("resilience_bulkhead_rejected_total", { reason: "queue-timeout" })).toBe(0)
      yield* release
      yield* Fiber.join(queued)
      expect(yield* metric("resilience_bulkhead_active")).toBe(0)
      expect(yield* metric("resilience_bulkhead_queued")).toBe(0)
      yield* Scope.close(scope, Exit.void)
      expect(yield* metric("resilience_bulkhead_active")).toBeUndefined()
    }).pipe(Metrics.withInstanceRegistry()))

  it.scoped("a holder interrupted mid-work hands its permit to the queue when its fiber exits", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "handover", maxConcurrent: 1, maxQueue: 1 })
      const holder = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.succeed("served")))
      yield* settle
      yield* Fiber.interrupt(holder)
      expect(yield* Fiber.join(waiter)).toBe("served")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.scoped("the permit of work interrupted inside an uninterruptible caller comes back when that caller's fiber ends", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "outer-cleanup", maxConcurrent: 1 })
      const caller = yield* Effect.fork(
        Effect.uninterruptibleMask((restore) =>
          Effect.exit(restore(bulkhead.protect(Effect.never))).pipe(Effect.zipLeft(Effect.sleep("1 second")))
        )
      )
      yield* settle
      caller.unsafeInterruptAsFork(FiberId.none)
      yield* settle
      // the work stopped, but its fiber still runs its own cleanup: the permit is not handed out yet
      expect(yield* bulkhead.stats).toMatchObject({ active: 1 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(caller)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0 })
      expect(yield* bulkhead.tryProtect(Effect.succeed("free"))).toBe("free")
    }))

  it.scoped("an unknown option is an InvalidOptionsError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Bulkhead.make({ name: "x", maxConcurrent: 1, maxConcurency: 2 } as any))
      expect(error).toMatchObject({ option: "maxConcurency", value: 2 })
    }))

  it.scoped("logs one warning per overload episode", () =>
    Effect.gen(function*() {
      const messages: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        messages.push({
          message: Array.isArray(message) ? message[0] : message,
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      yield* Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "noisy", maxConcurrent: 1 })
        const first = yield* hold(bulkhead)
        for (let i = 0; i < 5; i++) yield* Effect.exit(bulkhead.protect(Effect.void))
        expect(messages).toHaveLength(1)
        expect(messages[0].message).toBe("bulkhead saturated: rejecting calls")
        expect(messages[0].annotations).toMatchObject({ module: "Bulkhead", bulkhead: "noisy", maxConcurrent: 1 })
        yield* first.release
        yield* Fiber.join(first.fiber)
        // capacity came back: the next overload is a new episode
        const second = yield* hold(bulkhead)
        yield* Effect.exit(bulkhead.protect(Effect.void))
        expect(messages).toHaveLength(2)
        yield* second.release
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    }))

  describe("Registry", () => {
    it.scoped("registers, protects by name, and reports stats for all", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry([{ name: "users", maxConcurrent: 2 }])
        yield* registry.register({ name: "orders", maxConcurrent: 1, maxQueue: 1 })
        expect(yield* registry.protect("users", Effect.succeed("u"))).toBe("u")
        const orders = yield* registry.get("orders")
        const { release } = yield* hold(orders)
        const stats = yield* registry.stats
        expect(Object.keys(stats).sort()).toEqual(["orders", "users"])
        expect(stats.orders).toMatchObject({ active: 1, maxConcurrent: 1, maxQueue: 1 })
        expect(stats.users).toMatchObject({ active: 0, maxConcurrent: 2 })
        // bulkheads are isolated: "orders" being busy does not affect "users"
        expect(yield* registry.protect("users", Effect.succeed("still"))).toBe("still")
        yield* release
      }))

    it.scoped("an unknown name is a typed UnknownNameError", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry()
        let ran = false
        const exit = yield* Effect.exit(registry.protect("nope", Effect.sync(() => (ran = true))))
        const error = failureOf(exit)
        expect(error).toBeInstanceOf(UnknownNameError)
        expect(error).toMatchObject({ name: "nope" })
        expect(ran).toBe(false)
        expect(failureOf(yield* Effect.exit(registry.get("nope")))).toBeInstanceOf(UnknownNameError)
      }))

    it.scoped("a duplicate or invalid registration is an InvalidOptionsError", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry([{ name: "a", maxConcurrent: 1 }])
        const dup = failureOf(yield* Effect.exit(registry.register({ name: "a", maxConcurrent: 3 })))
        expect(dup).toBeInstanceOf(InvalidOptionsError)
        expect(dup.option).toBe("name")
        const bad = failureOf(yield* Effect.exit(registry.register({ name: "b", maxConcurrent: -1 })))
        expect(bad.option).toBe("maxConcurrent")
        expect(Object.keys(yield* registry.stats)).toEqual(["a"])
      }))

    it.scoped("two concurrent registrations of one name: exactly one succeeds", () =>
      Effect.gen(function*() {
        // small operation budgets make the two fibers yield to each other inside `register`
        for (const budget of [16, 24, 32, 2048]) {
          const registry = yield* Bulkhead.makeRegistry()
          const results = yield* Effect.all(
            [
              Effect.either(registry.register({ name: "dup", maxConcurrent: 1 })),
              Effect.either(registry.register({ name: "dup", maxConcurrent: 2 }))
            ],
            { concurrency: "unbounded" }
          ).pipe(Effect.withMaxOpsBeforeYield(budget))
          const wins = results.filter(Either.isRight)
          const losses = results.filter(Either.isLeft)
          expect(wins).toHaveLength(1)
          expect(losses).toHaveLength(1)
          expect(losses[0].left).toBeInstanceOf(InvalidOptionsError)
          expect(losses[0].left.option).toBe("name")
          // the registered bulkhead is the winner's
          expect((yield* registry.get("dup")).maxConcurrent).toBe(wins[0].right.maxConcurrent)
        }
      }))

    it.scoped("a failed registration releases its reserved name", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry()
        const bad = failureOf(yield* Effect.exit(registry.register({ name: "x", maxConcurrent: 0 })))
        expect(bad.option).toBe("maxConcurrent")
        const good = yield* registry.register({ name: "x", maxConcurrent: 1 })
        expect(good.name).toBe("x")
        expect(Object.keys(yield* registry.stats)).toEqual(["x"])
      }))

    it.scoped("remove drops a bulkhead, rejecting its queued callers", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry([{ name: "a", maxConcurrent: 1, maxQueue: 1 }])
        const a = yield* registry.get("a")
        const { release } = yield* hold(a)
        const waiter = yield* Effect.fork(a.protect(Effect.void))
        yield* settle
        expect(yield* registry.remove("a")).toBe(true)
        expect(yield* registry.remove("a")).toBe(false)
        expect(failureOf(yield* Fiber.await(waiter))).toMatchObject({ reason: "full" })
        expect(failureOf(yield* Effect.exit(registry.get("a")))).toBeInstanceOf(UnknownNameError)
        yield* release
        expect(yield* registry.names).toEqual([])
      }))

    it.scoped("create builds bulkheads on first use; maxKeys drops the least recently used idle one", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry({
          create: (tenant) => ({ name: `tenant ${tenant}`, maxConcurrent: 1 }),
          maxKeys: 2
        })
        const busy = yield* registry.get("busy")
        const { release } = yield* hold(busy)
        expect(yield* registry.protect("a", Effect.succeed("a"))).toBe("a")
        expect((yield* registry.get("a")).name).toBe("tenant a")
        yield* registry.get("b")
        // "busy" is the least recently used but in use: "a" goes, and "busy" counts as just used
        expect([...(yield* registry.names)].sort()).toEqual(["b", "busy"])
        yield* release
        yield* registry.get("c")
        expect([...(yield* registry.names)].sort()).toEqual(["busy", "c"])
      }))

    it.scoped("idleTimeToLive drops idle bulkheads, never busy ones", () =>
      Effect.gen(function*() {
        const registry = yield* Bulkhead.makeRegistry({
          bulkheads: [{ name: "idle", maxConcurrent: 1 }, { name: "busy", maxConcurrent: 1 }],
          idleTimeToLive: "1 minute"
        })
        const { release } = yield* hold(yield* registry.get("busy"))
        yield* TestClock.adjust("2 minutes")
        expect(yield* registry.names).toEqual(["busy"])
        yield* release
        yield* TestClock.adjust("2 minutes")
        expect(yield* registry.names).toEqual([])
      }))

    it.scoped("registry options are checked", () =>
      Effect.gen(function*() {
        expect((yield* Effect.flip(Bulkhead.makeRegistry({ maxKeys: 0 }))).option).toBe("maxKeys")
        expect((yield* Effect.flip(Bulkhead.makeRegistry({ idleTimeToLive: "never" } as any))).option)
          .toBe("idleTimeToLive")
        expect((yield* Effect.flip(Bulkhead.makeRegistry({ ttl: 5 } as any))).option).toBe("ttl")
      }))

    it.effect("layerRegistry and protectNamed", () =>
      Effect.gen(function*() {
        const value = yield* Effect.succeed(42).pipe(Bulkhead.protectNamed("db"))
        expect(value).toBe(42)
        const unknown = yield* Effect.exit(Effect.void.pipe(Bulkhead.protectNamed("other")))
        expect(failureOf(unknown)).toBeInstanceOf(UnknownNameError)
      }).pipe(Effect.provide(Bulkhead.layerRegistry({ bulkheads: [{ name: "db", maxConcurrent: 5 }] }))))
  })

  it.effect("layer provides a bulkhead under a tag", () => {
    class Db extends Context.Tag("test/DbBulkhead")<Db, Bulkhead.Bulkhead>() {}
    return Effect.gen(function*() {
      const bulkhead = yield* Db
      expect(bulkhead.name).toBe("db")
      expect(bulkhead.maxConcurrent).toBe(3)
      expect(yield* bulkhead.protect(Effect.succeed("ok"))).toBe("ok")
    }).pipe(Effect.provide(Bulkhead.layer(Db, { name: "db", maxConcurrent: 3 })))
  })

  it.effect("layerConfig reads the options from Config", () => {
    class Api extends Context.Tag("test/ConfigBulkhead")<Api, Bulkhead.Bulkhead>() {}
    const config = Config.all({
      name: Config.succeed("api"),
      maxConcurrent: Config.integer("API_MAX_CONCURRENT"),
      maxQueue: Config.integer("API_MAX_QUEUE").pipe(Config.withDefault(0))
    })
    const provider = (entries: ReadonlyArray<[string, string]>) =>
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries)))
    return Effect.gen(function*() {
      const bulkhead = yield* Effect.provide(
        Api,
        Bulkhead.layerConfig(Api, config).pipe(
          Layer.provide(provider([["API_MAX_CONCURRENT", "7"], ["API_MAX_QUEUE", "3"]]))
        )
      )
      expect([bulkhead.maxConcurrent, bulkhead.maxQueue]).toEqual([7, 3])
      const bad = yield* Effect.exit(Effect.provide(
        Api,
        Bulkhead.layerConfig(Api, config).pipe(Layer.provide(provider([["API_MAX_CONCURRENT", "0"]])))
      ))
      expect(failureOf(bad)).toBeInstanceOf(InvalidOptionsError)
    })
  })

  it.effect("layer fails with InvalidOptionsError on bad options", () => {
    class Db extends Context.Tag("test/BadBulkhead")<Db, Bulkhead.Bulkhead>() {}
    return Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.provide(Db, Bulkhead.layer(Db, { name: "db", maxConcurrent: 0 })))
      expect(failureOf(exit)).toBeInstanceOf(InvalidOptionsError)
    })
  })

  it.effect("Duration helpers accept every DurationInput for queueTimeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({
        name: "dur",
        maxConcurrent: 1,
        maxQueue: 1,
        queueTimeout: Duration.millis(250)
      })
      const { release } = yield* hold(bulkhead)
      const waiter = yield* Effect.fork(bulkhead.protect(Effect.void))
      yield* settle
      yield* TestClock.adjust("250 millis")
      expect(failureOf(yield* Fiber.await(waiter)).reason).toBe("queue-timeout")
      yield* release
    })))

  it.effect("layer is usable with Layer.build", () =>
    Effect.scoped(Effect.gen(function*() {
      class T extends Context.Tag("test/BuiltBulkhead")<T, Bulkhead.Bulkhead>() {}
      const context = yield* Layer.build(Bulkhead.layer(T, { name: "built", maxConcurrent: 1 }))
      expect(Context.get(context, T).name).toBe("built")
    })))
})
