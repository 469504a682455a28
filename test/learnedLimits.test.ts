import { describe, expect, it } from "@effect/vitest"
import { LearnedLimits, read } from "../src/internal/learnedLimits.js"

const NOW = 1_700_000_000_000

describe("learned host limits: reading responses", () => {
  it("429 or 503 with Retry-After (seconds or HTTP date) blocks until then", () => {
    expect(read(429, { "retry-after": "2" }, NOW, 1000)).toEqual({ remaining: 0, resetAt: NOW + 2000, limit: NaN })
    const date = new Date(NOW + 5000).toUTCString()
    expect(read(503, { "retry-after": date }, NOW, 1000)?.resetAt).toBe(NOW + 5000)
    // a 200 with Retry-After says nothing of a quota
    expect(read(200, { "retry-after": "2" }, NOW, 1000)).toBeUndefined()
  })

  it("RateLimit-*, the structured RateLimit header and X-RateLimit-* (delta or epoch seconds)", () => {
    expect(read(200, { "ratelimit-limit": "100", "ratelimit-remaining": "7", "ratelimit-reset": "3" }, NOW, 1000))
      .toEqual({ remaining: 7, resetAt: NOW + 3000, limit: 100 })
    expect(read(200, { ratelimit: "limit=10, remaining=0, reset=4" }, NOW, 1000))
      .toEqual({ remaining: 0, resetAt: NOW + 4000, limit: 10 })
    expect(read(200, { ratelimit: "\"default\";r=2;t=1" }, NOW, 1000))
      .toEqual({ remaining: 2, resetAt: NOW + 1000, limit: NaN })
    expect(
      read(200, { "x-ratelimit-remaining": "5", "x-ratelimit-reset": String(NOW / 1000 + 60) }, NOW, 1000)
    ).toEqual({ remaining: 5, resetAt: NOW + 60_000, limit: NaN })
  })

  it("a 429 without a reset blocks for blockFor; remaining without a reset, or garbage, says nothing", () => {
    expect(read(429, {}, NOW, 1500)).toEqual({ remaining: 0, resetAt: NOW + 1500, limit: NaN })
    expect(read(429, { "ratelimit-remaining": "3", "ratelimit-reset": "2" }, NOW, 1000)?.remaining).toBe(0)
    expect(read(200, { "ratelimit-remaining": "3" }, NOW, 1000)).toBeUndefined()
    expect(read(200, { "ratelimit-remaining": "-1", "ratelimit-reset": "x" }, NOW, 1000)).toBeUndefined()
  })
})

describe("learned host limits: admission", () => {
  it("takes the quota request by request, then waits until the reset; past it the host is unknown", () => {
    const limits = new LearnedLimits(10, 1000)
    expect(limits.admit("api", NOW)).toBe(0)
    limits.learn("api", 200, { "ratelimit-remaining": "2", "ratelimit-reset": "1" }, NOW)
    expect(limits.admit("api", NOW)).toBe(0)
    expect(limits.admit("api", NOW + 10)).toBe(0)
    expect(limits.admit("api", NOW + 400)).toBe(600)
    expect(limits.admit("other", NOW + 400)).toBe(0)
    expect(limits.admit("api", NOW + 1000)).toBe(0)
    expect(limits.hosts.has("api")).toBe(false)
  })

  it("holds at most maxHosts, dropping the oldest", () => {
    const limits = new LearnedLimits(2, 1000)
    for (const host of ["a", "b", "c"]) limits.learn(host, 429, {}, NOW)
    expect([...limits.hosts.keys()]).toEqual(["b", "c"])
    expect(limits.admit("a", NOW)).toBe(0)
  })
})
