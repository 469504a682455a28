import { describe, expect, it } from "@effect/vitest"
import { LearnedLimits, read } from "../src/internal/learnedLimits.js"
import { applyReply } from "../src/internal/learnedLimitsShare.js"

const NOW = 1_700_000_000_000

describe("learned host limits: reading responses", () => {
  it("429 or 503 with Retry-After (seconds or HTTP date) blocks until then", () => {
    expect(read(429, { "retry-after": "2" }, NOW, 1000)).toEqual({
      remaining: 0,
      resetAt: NOW + 2000,
      limit: NaN,
      seen: NOW
    })
    const date = new Date(NOW + 5000).toUTCString()
    expect(read(503, { "retry-after": date }, NOW, 1000)?.resetAt).toBe(NOW + 5000)
    // a 200 with Retry-After says nothing of a quota
    expect(read(200, { "retry-after": "2" }, NOW, 1000)).toBeUndefined()
  })

  it("RateLimit-*, the structured RateLimit header and X-RateLimit-* (delta or epoch seconds)", () => {
    expect(read(200, { "ratelimit-limit": "100", "ratelimit-remaining": "7", "ratelimit-reset": "3" }, NOW, 1000))
      .toEqual({ remaining: 7, resetAt: NOW + 3000, limit: 100, seen: NOW })
    expect(read(200, { ratelimit: "limit=10, remaining=0, reset=4" }, NOW, 1000))
      .toEqual({ remaining: 0, resetAt: NOW + 4000, limit: 10, seen: NOW })
    expect(read(200, { ratelimit: "\"default\";r=2;t=1" }, NOW, 1000))
      .toEqual({ remaining: 2, resetAt: NOW + 1000, limit: NaN, seen: NOW })
    expect(
      read(200, { "x-ratelimit-remaining": "5", "x-ratelimit-reset": String(NOW / 1000 + 60) }, NOW, 1000)
    ).toEqual({ remaining: 5, resetAt: NOW + 60_000, limit: NaN, seen: NOW })
  })

  it("a 429 without a reset blocks for blockFor; remaining without a reset, or garbage, says nothing", () => {
    expect(read(429, {}, NOW, 1500)).toEqual({ remaining: 0, resetAt: NOW + 1500, limit: NaN, seen: NOW })
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

describe("learned host limits: shared between instances", () => {
  const heard = (remaining: number, resetIn: number, seen: number) => ({
    remaining,
    resetAt: NOW + resetIn,
    limit: 30,
    seen
  })

  it("divides the server's remaining quota among the instances drawing on it", () => {
    const limits = new LearnedLimits(10, 1000)
    limits.share = 3
    const said = limits.learn("api", 200, { "ratelimit-remaining": "10", "ratelimit-reset": "5" }, NOW)
    // what the server said goes to the others whole; this instance keeps its third
    expect(said?.remaining).toBe(10)
    expect(limits.hosts.get("api")?.remaining).toBe(3)
    for (let i = 0; i < 3; i++) expect(limits.admit("api", NOW)).toBe(0)
    expect(limits.admit("api", NOW)).toBe(5000)
  })

  it("takes on another instance's figures only when they are newer than its own", () => {
    const limits = new LearnedLimits(10, 1000)
    limits.share = 2
    expect(limits.adopt("api", heard(0, 2000, NOW - 10), NOW)).toBe(true)
    expect(limits.admit("api", NOW)).toBe(2000)
    // this instance heard from the server since: older figures do not replace its own
    limits.learn("api", 200, { "ratelimit-remaining": "8", "ratelimit-reset": "1" }, NOW + 5)
    expect(limits.adopt("api", heard(0, 2000, NOW), NOW + 6)).toBe(false)
    expect(limits.hosts.get("api")?.remaining).toBe(4)
    // figures past their reset say nothing
    expect(limits.adopt("gone", heard(3, -1, NOW), NOW)).toBe(false)
    expect(limits.hosts.has("gone")).toBe(false)
  })

  it("a sync reply sets the share and adopts the freshest figures of the other instances, not its own", () => {
    const limits = new LearnedLimits(10, 1000)
    const reply = [3, "a", 12, 4000, 30, 50, "other", 777, "b", 0, 1000, -1, 5, "me", 800]
    expect(applyReply(limits, reply, "me", NOW)).toBe(3)
    expect(limits.share).toBe(3)
    expect(limits.hosts.get("a")).toEqual({
      remaining: 4,
      resetAt: NOW + 4000,
      limit: 30,
      seen: NOW - 50,
      origin: "other 777"
    })
    expect(limits.hosts.has("b")).toBe(false)
    // the same hearing in the next round, its age skewed by the round trip: not taken on again
    expect(limits.admit("a", NOW)).toBe(0)
    applyReply(limits, [3, "a", 12, 3990, 30, 45, "other", 777], "me", NOW + 10)
    expect(limits.hosts.get("a")?.remaining).toBe(3)
    // a newer hearing is
    applyReply(limits, [3, "a", 9, 3990, 30, 1, "other", 820], "me", NOW + 10)
    expect(limits.hosts.get("a")?.remaining).toBe(3)
    expect(limits.hosts.get("a")?.origin).toBe("other 820")
    // an empty hash (Redis lost its data) counts this instance alone
    applyReply(limits, [0], "me", NOW)
    expect(limits.share).toBe(1)
  })
})
