import { describe, expect, it } from "@effect/vitest"
import * as backoff from "../src/internal/backoff.js"
import * as deadline from "../src/internal/deadline.js"
import * as budget from "../src/internal/retryBudget.js"
import { parseRetryAfterHeader } from "../src/internal/transient.js"

describe("internal/backoff", () => {
  it("jitter stays within its bounds at the extremes of the random draw", () => {
    for (const r of [0, 0.5, 0.999999]) {
      expect(backoff.jitter(1000, "none", r)).toBe(1000)
      expect(backoff.jitter(1000, "full", r)).toBeCloseTo(1000 * r)
      expect(backoff.jitter(1000, "equal", r)).toBeCloseTo(500 + 500 * r)
      expect(backoff.jitter(1000, 0.2, r)).toBeCloseTo(800 + 400 * r)
    }
  })

  it("decorrelated delays stay in [base, min(cap, 3·previous)]", () => {
    expect(backoff.decorrelated(100, 100, 10_000, 0)).toBe(100)
    expect(backoff.decorrelated(100, 100, 10_000, 1)).toBe(300)
    expect(backoff.decorrelated(5000, 100, 10_000, 1)).toBe(10_000)
  })

  it("withinElapsed and atLeast", () => {
    expect(backoff.withinElapsed(0, 900, 100, 1000)).toBe(true)
    expect(backoff.withinElapsed(0, 901, 100, 1000)).toBe(false)
    expect(backoff.atLeast(100, undefined)).toBe(100)
    expect(backoff.atLeast(100, 250)).toBe(250)
    expect(backoff.atLeast(300, 250)).toBe(300)
  })
})

describe("internal/deadline", () => {
  it("clamps to what remains and never extends the deadline", () => {
    expect(deadline.clamp(5000, Infinity, 0)).toBe(5000)
    expect(deadline.clamp(5000, 28_000, 25_000)).toBe(3000)
    expect(deadline.clamp(5000, 20_000, 25_000)).toBe(-5000)
    expect(deadline.nested(28_000, 25_000, 3000)).toBe(28_000)
    expect(deadline.nested(Infinity, 1000, 5000)).toBe(6000)
    expect(deadline.remaining(Infinity, 5)).toBeUndefined()
    expect(deadline.remaining(100, 150)).toBe(0)
    expect(deadline.pastDeadline(10_000, 9000, 1000)).toBe(true)
    expect(deadline.pastDeadline(10_000, 8999, 1000)).toBe(false)
  })
})

describe("internal/retryBudget", () => {
  const params = { ratio: 0.5, minPerSecond: 1, windowMillis: 2000 }

  it("allows ratio · requests + minPerSecond · window seconds retries", () => {
    const state = budget.make(params, 4, 0)
    for (let i = 0; i < 4; i++) budget.recordRequest(state, 0)
    // 0.5 · 4 + 1 · 2 = 4
    const granted = Array.from({ length: 6 }, () => budget.tryRetry(state, params, 100))
    expect(granted).toEqual([true, true, true, true, false, false])
    expect(budget.stats(state, params, 100)).toEqual({ requests: 4, retries: 4, capacity: 4 })
  })

  it("old requests and retries leave the window", () => {
    const state = budget.make(params, 4, 0)
    for (let i = 0; i < 10; i++) budget.recordRequest(state, 0)
    expect(budget.stats(state, params, 1999).requests).toBe(10)
    expect(budget.stats(state, params, 2000).requests).toBe(0)
  })
})

describe("internal/transient", () => {
  it("parses Retry-After as seconds or as an HTTP date", () => {
    expect(parseRetryAfterHeader("120", undefined)).toBe(120_000)
    expect(parseRetryAfterHeader("1.5", 0)).toBe(1500)
    const now = Date.parse("Tue, 24 Nov 2026 12:00:00 GMT")
    expect(parseRetryAfterHeader("Tue, 24 Nov 2026 12:00:30 GMT", now)).toBe(30_000)
    expect(parseRetryAfterHeader("soon", now)).toBeUndefined()
    expect(parseRetryAfterHeader("Tue, 24 Nov 2026 12:00:30 GMT", undefined)).toBeUndefined()
    // neither delay-seconds nor an HTTP date, though Date.parse reads them as years
    expect(parseRetryAfterHeader("-1", now)).toBeUndefined()
    expect(parseRetryAfterHeader("2026-11-24", now)).toBeUndefined()
  })
})
