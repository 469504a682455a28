import { HttpClientError, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as Backoff from "../src/Backoff.js"
import {
  BulkheadFullError,
  CircuitOpenError,
  InvalidOptionsError,
  OverloadedError,
  RateLimitedError,
  RetryableError,
  TimeoutError
} from "../src/Errors.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"

const request = HttpClientRequest.get("http://downstream.test/items")
const responseError = (status: number, headers: Record<string, string> = {}) =>
  new HttpClientError.ResponseError({
    request,
    response: HttpClientResponse.fromWeb(request, new Response(null, { status, headers })),
    reason: "StatusCode"
  })
const systemError = (code: string) => Object.assign(new Error(`connect ${code}`), { code })

describe("Retry.isTransient", () => {
  it.each([
    ["RetryableError", new RetryableError({ cause: "x" })],
    ["TimeoutError", new TimeoutError({ duration: Duration.seconds(1) })],
    ["Effect TimeoutException", new Cause.TimeoutException()],
    [
      "RateLimitedError with retryAfter",
      new RateLimitedError({ limiter: "l", key: "k", limit: 1, remaining: 0, retryAfter: Duration.seconds(1) })
    ],
    [
      "OverloadedError with retryAfter",
      new OverloadedError({ shedder: "s", reason: "cpu", retryAfter: Duration.seconds(1) })
    ],
    [
      "CircuitOpenError with retryAfter",
      new CircuitOpenError({ breaker: "b", state: "Open", retryAfter: Duration.seconds(3) })
    ],
    ["ECONNRESET", systemError("ECONNRESET")],
    [
      "ECONNREFUSED in a cause chain (fetch failed)",
      new TypeError("fetch failed", { cause: systemError("ECONNREFUSED") })
    ],
    ["EAI_AGAIN", systemError("EAI_AGAIN")],
    ["HTTP 503 ResponseError", responseError(503)],
    ["HTTP 500 ResponseError", responseError(500)],
    ["HTTP 429 ResponseError", responseError(429)],
    [
      "RequestError Transport",
      new HttpClientError.RequestError({ request, reason: "Transport", cause: "socket hang up" })
    ],
    ["an object with status 502", { status: 502 }],
    ["an object with statusCode 504", { statusCode: 504 }]
  ])("transient: %s", (_, error) => {
    expect(Retry.isTransient(error)).toBe(true)
  })

  it.each([
    ["CircuitOpenError without retryAfter", new CircuitOpenError({ breaker: "b", state: "Open" })],
    ["BulkheadFullError", new BulkheadFullError({ bulkhead: "b", reason: "full", maxConcurrent: 1, maxQueue: 0 })],
    ["RateLimitedError without retryAfter", new RateLimitedError({ limiter: "l", key: "k", limit: 1, remaining: 0 })],
    ["InvalidOptionsError", new InvalidOptionsError({ module: "m", option: "o", value: 1, reason: "r" })],
    ["HTTP 404 ResponseError", responseError(404)],
    ["HTTP 400 ResponseError", responseError(400)],
    ["RequestError InvalidUrl", new HttpClientError.RequestError({ request, reason: "InvalidUrl" })],
    ["an object with status 403", { status: 403 }],
    ["ENOENT", systemError("ENOENT")],
    ["a plain Error", new Error("validation failed")],
    ["a string", "nope"],
    ["undefined", undefined]
  ])("not transient: %s", (_, error) => {
    expect(Retry.isTransient(error)).toBe(false)
  })

  it("retryAfter reads toolkit errors and HTTP Retry-After headers", () => {
    expect(Retry.retryAfter(new RetryableError({ cause: 1, retryAfter: Duration.seconds(2) }))).toEqual(
      Option.some(Duration.millis(2000))
    )
    expect(Option.map(Retry.retryAfter(responseError(429, { "retry-after": "3" })), Duration.toMillis)).toEqual(
      Option.some(3000)
    )
    expect(Retry.retryAfter(responseError(503))).toEqual(Option.none())
  })

  it.effect("a 429 with Retry-After is retried no sooner than the header asks", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted([responseError(429, { "retry-after": "2" })])
      const fiber = yield* Effect.fork(
        Retry.retry(effect, {
          schedule: Backoff.exponential({ base: "100 millis" }).pipe(Backoff.respectRetryAfter, Backoff.upTo(3))
        })
      )
      yield* TestClock.adjust("1999 millis")
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok after 2")
    }))

  it.effect("markRetryable wraps the selected failures", () =>
    Effect.gen(function*() {
      const marked = yield* Effect.flip(Retry.markRetryable(Effect.fail("flaky"), (e) => e === "flaky"))
      expect(marked).toBeInstanceOf(RetryableError)
      expect(Retry.isTransient(marked)).toBe(true)
      const kept = yield* Effect.flip(Retry.markRetryable(Effect.fail("fatal"), (e) => e === "flaky"))
      expect(kept).toBe("fatal")
    }))
})

/** An effect failing with `errors[i]` on attempt i (then succeeding), counting attempts. */
const scripted = <E>(errors: ReadonlyArray<E>) =>
  Effect.map(Ref.make(0), (attempts) => ({
    attempts,
    effect: Effect.flatMap(Ref.getAndUpdate(attempts, (n) => n + 1), (n) =>
      n < errors.length ? Effect.fail(errors[n]) : Effect.succeed(`ok after ${n + 1}`))
  }))

const captureLogs = Effect.gen(function*() {
  const lines = yield* Ref.make<Array<{ message: unknown; level: string; annotations: Record<string, unknown> }>>([])
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    Effect.runSync(Ref.update(lines, (all) => [...all, {
      message: Array.isArray(message) ? message[0] : message,
      level: logLevel.label,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    }]))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

describe("Retry.policy", () => {
  it.effect("retries transient failures with the schedule's delays, then succeeds", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted([new RetryableError({ cause: 1 }), { status: 503 }])
      const fiber = yield* Effect.fork(
        Effect.retry(
          effect,
          Retry.policy({ schedule: Backoff.exponential({ base: "100 millis" }).pipe(Backoff.upTo(5)) })
        )
      )
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok after 3")
    }))

  it.effect("returns a non-transient failure at once", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted([{ status: 404 }])
      const error = yield* Effect.flip(Effect.retry(effect, Retry.policy({ schedule: Backoff.constant("1 second") })))
      expect(error).toEqual({ status: 404 })
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it.effect("a custom `while` replaces isTransient", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted(["a", "a", "b"])
      const error = yield* Effect.flip(
        Effect.retry(effect, Retry.policy({ schedule: Backoff.constant(0), while: (e: string) => e === "a" }))
      )
      expect(error).toBe("b")
      expect(yield* Ref.get(attempts)).toBe(3)
    }))

  it.effect("onRetry sees attempt, delay and error; every retry is logged at debug level and counted", () =>
    Effect.gen(function*() {
      const { lines, layer } = yield* captureLogs
      const seen: Array<[number, number, unknown]> = []
      const { effect } = yield* scripted([{ status: 500 }, { status: 502 }])
      const counter = Retry.retriesTotal.pipe(Metric.tagged("name", "on-retry-test"))
      const before = (yield* Metric.value(counter)).count
      const fiber = yield* Effect.fork(
        Effect.retry(
          effect,
          Retry.policy({
            name: "on-retry-test",
            schedule: Backoff.linear("10 millis"),
            onRetry: ({ attempt, delay, error }) =>
              Effect.sync(() => void seen.push([attempt, Duration.toMillis(delay), error]))
          })
        ).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("ok after 3")
      expect(seen).toEqual([[1, 10, { status: 500 }], [2, 20, { status: 502 }]])
      expect((yield* Metric.value(counter)).count - before).toBe(2)
      const logged = (yield* Ref.get(lines)).filter((l) => l.message === "retrying")
      expect(logged.map((l) => [l.level, l.annotations["retry.attempt"], l.annotations["retry.delay"]])).toEqual([
        ["DEBUG", 1, "10ms"],
        ["DEBUG", 2, "20ms"]
      ])
      expect(logged[0].annotations["retry.name"]).toBe("on-retry-test")
      expect(String(logged[0].annotations["retry.error"])).toContain("500")
    }))
})

describe("Retry logs", () => {
  it.effect("are not written at the default level, and a jittered delay reads in whole milliseconds", () =>
    Effect.gen(function*() {
      const { lines, layer } = yield* captureLogs
      // what a jittered backoff produces: a delay with a fraction of a millisecond
      const jittered = Schedule.spaced(Duration.nanos(18_142_578n)).pipe(Schedule.intersect(Schedule.recurs(1)))
      const run = (effect: Effect.Effect<string, unknown>) => Effect.fork(Retry.retry(effect, { schedule: jittered }))
      const quiet = yield* run((yield* scripted([{ status: 500 }])).effect).pipe(Effect.provide(layer))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(quiet)
      expect((yield* Ref.get(lines)).filter((l) => l.message === "retrying")).toEqual([])
      const loud = yield* run((yield* scripted([{ status: 500 }])).effect).pipe(
        Effect.provide(layer),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(loud)
      const logged = (yield* Ref.get(lines)).filter((l) => l.message === "retrying")
      expect(logged.map((l) => l.annotations["retry.delay"])).toEqual(["18ms"])
    }))
})

describe("Retry inside a deadline", () => {
  const failing = (calls: Ref.Ref<Array<number>>) =>
    Effect.flatMap(
      Effect.clockWith((c) => c.currentTimeMillis),
      (now) =>
        Effect.zipRight(Ref.update(calls, (xs) => [...xs, now]), Effect.fail(new RetryableError({ cause: "down" })))
    )

  it.effect("a retry that cannot start before the deadline is skipped: the failure returns at once", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<number>>([])
      const fiber = yield* Effect.fork(
        Retry.retry(failing(calls), { schedule: Backoff.constant("3 seconds") }).pipe(Timeout.deadline("10 seconds"))
      )
      yield* TestClock.adjust("9 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(RetryableError)
      expect(yield* Ref.get(calls)).toEqual([0, 3000, 6000, 9000])
    }))

  it.effect("respectDeadline: false sleeps into the deadline's TimeoutError", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<number>>([])
      const fiber = yield* Effect.fork(
        Retry.retry(failing(calls), { schedule: Backoff.constant("3 seconds"), respectDeadline: false }).pipe(
          Timeout.deadline("10 seconds")
        )
      )
      yield* TestClock.adjust("10 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
    }))
})

describe("Retry budget", () => {
  it.effect("an exhausted budget stops retrying and returns the original error at once", () =>
    Effect.gen(function*() {
      // capacity: 0 · requests + 0.1/s · 10 s = 1 retry in the window
      const budget = yield* Retry.makeBudget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
      const schedule = Backoff.constant("100 millis").pipe(Backoff.upTo(5))
      const first = yield* scripted(Array.from({ length: 10 }, () => new RetryableError({ cause: "down" })))
      const fiber = yield* Effect.fork(Effect.either(Retry.retry(first.effect, { schedule, budget })))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(first.attempts)).toBe(2) // one retry granted, the next refused
      const second = yield* scripted([new RetryableError({ cause: "still down" })])
      const error = yield* Effect.flip(Retry.retry(second.effect, { schedule, budget }))
      expect(error).toBeInstanceOf(RetryableError)
      expect(yield* Ref.get(second.attempts)).toBe(1) // no retry, no wait
      expect(yield* budget.stats).toEqual({ requests: 2, retries: 1, capacity: 1 })
    }))

  it.effect("retries are a fraction of recent requests, and the window forgets", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.makeBudget({ ratio: 0.2, minPerSecond: 0, window: "10 seconds" })
      for (let i = 0; i < 10; i++) yield* budget.recordRequest
      const granted = yield* Effect.all(Array.from({ length: 5 }, () => budget.tryAcquire))
      expect(granted).toEqual([true, true, false, false, false])
      yield* TestClock.adjust("11 seconds")
      expect(yield* budget.stats).toEqual({ requests: 0, retries: 0, capacity: 0 })
      expect(yield* budget.tryAcquire).toBe(false)
    }))

  it.effect("Retry.retry draws on the Retry.Budget in the context when none is passed", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.makeBudget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
      const schedule = Backoff.constant("100 millis").pipe(Backoff.upTo(5))
      const limited = yield* scripted(Array.from({ length: 10 }, () => new RetryableError({ cause: "down" })))
      const fiber = yield* Effect.fork(
        Effect.either(Retry.retry(limited.effect, { schedule })).pipe(Effect.provideService(Retry.Budget, budget))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(limited.attempts)).toBe(2) // one retry granted, the next refused
      expect(yield* budget.stats).toEqual({ requests: 1, retries: 1, capacity: 1 })
      // without a budget in the context, only the schedule limits the retries
      const free = yield* scripted(Array.from({ length: 3 }, () => new RetryableError({ cause: "down" })))
      const unlimited = yield* Effect.fork(Retry.retry(free.effect, { schedule }))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(unlimited)).toBe("ok after 4")
    }))

  it.effect("a shared Budget layer is one budget for every caller", () =>
    Effect.gen(function*() {
      const a = yield* Retry.Budget
      const b = yield* Retry.Budget
      expect(a).toBe(b)
      expect(a.name).toBe("payments")
      expect((yield* a.stats).capacity).toBe(100)
    }).pipe(Effect.provide(Retry.layerBudget({ name: "payments" }))))

  it.effect("bad budget options fail with InvalidOptionsError", () =>
    Effect.gen(function*() {
      for (
        const [options, option] of [
          [{ ratio: -0.1 }, "ratio"],
          [{ minPerSecond: Number.NaN }, "minPerSecond"],
          [{ window: 0 }, "window"],
          [{ buckets: 0 }, "buckets"],
          [{ window: "5 millis", buckets: 10 }, "buckets"],
          [{ name: "" }, "name"]
        ] as const
      ) {
        const error = yield* Effect.flip(Retry.makeBudget(options))
        expect(error).toBeInstanceOf(InvalidOptionsError)
        expect(error.option).toBe(option)
      }
      const exit = yield* Effect.exit(Layer.build(Retry.layerBudget({ ratio: Infinity })).pipe(Effect.scoped))
      expect(Exit.isFailure(exit)).toBe(true)
    }))
})
