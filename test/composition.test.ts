/**
 * The two classic Go compositions ("resilient HTTP client", "service with full resilience") written
 * with this toolkit against a fake downstream: timeout inside breaker inside retry, with the real
 * CircuitBreaker and Bulkhead.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import * as Backoff from "../src/Backoff.js"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
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

/** A consecutive-failures breaker that stays open for a minute. */
const makeBreaker = (threshold: number) =>
  CircuitBreaker.make(CircuitBreaker.consecutive({ name: "downstream", threshold, openFor: "60 seconds" }))

/** The Go client's `RetryIf(err != gobreaker.ErrOpenState)`: never retry into an open breaker. */
const transientUnlessOpen = (e: unknown) => Retry.isTransient(e) && !(e instanceof CircuitOpenError)

describe("go composition: resilient HTTP client", () => {
  // retry(3 attempts, exponential 500 ms, transient only) ∘ breaker ∘ timeout(10 s), within a 30 s deadline
  const client = <E>(
    call: Effect.Effect<string, E>,
    breaker: CircuitBreaker.CircuitBreaker
  ) =>
    call.pipe(
      Timeout.within({ duration: "10 seconds", operation: "http" }),
      breaker.protect,
      Retry.retry({
        name: "api-client",
        schedule: Backoff.exponential({ base: "500 millis" }).pipe(Backoff.upTo(3)),
        while: transientUnlessOpen
      }),
      Timeout.deadline("30 seconds")
    )

  it.scoped("a 503 and a hung call are retried; the third attempt answers", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 503 }, { hang: true }, { body: "200 OK" }])
      const breaker = yield* makeBreaker(5)
      const fiber = yield* Effect.fork(client(downstream.call, breaker))
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("200 OK")
      // 0: 503 → wait 500 ms; 500: hangs, times out at 10.5 s → wait 1 s; 11.5 s: answers
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 500, 11_500])
    }))

  it.scoped("a 4xx is not retried", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 404 }])
      const breaker = yield* makeBreaker(5)
      const error = yield* Effect.flip(client(downstream.call, breaker))
      expect(error).toEqual(new HttpError(404))
      expect((yield* Ref.get(downstream.calls)).length).toBe(1)
    }))

  it.scoped("retries stop when the breaker opens", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 503 }])
      const breaker = yield* makeBreaker(2)
      const fiber = yield* Effect.fork(
        downstream.call.pipe(
          Timeout.within("10 seconds"),
          breaker.protect,
          Retry.retry({
            schedule: Backoff.exponential({ base: "500 millis" }).pipe(Backoff.upTo(10)),
            while: transientUnlessOpen
          })
        )
      )
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      // two failures open the breaker; the third attempt is rejected and not retried
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 500])
    }))

  it.scoped("with isTransient, an open breaker's retryAfter is waited for only if the deadline allows it", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 503 }])
      const cb = yield* makeBreaker(2)
      const call = downstream.call.pipe(
        Timeout.within("10 seconds"),
        cb.protect,
        Retry.retry({
          schedule: Backoff.exponential({ base: "500 millis" }).pipe(Backoff.respectRetryAfter, Backoff.upTo(10))
        })
      )
      // the breaker stays open 60 s: inside a 30 s deadline the retry is skipped at once
      const fiber = yield* Effect.fork(call.pipe(Timeout.deadline("30 seconds")))
      // 503 at 0 and 500 ms open the breaker; the attempt at 1.5 s is rejected and not retried
      yield* TestClock.adjust("1500 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(Retry.isTransient(error)).toBe(true)
      expect(yield* Ref.get(downstream.calls)).toEqual([0, 500])
    }))

  it.scoped("the deadline caps the whole retry loop", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ hang: true }])
      const breaker = yield* makeBreaker(100)
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

describe("go composition: service with full resilience", () => {
  // bulkhead(50) ∘ breaker ∘ timeout(5 s) ∘ (cache, else database with 3 attempts 100 ms apart)
  const service = Effect.gen(function*() {
    const cache = yield* fakeDownstream([{ status: 404 }])
    const database = yield* fakeDownstream([{ status: 503 }, { status: 503 }, { body: "user 42" }])
    const breaker = yield* makeBreaker(3)
    const bulkhead = yield* Bulkhead.make({ name: "user-service", maxConcurrent: 50 })
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
      bulkhead.protect
    )
    return { getUser, cache, database }
  })

  it.scoped("cache miss → database, retried twice, answers within the timeout", () =>
    Effect.gen(function*() {
      const { cache, database, getUser } = yield* service
      const fiber = yield* Effect.fork(getUser)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("user 42")
      expect(yield* Ref.get(cache.calls)).toEqual([0])
      expect(yield* Ref.get(database.calls)).toEqual([0, 100, 200])
    }))

  it.scoped("a hung database times out, the timeouts open the breaker, then calls fail fast", () =>
    Effect.gen(function*() {
      const database = yield* fakeDownstream([{ hang: true }])
      const breaker = yield* makeBreaker(2)
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
  it.scoped("Effect.retry({ schedule: Backoff…, while: Retry.isTransient }) around a timed call", () =>
    Effect.gen(function*() {
      const downstream = yield* fakeDownstream([{ status: 502 }, { status: 503 }, { body: "charged" }])
      const breaker = yield* makeBreaker(5)
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
