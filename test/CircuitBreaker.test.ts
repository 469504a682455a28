import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import { BulkheadFullError, CircuitOpenError, InvalidOptionsError, TimeoutError } from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"

const boom = Effect.fail("boom" as const)
const ok = Effect.succeed("ok" as const)

/** The value of one instance metric sample (undefined when the series does not exist). */
const metric = (name: string, labels: Record<string, string>) =>
  Effect.map(
    Metrics.snapshot,
    (samples) =>
      samples.find((s) => s.metric === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value))
        ?.value
  )

const rejectedWith = (r: Either.Either<unknown, unknown>): CircuitOpenError => {
  if (Either.isLeft(r) && r.left instanceof CircuitOpenError) return r.left
  throw new Error(`expected a CircuitOpenError, got ${JSON.stringify(r)}`)
}

/** Runs `self` with a logger that interrupts the logging fiber as it logs a message containing `text`. */
const interruptedWhenLogging = (text: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provide(
    self,
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ message }) => {
        if (!String(message).includes(text)) return
        const fiber = Option.getOrUndefined(Fiber.getCurrentFiber())
        fiber?.unsafeInterruptAsFork(fiber.id())
      })
    )
  )

/** Collects the next `n` state changes in a background fiber (subscribed before returning). */
const collectChanges = (breaker: CircuitBreaker.CircuitBreaker, n: number) =>
  Effect.gen(function*() {
    const fiber = yield* breaker.changes.pipe(Stream.take(n), Stream.runCollect, Effect.fork)
    yield* Effect.yieldNow()
    yield* Effect.yieldNow()
    return Effect.map(Fiber.join(fiber), (c) => Chunk.toArray(c).map((s) => `${s.from}→${s.to}`))
  })

const machinePolicies = (name: string, openFor: CircuitBreaker.OpenFor = "10 seconds", halfOpenMaxCalls = 1) =>
  [
    [
      "consecutive",
      CircuitBreaker.consecutive({ name: `${name}-consecutive`, threshold: 3, openFor, halfOpenMaxCalls })
    ],
    [
      "countWindow",
      CircuitBreaker.countWindow({
        name: `${name}-count`,
        size: 3,
        minimumCalls: 3,
        failureRateThreshold: 1,
        openFor,
        halfOpenMaxCalls
      })
    ],
    [
      "timeWindow",
      CircuitBreaker.timeWindow({
        name: `${name}-time`,
        window: "10 seconds",
        buckets: 10,
        minimumCalls: 3,
        failureRateThreshold: 1,
        openFor,
        halfOpenMaxCalls
      })
    ],
    [
      "custom",
      CircuitBreaker.custom({
        name: `${name}-custom`,
        readyToTrip: (c) => c.consecutiveFailures >= 3,
        openFor,
        halfOpenMaxCalls
      })
    ]
  ] as const

describe("state-machine breakers (gobreaker scenarios)", () => {
  for (const [label, policy] of machinePolicies("trip")) {
    it.scoped(`${label}: trips after 3 failures, rejects with retryAfter = time to half-open`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(policy)
        expect(yield* breaker.state).toBe("Closed")
        for (let i = 0; i < 2; i++) expect(yield* Effect.either(breaker.protect(boom))).toEqual(Either.left("boom"))
        expect(yield* breaker.state).toBe("Closed")
        expect(yield* Effect.either(breaker.protect(boom))).toEqual(Either.left("boom"))
        expect(yield* breaker.state).toBe("Open")
        let ran = false
        const error = rejectedWith(yield* Effect.either(breaker.protect(Effect.sync(() => (ran = true)))))
        expect(ran).toBe(false)
        expect(error.state).toBe("Open")
        expect(error.breaker).toBe(breaker.name)
        expect(Duration.toMillis(error.retryAfter!)).toBe(10_000)
        yield* TestClock.adjust("4 seconds")
        const later = rejectedWith(yield* Effect.either(breaker.protect(ok)))
        expect(Duration.toMillis(later.retryAfter!)).toBe(6_000)
      }))

    it.scoped(`${label}: half-open admits halfOpenMaxCalls probes, closes after that many successes`, () =>
      Effect.gen(function*() {
        const [, p] = machinePolicies("half", "10 seconds", 2).find(([l]) => l === label)!
        const breaker = yield* CircuitBreaker.make(p)
        const changes = yield* collectChanges(breaker, 3)
        for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(boom))
        yield* TestClock.adjust("10 seconds")
        const first = yield* breaker.allow
        expect(yield* breaker.state).toBe("HalfOpen")
        const second = yield* breaker.allow
        const third = rejectedWith(yield* Effect.either(breaker.allow))
        expect(third.state).toBe("HalfOpen")
        yield* first.success
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* second.success
        expect(yield* breaker.state).toBe("Closed")
        expect(yield* changes).toEqual(["Closed→Open", "Open→HalfOpen", "HalfOpen→Closed"])
        expect(yield* breaker.protect(ok)).toBe("ok")
      }))

    it.scoped(`${label}: a failed probe reopens it`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(policy)
        const changes = yield* collectChanges(breaker, 3)
        for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(boom))
        yield* TestClock.adjust("10 seconds")
        expect(yield* Effect.either(breaker.protect(boom))).toEqual(Either.left("boom"))
        expect(yield* breaker.state).toBe("Open")
        expect(Duration.toMillis(rejectedWith(yield* Effect.either(breaker.protect(ok))).retryAfter!)).toBe(10_000)
        expect(yield* changes).toEqual(["Closed→Open", "Open→HalfOpen", "HalfOpen→Open"])
      }))
  }

  it.scoped("custom: interval clears the counts while Closed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.custom({
        name: "interval",
        readyToTrip: (c) => c.totalFailures >= 3,
        interval: "1 minute"
      }))
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(boom))
      expect((yield* breaker.stats).failures).toBe(2)
      yield* TestClock.adjust("1 minute")
      expect((yield* breaker.stats).failures).toBe(0)
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("custom: a call admitted before the interval rolled over is not counted when it ends after (gobreaker)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.custom({
        name: "interval-span",
        readyToTrip: (c) => c.totalFailures >= 2,
        interval: "1 minute"
      }))
      yield* Effect.either(breaker.protect(boom))
      yield* TestClock.adjust("30 seconds")
      // admitted at 30 s, fails at 70 s: after the counts were cleared at 60 s
      const slow = yield* Effect.fork(Effect.either(breaker.protect(Effect.zipRight(Effect.sleep("40 seconds"), boom))))
      yield* TestClock.adjust("40 seconds")
      yield* Fiber.join(slow)
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* breaker.stats).failures).toBe(0)
    }))

  it.scoped("custom: the default readyToTrip is more than 5 consecutive failures (gobreaker)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.custom({ name: "gobreaker-default" }))
      for (let i = 0; i < 5; i++) yield* Effect.either(breaker.protect(boom))
      yield* breaker.protect(ok)
      for (let i = 0; i < 5; i++) yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
      expect(Duration.toMillis(rejectedWith(yield* Effect.either(breaker.protect(ok))).retryAfter!)).toBe(60_000)
    }))

  it.scoped("openFor as a Schedule backs off on repeated trips and starts over once closed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "backoff", threshold: 1, openFor: Schedule.exponential("1 second") })
      )
      const retryAfter = Effect.map(
        Effect.either(breaker.protect(ok)),
        (r) => Duration.toMillis(rejectedWith(r).retryAfter!)
      )
      yield* Effect.either(breaker.protect(boom))
      expect(yield* retryAfter).toBe(1000)
      yield* TestClock.adjust("1 second")
      yield* Effect.either(breaker.protect(boom)) // probe fails
      expect(yield* retryAfter).toBe(2000)
      yield* TestClock.adjust("2 seconds")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* retryAfter).toBe(4000)
      yield* TestClock.adjust("4 seconds")
      expect(yield* breaker.protect(ok)).toBe("ok") // closes
      yield* Effect.either(breaker.protect(boom))
      expect(yield* retryAfter).toBe(1000)
    }))

  it.scoped("an outcome from before a trip is ignored (generations)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "generation", threshold: 2 }))
      const slow = yield* breaker.allow
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("60 seconds")
      const probe = yield* breaker.allow
      yield* slow.success // admitted while Closed: must not close the breaker
      expect(yield* breaker.state).toBe("HalfOpen")
      yield* probe.success
      expect(yield* breaker.state).toBe("Closed")
    }))
})

describe("rate and slow-call rules", () => {
  it.scoped("countWindow trips on the failure rate over the last `size` calls", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.countWindow({ name: "count-rate", size: 10, minimumCalls: 10, failureRateThreshold: 0.5 })
      )
      for (let i = 0; i < 6; i++) yield* breaker.protect(ok)
      for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Closed") // 9 calls < minimumCalls
      yield* Effect.either(breaker.protect(boom)) // 4 / 10
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom)) // the oldest success leaves: 5 / 10
      expect(yield* breaker.state).toBe("Open")
      expect((yield* breaker.stats).failureRate).toBeNaN() // cleared with the new state
    }))

  it.scoped("timeWindow forgets failures older than the window", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.timeWindow({
          name: "time-rate",
          window: "10 seconds",
          minimumCalls: 4,
          failureRateThreshold: 0.5
        })
      )
      for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(boom))
      yield* TestClock.adjust("11 seconds")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* breaker.stats).failureRate).toBe(1)
      yield* breaker.protect(ok)
      yield* Effect.either(breaker.protect(boom))
      yield* breaker.protect(ok)
      expect(yield* breaker.state).toBe("Closed") // 2 / 4 needs a failure to be checked
      yield* Effect.either(breaker.protect(boom)) // 3 / 5
      expect(yield* breaker.state).toBe("Open")
    }))

  for (const kind of ["countWindow", "timeWindow"] as const) {
    it.scoped(`${kind} trips on slow successes`, () =>
      Effect.gen(function*() {
        const options = {
          name: `slow-${kind}`,
          minimumCalls: 4,
          failureRateThreshold: 1,
          slowCallDuration: Duration.seconds(1),
          slowCallRateThreshold: 0.5
        }
        const breaker = yield* CircuitBreaker.make(
          kind === "countWindow"
            ? CircuitBreaker.countWindow({ ...options, size: 4 })
            : CircuitBreaker.timeWindow(options)
        )
        const slowCall = Effect.gen(function*() {
          const fiber = yield* Effect.fork(breaker.protect(Effect.as(Effect.sleep("2 seconds"), "slow")))
          yield* TestClock.adjust("2 seconds")
          return yield* Fiber.join(fiber)
        })
        yield* breaker.protect(ok)
        yield* breaker.protect(ok)
        expect(yield* slowCall).toBe("slow")
        expect(yield* breaker.state).toBe("Closed")
        expect(yield* slowCall).toBe("slow") // 2 slow of 4
        expect(yield* breaker.state).toBe("Open")
      }))
  }
})

describe("outcomes", () => {
  it.scoped("a defect counts as a failure and is re-raised unchanged", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "defect", threshold: 2 }))
      const defect = new Error("kaput")
      const exit = yield* Effect.exit(breaker.protect(Effect.die(defect)))
      expect(exit).toEqual(Exit.die(defect))
      const stats = yield* breaker.stats
      expect(stats.failures).toBe(1)
      expect(stats.lastErrors.map((e) => e.reason)).toEqual([defect])
      yield* Effect.exit(breaker.protect(Effect.die(defect)))
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("excluded errors count as neither; isFailure = false counts as success", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({
        name: "excluded",
        threshold: 2,
        isExcluded: (e) => e === "bad-request",
        isFailure: (e) => e !== "not-found"
      }))
      for (let i = 0; i < 5; i++) yield* Effect.either(breaker.protect(Effect.fail("bad-request")))
      let stats = yield* breaker.stats
      expect([stats.successes, stats.failures]).toEqual([0, 0])
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(Effect.fail("not-found")))
      yield* Effect.either(breaker.protect(boom))
      stats = yield* breaker.stats
      expect([stats.successes, stats.failures, stats.consecutiveFailures]).toEqual([1, 2, 1])
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("isExcluded: Errors.isRejection keeps local back-pressure from tripping it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "rejections", threshold: 1, isExcluded: Errors.isRejection })
      )
      const full = new BulkheadFullError({ bulkhead: "db", reason: "full", maxConcurrent: 1, maxQueue: 0 })
      for (let i = 0; i < 3; i++) yield* Effect.either(breaker.protect(Effect.fail(full)))
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("per-call isFailure overrides the breaker's; TimeoutError always counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "per-call", threshold: 2 }))
      const lenient = { isFailure: () => false }
      yield* Effect.either(breaker.protect(boom, lenient))
      yield* Effect.either(breaker.protect(boom, lenient))
      expect((yield* breaker.stats).successes).toBe(2)
      const timeout = new TimeoutError({ duration: Duration.seconds(1) })
      yield* Effect.either(breaker.protect(Effect.fail(timeout), lenient))
      yield* Effect.either(breaker.protect(Effect.fail(timeout), lenient))
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("interruption of the caller counts as neither and gives a half-open probe slot back", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "interrupt", threshold: 1 }))
      const closedCall = yield* Effect.fork(breaker.protect(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(closedCall)
      expect((yield* breaker.stats).failures).toBe(0)
      yield* Effect.either(breaker.protect(boom))
      yield* TestClock.adjust("60 seconds")
      const probe = yield* Effect.fork(breaker.protect(Effect.never))
      yield* Effect.yieldNow()
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(rejectedWith(yield* Effect.either(breaker.protect(ok))).state).toBe("HalfOpen")
      yield* Fiber.interrupt(probe)
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }))

  for (const [label, policy] of machinePolicies("interrupted-requests")) {
    it.scoped(`${label}: a Closed call whose caller is interrupted leaves no request behind`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(policy)
        const call = yield* Effect.fork(breaker.protect(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(call)
        yield* breaker.protect(ok)
        const stats = yield* breaker.stats
        expect([stats.requests, stats.successes, stats.failures]).toEqual([1, 1, 0])
      }))
  }

  it.scoped("custom: readyToTrip sees requests without the calls whose caller was interrupted", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.custom({
        name: "interrupted-ratio",
        readyToTrip: (c) => {
          seen.push(c.requests)
          return c.requests >= 4 && c.totalFailures / c.requests >= 0.5
        }
      }))
      for (let i = 0; i < 3; i++) {
        const call = yield* Effect.fork(breaker.protect(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(call)
      }
      // and when the work is interrupted by a timeout around the breaker
      yield* Effect.either(
        breaker.protect(Effect.never).pipe(
          Effect.timeout("1 second"),
          Effect.fork,
          Effect.flatMap(
            (fiber) => Effect.zipRight(TestClock.adjust("1 second"), Fiber.join(fiber))
          )
        )
      )
      yield* breaker.protect(ok)
      yield* breaker.protect(ok)
      yield* Effect.either(breaker.protect(boom))
      expect(seen).toEqual([3])
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom))
      expect(seen).toEqual([3, 4])
      expect(yield* breaker.state).toBe("Open")
    }))

  it.scoped("custom: a call admitted in an older generation does not touch the new generation's requests", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.custom({
        name: "interrupted-generation",
        readyToTrip: (c) => {
          seen.push(c.requests)
          return false
        },
        interval: "1 minute"
      }))
      yield* TestClock.adjust("30 seconds")
      const interrupted = yield* Effect.fork(breaker.protect(Effect.never))
      const excluded = yield* breaker.allow
      const succeeded = yield* breaker.allow
      yield* Effect.yieldNow()
      yield* TestClock.adjust("30 seconds") // the counts roll over at 60 s
      yield* Effect.either(breaker.protect(boom))
      yield* Fiber.interrupt(interrupted)
      yield* excluded.ignore
      yield* succeeded.success
      expect((yield* breaker.stats).requests).toBe(1)
      yield* Effect.either(breaker.protect(boom))
      expect(seen).toEqual([1, 2])
    }))

  it.scoped("a slow call that trips the breaker holds it open for openFor from the trip, not from the call's start", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "slow-trip", threshold: 1, openFor: "5 seconds" })
      )
      const changes = yield* breaker.changes.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      // a call that times out after 10 s, longer than the open period
      const slow = yield* Effect.fork(breaker.protect(Effect.zipRight(Effect.sleep("10 seconds"), boom)))
      yield* TestClock.adjust("10 seconds")
      yield* Effect.either(Fiber.join(slow))
      expect(yield* breaker.state).toBe("Open")
      const rejected = rejectedWith(yield* Effect.either(breaker.protect(ok)))
      expect(Duration.toMillis(rejected.retryAfter!)).toBe(5000)
      expect(Chunk.toArray(yield* Fiber.join(changes)).map((c) => c.at)).toEqual([10_000])
    }))

  it.scoped("an idle breaker reports HalfOpen once the open period is over, and publishes the change", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "idle-open", threshold: 1, openFor: "1 second" })
      )
      const changes = yield* collectChanges(breaker, 2)
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect((yield* breaker.stats).state).toBe("HalfOpen")
      expect(yield* changes).toEqual(["Closed→Open", "Open→HalfOpen"])
    }))

  it.scoped("a probe interrupted while the Open → HalfOpen change is published gives its slot back", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "probe-publish", threshold: 1, openFor: "1 second" })
      )
      yield* Effect.either(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      // the change is published (metrics, log) before the probe runs: the caller is interrupted there
      const probe = yield* Effect.fork(breaker.protect(ok).pipe(interruptedWhenLogging("Open → HalfOpen")))
      expect(Exit.isInterrupted(yield* Fiber.await(probe))).toBe(true)
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("a caller interrupted while its trip is published: the change and the open-period step still happen", () =>
    Effect.gen(function*() {
      // the open-period schedule is stepped as the trip is published; the caller is interrupted there
      const openFor = Schedule.exponential("1 second").pipe(
        Schedule.tapOutput(() => Effect.logInfo("open-period step"))
      )
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "trip-publish", threshold: 1, openFor })
      )
      const changes = yield* collectChanges(breaker, 1)
      const caller = yield* Effect.fork(breaker.protect(boom).pipe(interruptedWhenLogging("open-period step")))
      yield* Fiber.await(caller)
      expect(yield* breaker.state).toBe("Open")
      expect(yield* changes).toEqual(["Closed→Open"])
      // and the schedule moved on: the next trip holds the breaker open for 2 s
      yield* TestClock.adjust("1 second")
      yield* Effect.either(breaker.protect(boom))
      expect(Duration.toMillis(rejectedWith(yield* Effect.either(breaker.protect(ok))).retryAfter!)).toBe(2000)
    }))

  it.scoped("allow interrupted while the Open → HalfOpen change is published gives the probe slot back", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(
        CircuitBreaker.consecutive({ name: "allow-publish", threshold: 1, openFor: "1 second" })
      )
      yield* Effect.either(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      const caller = yield* Effect.fork(breaker.allow.pipe(interruptedWhenLogging("Open → HalfOpen")))
      const exit = yield* Fiber.await(caller)
      // the caller did not get its permit, so the slot is free again
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.scoped("a permit reports one outcome; later calls are no-ops; ignore frees the slot", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "permit", threshold: 2 }))
      const permit = yield* breaker.allow
      yield* permit.failure("first")
      yield* permit.failure("again")
      yield* permit.success
      let stats = yield* breaker.stats
      expect([stats.successes, stats.failures]).toEqual([0, 1])
      expect(stats.lastErrors.map((e) => e.reason)).toEqual(["first"])
      const ignored = yield* breaker.allow
      yield* ignored.ignore
      stats = yield* breaker.stats
      expect([stats.successes, stats.failures, stats.requests]).toEqual([0, 1, 1])
    }))

  it.scoped("stats keep the last 5 errors with their times", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "ring", threshold: 100 }))
      for (let i = 0; i < 7; i++) {
        yield* Effect.either(breaker.protect(Effect.fail(`e${i}`)))
        yield* TestClock.adjust("1 second")
      }
      const { lastErrors } = yield* breaker.stats
      expect(lastErrors.map((e) => e.reason)).toEqual(["e2", "e3", "e4", "e5", "e6"])
      expect(lastErrors.map((e) => e.at)).toEqual([2000, 3000, 4000, 5000, 6000])
    }))
})

describe("isolate and reset", () => {
  it.scoped("isolate holds it open until reset; reset closes with empty counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "isolate", threshold: 2 }))
      const changes = yield* collectChanges(breaker, 4)
      yield* breaker.isolate
      expect(yield* breaker.state).toBe("Isolated")
      const error = rejectedWith(yield* Effect.either(breaker.protect(ok)))
      expect(error.state).toBe("Isolated")
      expect(error.retryAfter).toBeUndefined()
      yield* TestClock.adjust("1 hour")
      expect(yield* breaker.state).toBe("Isolated")
      yield* breaker.reset
      expect(yield* breaker.protect(ok)).toBe("ok")
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
      yield* breaker.reset
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* breaker.stats).failures).toBe(0)
      expect(yield* changes).toEqual(["Closed→Isolated", "Isolated→Closed", "Closed→Open", "Open→Closed"])
    }))

  for (
    const [label, policy] of [
      ...machinePolicies("isolated-rejections"),
      ["sre", CircuitBreaker.sre({ name: "isolated-rejections-sre" })] as const
    ]
  ) {
    it.scoped(`${label}: calls rejected while Isolated count in stats.rejections and the metric`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(policy)
        const rejectedMetric = Effect.map(
          metric("resilience_breaker_requests_total", { name: breaker.name, outcome: "rejected" }),
          (value) => value ?? 0
        )
        const before = yield* rejectedMetric
        yield* breaker.isolate
        yield* Effect.either(breaker.protect(ok))
        yield* Effect.either(breaker.protect(ok))
        rejectedWith(yield* Effect.either(breaker.allow))
        expect((yield* breaker.stats).rejections).toBe(3)
        expect((yield* rejectedMetric) - before).toBe(3)
        yield* breaker.reset
        expect((yield* breaker.stats).rejections).toBe(0)
      }))
  }

  it.scoped("works for the adaptive breaker too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "isolate-sre" }))
      yield* breaker.isolate
      expect(rejectedWith(yield* Effect.either(breaker.protect(ok))).state).toBe("Isolated")
      yield* breaker.reset
      expect(yield* breaker.protect(ok)).toBe("ok")
    }))
})

describe("options", () => {
  const invalid = (policy: CircuitBreaker.Policy) => Effect.flip(Effect.scoped(CircuitBreaker.make(policy)))

  it.effect("bad options fail with InvalidOptionsError naming the option", () =>
    Effect.gen(function*() {
      const cases: Array<[CircuitBreaker.Policy, string]> = [
        [CircuitBreaker.sre({ name: "" }), "name"],
        [CircuitBreaker.sre({ name: "x", k: -1 }), "k"],
        [CircuitBreaker.sre({ name: "x", k: 0.5, minK: 0.5 }), "k"],
        [CircuitBreaker.sre({ name: "x", k: 1.5, minK: 2 }), "minK"],
        [CircuitBreaker.sre({ name: "x", protection: Number.NaN }), "protection"],
        [CircuitBreaker.sre({ name: "x", window: "10 millis", buckets: 40 }), "window"],
        [CircuitBreaker.sre({ name: "x", buckets: 0 }), "buckets"],
        [CircuitBreaker.sre({ name: "x", forcePassAfter: "-1 seconds" }), "forcePassAfter"],
        [CircuitBreaker.consecutive({ name: "x", threshold: 0 }), "threshold"],
        [CircuitBreaker.consecutive({ name: "x", openFor: 0 }), "openFor"],
        [CircuitBreaker.consecutive({ name: "x", halfOpenMaxCalls: 1.5 }), "halfOpenMaxCalls"],
        [CircuitBreaker.countWindow({ name: "x", size: 10, minimumCalls: 11 }), "minimumCalls"],
        [CircuitBreaker.countWindow({ name: "x", failureRateThreshold: 1.5 }), "failureRateThreshold"],
        [CircuitBreaker.timeWindow({ name: "x", slowCallDuration: "soon" as any }), "slowCallDuration"],
        [CircuitBreaker.custom({ name: "x", readyToTrip: 5 as any }), "readyToTrip"],
        [CircuitBreaker.custom({ name: "x", interval: -5 }), "interval"]
      ]
      for (const [policy, option] of cases) {
        const error = yield* invalid(policy)
        expect(error).toBeInstanceOf(InvalidOptionsError)
        expect(error.option).toBe(option)
      }
    }))

  it.effect("an unknown option is an InvalidOptionsError naming it, never silently ignored", () =>
    Effect.gen(function*() {
      const cases: Array<[CircuitBreaker.Policy, string, unknown]> = [
        // a typo of `threshold` would otherwise run with the default of 5
        [CircuitBreaker.consecutive({ name: "x", failureThreshold: -5 } as any), "failureThreshold", -5],
        // an option of another policy
        [CircuitBreaker.sre({ name: "x", threshold: 3 } as any), "threshold", 3],
        [CircuitBreaker.timeWindow({ name: "x", size: 10 } as any), "size", 10],
        [CircuitBreaker.custom({ name: "x", k: 2 } as any), "k", 2]
      ]
      for (const [policy, option, value] of cases) {
        const error = yield* invalid(policy)
        expect(error).toBeInstanceOf(InvalidOptionsError)
        expect([error.option, error.value]).toEqual([option, value])
      }
    }))

  it.effect("registry options are checked: maxKeys, idleTimeToLive and unknown keys", () =>
    Effect.gen(function*() {
      const policy = (name: string) => CircuitBreaker.sre({ name })
      const fails = (options: CircuitBreaker.RegistryOptions) =>
        Effect.flip(Effect.scoped(CircuitBreaker.makeRegistry(options)))
      expect((yield* fails({ policy, maxKeys: 0 })).option).toBe("maxKeys")
      expect((yield* fails({ policy, maxKeys: 1.5 })).option).toBe("maxKeys")
      expect((yield* fails({ policy, idleTimeToLive: -1 })).option).toBe("idleTimeToLive")
      expect((yield* fails({ policy, ttl: "1 minute" } as any)).option).toBe("ttl")
    }))
})

describe("layers", () => {
  class Payments extends Context.Tag("test/Payments")<Payments, CircuitBreaker.CircuitBreaker>() {}

  it.effect("layer provides a breaker; protect works data-first and data-last", () =>
    Effect.gen(function*() {
      const breaker = yield* Payments
      expect(breaker.name).toBe("payments")
      expect(yield* ok.pipe(CircuitBreaker.protect(breaker))).toBe("ok")
      expect(yield* CircuitBreaker.protect(breaker, ok)).toBe("ok")
      expect(yield* CircuitBreaker.protect(ok, breaker)).toBe("ok")
      // with per-call options in each form: the errors count as successes
      const lenient = { isFailure: () => false }
      yield* Effect.either(boom.pipe(CircuitBreaker.protect(breaker, lenient)))
      yield* Effect.either(CircuitBreaker.protect(breaker, boom, lenient))
      yield* Effect.either(CircuitBreaker.protect(boom, breaker, lenient))
      const stats = yield* breaker.stats
      expect([stats.successes, stats.failures]).toEqual([6, 0])
    }).pipe(Effect.provide(CircuitBreaker.layer(Payments, CircuitBreaker.sre({ name: "payments" })))))

  it.effect("layerConfig reads the policy from Config", () =>
    Effect.gen(function*() {
      const breaker = yield* Payments
      expect(breaker.name).toBe("from-config")
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
      expect(Duration.toMillis(rejectedWith(yield* Effect.either(breaker.protect(ok))).retryAfter!)).toBe(3000)
    }).pipe(
      Effect.provide(CircuitBreaker.layerConfig(Payments)),
      Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([["policy", "consecutive"], ["name", "from-config"], ["threshold", "2"], ["openFor", "3 seconds"]])
      ))
    ))

  it.effect("layerConfig reads under a prefix with Config.nested", () =>
    Effect.gen(function*() {
      const breaker = yield* Payments
      expect(breaker.name).toBe("nested")
      for (let i = 0; i < 4; i++) yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.either(breaker.protect(boom))
      expect(yield* breaker.state).toBe("Open")
    }).pipe(
      Effect.provide(CircuitBreaker.layerConfig(Payments, Config.nested(CircuitBreaker.policyConfig, "PAYMENTS"))),
      Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([["PAYMENTS.policy", "countWindow"], ["PAYMENTS.name", "nested"], ["PAYMENTS.size", "5"]])
      ))
    ))

  it.effect("layerConfig fails with InvalidOptionsError on a bad value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(CircuitBreaker.layerConfig(Payments)).pipe(Effect.scoped))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect((error as InvalidOptionsError).option).toBe("k")
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["name", "x"], ["k", "-2"]])))))
})

describe("observability", () => {
  it.scoped("metrics count outcomes and state changes and expose the state", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "metrics", threshold: 1 }))
      const requests = (outcome: string) => metric("resilience_breaker_requests_total", { name: "metrics", outcome })
      expect(yield* metric("resilience_breaker_state", { name: "metrics" })).toBe(CircuitBreaker.stateGaugeValue.Closed)
      yield* breaker.protect(ok)
      yield* Effect.either(breaker.protect(boom))
      yield* Effect.either(breaker.protect(ok))
      expect(yield* requests("success")).toBe(1)
      expect(yield* requests("failure")).toBe(1)
      expect(yield* requests("rejected")).toBe(1)
      expect(yield* requests("ignored")).toBe(0)
      expect(yield* metric("resilience_breaker_state_changes_total", { name: "metrics", from: "Closed", to: "Open" }))
        .toBe(1)
      // a change that never happened has no series
      expect(yield* metric("resilience_breaker_state_changes_total", { name: "metrics", from: "Open", to: "HalfOpen" }))
        .toBeUndefined()
      expect(yield* metric("resilience_breaker_state", { name: "metrics" })).toBe(CircuitBreaker.stateGaugeValue.Open)
    }).pipe(Metrics.withInstanceRegistry()))

  it.effect("a breaker's series go away with it; breakers sharing a name share them", () =>
    Effect.gen(function*() {
      const outer = yield* Scope.make()
      const a = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "shared", threshold: 1 })).pipe(
        Scope.extend(outer)
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const b = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "shared" }))
        yield* a.protect(ok)
        yield* b.protect(ok)
        expect(yield* metric("resilience_breaker_requests_total", { name: "shared", outcome: "success" })).toBe(2)
        yield* Effect.either(a.protect(boom))
        // the gauge shows the worst state of the breakers sharing the name
        expect(yield* metric("resilience_breaker_state", { name: "shared" })).toBe(CircuitBreaker.stateGaugeValue.Open)
      }))
      // b is gone: its counts stay in the shared counter, which never goes backwards
      expect(yield* metric("resilience_breaker_requests_total", { name: "shared", outcome: "success" })).toBe(2)
      yield* Scope.close(outer, Exit.void)
      expect(yield* metric("resilience_breaker_requests_total", { name: "shared", outcome: "success" })).toBeUndefined()
      expect((yield* Metrics.snapshot).filter((s) => s.labels.name === "shared")).toEqual([])
    }).pipe(Metrics.withInstanceRegistry()))

  it.scoped("past maxSeries names share the overflow series, whose counters only grow", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 5; i++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: `tenant-${i}` }))
          yield* breaker.protect(ok)
          const names = new Set((yield* Metrics.snapshot).map((s) => s.labels.name))
          expect(names.size).toBeLessThanOrEqual(3)
        }))
      }
      const kept = yield* Effect.forEach(
        [0, 1, 2, 3],
        (i) => CircuitBreaker.make(CircuitBreaker.sre({ name: `t${i}` }))
      )
      yield* Effect.forEach(kept, (b) => b.protect(ok))
      const samples = yield* Metrics.snapshot
      expect(new Set(samples.map((s) => s.labels.name))).toEqual(new Set(["t0", "t1", Metrics.overflowName]))
      const overflow = samples.find((s) => s.labels.name === Metrics.overflowName && s.labels.outcome === "success")
      expect(overflow?.value).toBe(2)
    }).pipe(Metrics.withInstanceRegistry({ maxSeries: 2 })))

  it.scoped("logs each state change once, with the last errors", () =>
    Effect.gen(function*() {
      const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push({
          message: String(Array.isArray(message) ? message[0] : message),
          annotations: Object.fromEntries(annotations)
        })
      })
      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "logs", threshold: 2 }))
        yield* Effect.either(breaker.protect(Effect.fail(new Error("first"))))
        yield* Effect.either(breaker.protect(Effect.fail(new Error("second"))))
        for (let i = 0; i < 10; i++) yield* Effect.either(breaker.protect(ok))
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const opened = lines.filter((l) => l.message.includes("Closed → Open"))
      expect(opened).toHaveLength(1)
      expect(opened[0].annotations.breaker).toBe("logs")
      const errors = opened[0].annotations.lastErrors as Array<string>
      expect(errors).toHaveLength(2)
      expect(errors[1]).toContain("Error: second")
    }))
})

describe("Registry", () => {
  it.scoped("creates breakers on first use, one per name, and evicts idle ones", () =>
    Effect.gen(function*() {
      const created: Array<string> = []
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => {
          created.push(name)
          return CircuitBreaker.consecutive({ name, threshold: 1 })
        },
        idleTimeToLive: "1 minute"
      })
      const a = yield* registry.get("host-a")
      expect(yield* registry.get("host-a")).toBe(a)
      expect(yield* registry.protect("host-b")(ok)).toBe("ok")
      expect([...(yield* registry.names)].sort()).toEqual(["host-a", "host-b"])
      yield* Effect.either(a.protect(boom))
      expect(yield* a.state).toBe("Open")
      yield* TestClock.adjust("40 seconds")
      yield* registry.protect("host-b")(ok) // keeps b alive
      yield* TestClock.adjust("40 seconds")
      expect(yield* registry.names).toEqual(["host-b"])
      const a2 = yield* registry.get("host-a")
      expect(a2).not.toBe(a)
      expect(yield* a2.state).toBe("Closed")
      expect(created).toEqual(["host-a", "host-b", "host-a"])
    }))

  it.scoped("keeps isolated breakers; remove drops one", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.sre({ name }),
        idleTimeToLive: "1 minute"
      })
      const held = yield* registry.get("held")
      yield* held.isolate
      yield* registry.get("other")
      yield* TestClock.adjust("5 minutes")
      expect(yield* registry.names).toEqual(["held"])
      expect(yield* registry.remove("held")).toBe(true)
      expect(yield* registry.remove("held")).toBe(false)
      expect(yield* registry.names).toEqual([])
    }))

  it.effect("closing the scope stops the sweeper fiber and ends every breaker's changes stream", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const scope = yield* Scope.make()
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 1 }),
        idleTimeToLive: "1 minute"
      }).pipe(Scope.extend(scope), Effect.supervised(supervisor))
      const breaker = yield* registry.get("a")
      const changes = yield* Effect.fork(Stream.runCollect(breaker.changes))
      yield* Effect.yieldNow()
      expect((yield* supervisor.value).length).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("10 minutes")
      expect((yield* supervisor.value).length).toBe(0)
      expect(Chunk.size(yield* Fiber.join(changes))).toBe(0)
    }))

  it.scoped("holds at most maxKeys breakers: the least recently used idle one goes first", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 1 }),
        maxKeys: 3
      })
      const a = yield* registry.get("a")
      yield* registry.get("b")
      yield* registry.get("c")
      yield* registry.protect("a")(ok) // a is now the most recently used
      yield* registry.get("d")
      expect([...(yield* registry.names)].sort()).toEqual(["a", "c", "d"])
      expect(yield* registry.get("a")).toBe(a)
      yield* registry.get("e")
      expect([...(yield* registry.names)].sort()).toEqual(["a", "d", "e"])
      expect((yield* registry.breakers).map((b) => b.name).sort()).toEqual(["a", "d", "e"])
    }).pipe(Metrics.withInstanceRegistry()))

  it.scoped("never evicts a breaker in use: a call through protect, or an outstanding permit", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 1 }),
        maxKeys: 1,
        idleTimeToLive: "1 minute"
      })
      const gate = yield* Deferred.make<void>()
      const running = yield* Effect.fork(registry.protect("busy")(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const permit = yield* Effect.flatMap(registry.get("permit"), (b) => b.allow)
      yield* registry.get("idle")
      // past maxKeys, yet the two breakers in use stay
      expect([...(yield* registry.names)].sort()).toEqual(["busy", "idle", "permit"])
      yield* TestClock.adjust("5 minutes")
      expect([...(yield* registry.names)].sort()).toEqual(["busy", "permit"])
      yield* permit.success
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(running)
      yield* TestClock.adjust("2 minutes")
      expect(yield* registry.names).toEqual([])
    }).pipe(Metrics.withInstanceRegistry()))

  it.scoped("a call through protect whose caller is interrupted frees its breaker", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 1 }),
        idleTimeToLive: "1 minute"
      })
      const call = yield* Effect.fork(registry.protect("x")(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(call)
      yield* TestClock.adjust("2 minutes")
      expect(yield* registry.names).toEqual([])
    }).pipe(Metrics.withInstanceRegistry()))

  it.scoped("an evicted breaker's series go with it", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.sre({ name }),
        maxKeys: 2
      })
      for (const name of ["a", "b", "c", "d"]) yield* registry.protect(name)(ok)
      const names = new Set((yield* Metrics.snapshot).map((s) => s.labels.name))
      expect(names).toEqual(new Set(["c", "d"]))
      expect(yield* registry.remove("c")).toBe(true)
      expect(new Set((yield* Metrics.snapshot).map((s) => s.labels.name))).toEqual(new Set(["d"]))
    }).pipe(Metrics.withInstanceRegistry()))

  it.effect("layerRegistry rejects a bad idleTimeToLive; Registry is a service", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(CircuitBreaker.layerRegistry({ policy: (name) => CircuitBreaker.sre({ name }), idleTimeToLive: 0 }))
          .pipe(Effect.scoped)
      )
      expect(error.option).toBe("idleTimeToLive")
      const result = yield* Effect.flatMap(CircuitBreaker.Registry, (r) => r.protect("x")(ok)).pipe(
        Effect.provide(CircuitBreaker.layerRegistry({ policy: (name) => CircuitBreaker.sre({ name }) }))
      )
      expect(result).toBe("ok")
    }))
})
