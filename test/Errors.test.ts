import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Option, Schema } from "effect"
import * as Errors from "../src/Errors.js"

describe("Errors", () => {
  it("rejections are recognised by isRejection; other errors are not", () => {
    const rejections = [
      new Errors.CircuitOpenError({ breaker: "payments", state: "Open" }),
      new Errors.BulkheadFullError({ bulkhead: "db", reason: "full", maxConcurrent: 2, maxQueue: 0 }),
      new Errors.RateLimitedError({ limiter: "api", key: "u1", limit: 10, remaining: 0 }),
      new Errors.OverloadedError({ shedder: "api", reason: "cpu" }),
      new Errors.TaskRunnerBusyError({ concurrency: 4 })
    ]
    for (const error of rejections) expect(Errors.isRejection(error)).toBe(true)
    const others = [
      new Errors.TimeoutError({ duration: Duration.seconds(1) }),
      new Errors.StoreError({ store: "redis", operation: "evalsha", reason: "connection refused" }),
      new Errors.InvalidOptionsError({ module: "Bulkhead", option: "maxConcurrent", value: 0, reason: "x" }),
      new Error("plain"),
      { _tag: "SomethingElse" },
      null,
      "CircuitOpenError"
    ]
    for (const error of others) expect(Errors.isRejection(error)).toBe(false)
  })

  it("retryAfter reads the hint when present", () => {
    const withHint = new Errors.RateLimitedError({
      limiter: "api",
      key: "u1",
      limit: 10,
      remaining: 0,
      retryAfter: Duration.millis(250)
    })
    expect(Errors.retryAfter(withHint)).toEqual(Option.some(Duration.millis(250)))
    expect(Errors.retryAfter(new Errors.CircuitOpenError({ breaker: "b", state: "Isolated" }))).toEqual(Option.none())
    expect(Errors.retryAfter({ retryAfter: 5 })).toEqual(Option.none())
  })

  it("messages name the resource, the state and the hint", () => {
    const error = new Errors.CircuitOpenError({ breaker: "payments", state: "Open", retryAfter: Duration.seconds(3) })
    expect(error.message).toBe("circuit breaker \"payments\" is Open, retry after 3s")
    expect(error.name).toBe("CircuitOpenError")
    const invalid = new Errors.InvalidOptionsError({
      module: "RateLimiter",
      option: "rate",
      value: -1,
      reason: "expected a positive finite number"
    })
    expect(invalid.message).toBe("RateLimiter: invalid option \"rate\" (got -1): expected a positive finite number")
  })

  it.effect("errors are yieldable and caught by tag", () =>
    Effect.gen(function*() {
      const result = yield* Effect.fail(new Errors.TimeoutError({ duration: Duration.seconds(2), operation: "db" }))
        .pipe(
          Effect.catchTag("TimeoutError", (e) => Effect.succeed(e.message))
        )
      expect(result).toBe("db timed out after 2s")
    }))

  it("errors round-trip through their schema", () => {
    const error = new Errors.BulkheadFullError({
      bulkhead: "db",
      reason: "queue-timeout",
      maxConcurrent: 1,
      maxQueue: 3
    })
    const encoded = Schema.encodeEither(Errors.BulkheadFullError)(error)
    expect(Either.isRight(encoded)).toBe(true)
    if (Either.isRight(encoded)) {
      const decoded = Schema.decodeUnknownSync(Errors.BulkheadFullError)(encoded.right)
      expect(decoded).toBeInstanceOf(Errors.BulkheadFullError)
      expect(decoded.reason).toBe("queue-timeout")
    }
  })
})
