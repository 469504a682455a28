/**
 * The compositions of seed 001 ("resilient HTTP client", "service with full resilience") written
 * with this toolkit against a fake downstream: timeout inside breaker inside retry.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import * as Backoff from "../src/Backoff.js"
import { CircuitOpenError, TimeoutError } from "../src/Errors.js"
import * as Fallback from "../src/Fallback.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"

class HttpError {
  readonly _tag = "HttpError"
  constructor(readonly status: number) {}
}

type Step = { readonly status: number } | { readonly hang: true } | { readonly body: string }

/** A downstream that plays `steps` in order (the last one repeats), recording when it was called. */
const fakeDownstream = (steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<Array<number>>([])
    const call = Effect.gen(function*() {
      const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
      const i = (yield* Ref.getAndUpdate(calls, (xs) => [...xs, now])).length
      const step = steps[Math.min(i, steps.length - 1)]
      if ("hang" in step) return yield* Effect.never
      if ("status" in step) return yield* Effect.fail(new HttpError(step.status))
      return step.body
    })
    return { call, calls }
  })

/** A minimal consecutive-failures breaker standing in for CircuitBreaker in these tests. */
const breakerDouble = (threshold: number) =>
  Effect.map(Ref.make(0), (failures) => ({
    protect: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
      Effect.flatMap(Ref.get(failures), (n): Effect.Effect<A, E | CircuitOpenError, R> =>
        n >= threshold
          ? Effect.fail(new CircuitOpenError({ breaker: "downstream", state: "Open" }))
          : Effect.tapBoth(effect, {
            onFailure: () => Ref.update(failures, (k) => k + 1),
            onSuccess: () => Ref.set(failures, 0)
          }))
  }))

describe("seed 001: resilient HTTP client", () => {
  // retry(3 attempts, exponential 500 ms, transient only) ∘ breaker ∘ timeout(10 s), within a 30 s deadline
  const client = <E>(
    call: Effect.Effect<string, E>,
    breaker: Effect.Effect.Success<ReturnType<typeof breakerDouble>>
  ) =>
    call.pipe(
      Timeout.within({ duration: "10 seconds", operation: "http" }),
      breaker.protect,
      Retry.retry({
        name: "api-client",
        schedule: Backoff.exponential({ base: "500 millis" }).pipe(Backoff.upTo(3))
      }),
      Timeout.deadline("30 seconds")
    )

  it.effect("a 503 and a hung call are retried; the third attempt answers", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 503 }, { hang: true }, { body: "200 OK" }])
      const breaker = yield* breakerDouble(5)
      const fiber = yield* Effect.fork(client(downstream.call, breaker))
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("200 OK")
      // 0: 503 → wait 500 ms; 500: hangs, times out at 10.5 s → wait 1 s; 11.5 s: answers
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 500, 11_500])
    }))

  it.effect("a 4xx is not retried", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 404 }])
      const breaker = yield* breakerDouble(5)
      const error = yield* Effect.flip(client(downstream.call, breaker))
      expect(error).toEqual(new HttpError(404))
      expect((yield* Ref.get(downstream.calls)).length).toBe(1)
    }))

  it.effect("retries stop when the breaker opens", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 503 }])
      const breaker = yield* breakerDouble(2)
      const fiber = yield* Effect.fork(
        downstream.call.pipe(
          Timeout.within("10 seconds"),
          breaker.protect,
          Retry.retry({ schedule: Backoff.exponential({ base: "500 millis" }).pipe(Backoff.upTo(10)) })
        )
      )
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      // two failures open the breaker; the third attempt is rejected and not retried
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 500])
    }))

  it.effect("the deadline caps the whole retry loop", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ hang: true }])
      const breaker = yield* breakerDouble(100)
      const fiber = yield* Effect.fork(
        downstream.call.pipe(
          Timeout.within("10 seconds"),
          breaker.protect,
          Retry.retry({ schedule: Backoff.constant("1 second").pipe(Backoff.upTo(10)) }),
          Timeout.deadline("25 seconds")
        )
      )
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      // attempts at 0, 11 s and 22 s; the third is clamped to the 3 s left of the deadline
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 11_000, 22_000])
    }))
})

describe("seed 001: service with full resilience", () => {
  // bulkhead(50) ∘ breaker ∘ timeout(5 s) ∘ (cache, else database with 3 attempts 100 ms apart)
  const service = Effect.gen(function*() {
    const cache = yield* fakeDownstream([{ status: 404 }])
    const database = yield* fakeDownstream([{ status: 503 }, { status: 503 }, { body: "user 42" }])
    const breaker = yield* breakerDouble(3)
    const bulkhead = yield* Effect.makeSemaphore(50)
    const getUser = Fallback.chain([
      Fallback.alternative("cache", cache.call),
      Fallback.alternative(
        "database",
        database.call.pipe(
          Retry.retry({ schedule: Backoff.constant("100 millis").pipe(Backoff.upTo(3)) })
        )
      )
    ], { name: "get-user" }).pipe(
      Timeout.within({ duration: "5 seconds", operation: "get-user" }),
      breaker.protect,
      bulkhead.withPermits(1)
    )
    return { getUser, cache, database }
  })

  it.effect("cache miss → database, retried twice, answers within the timeout", () =>
    Effect.gen(function*() {
      const { cache, database, getUser } = yield* service
      const fiber = yield* Effect.fork(getUser)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("user 42")
      expect(yield* Ref.get(cache.calls)).toEqual([0])
      expect(yield* Ref.get(database.calls)).toEqual([0, 100, 200])
    }))

  it.effect("a hung database times out, the timeouts open the breaker, then calls fail fast", () =>
    Effect.gen(function*() {
      const database = yield* fakeDownstream([{ hang: true }])
      const breaker = yield* breakerDouble(2)
      const getUser = database.call.pipe(Timeout.within("5 seconds"), breaker.protect)
      const errors: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const fiber = yield* Effect.fork(Effect.flip(getUser))
        yield* TestClock.adjust("5 seconds")
        errors.push((yield* Fiber.join(fiber))._tag)
      }
      expect(errors).toEqual(["TimeoutError", "TimeoutError", "CircuitOpenError"])
      expect((yield* Ref.get(database.calls)).length).toBe(2)
    }))
})

describe("the DESIGN.md usage", () => {
  it.effect("Effect.retry({ schedule: Backoff…, while: Retry.isTransient }) around a timed call", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 502 }, { status: 503 }, { body: "charged" }])
      const breaker = yield* breakerDouble(5)
      const fiber = yield* Effect.fork(
        downstream.call.pipe(
          Timeout.within("2 seconds"),
          breaker.protect,
          Effect.retry({
            schedule: Backoff.exponential({ base: "100 millis", cap: "2 seconds", jitter: "full" }).pipe(
              Backoff.upTo(3)
            ),
            while: Retry.isTransient
          })
        )
      )
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(fiber)).toBe("charged")
      const calls = yield* Ref.get(downstream.calls)
      expect(calls.length).toBe(3)
      // full jitter: each wait is below the un-jittered 100 ms, 200 ms
      expect(calls[1] - calls[0]).toBeLessThan(100)
      expect(calls[2] - calls[1]).toBeLessThan(200)
    }))
})
