import { afterEach, describe, expect, it } from "@effect/vitest"
import { available as haveRedisServer } from "../examples/shared/redisServer.js"
import type { Running } from "./integration/spawn.js"
import { get, start } from "./integration/spawn.js"

const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)/

let running: Running | undefined
afterEach(async () => {
  if (running !== undefined) {
    await running.stop(3_000)
    running = undefined
  }
})

/** Starts a server example on a free port and returns the port it printed. */
const serve = async (script: string, env: Record<string, string> = {}) => {
  running = start(script, [], { PORT: "0", ...env })
  const m = await running.waitFor(LISTENING)
  return Number(m[1])
}

const stopCleanly = async () => {
  const r = running!
  running = undefined
  const code = await r.stop(5_000)
  expect(code, r.output()).toBe(0)
}

describe("examples", () => {
  it("map-reduce: fans out with at most `workers` in flight, skips failures, cancels when strict", async () => {
    const port = await serve("examples/map-reduce/main.ts")
    const res = await get(port, "/api/users?ids=1-60&workers=8")
    expect(res.status).toBe(200)
    const body = JSON.parse(res.body)
    expect(body.requested).toBe(60)
    expect(body.fetched + body.failed.length).toBe(60)
    expect(body.maxInFlight).toBeLessThanOrEqual(8)
    expect(body.maxInFlight).toBeGreaterThan(1)
    // strict mode: 200 when nothing failed, else 502 with the cancellation
    const strict = await get(port, "/api/users?ids=1-200&workers=8&strict=true")
    expect([200, 502]).toContain(strict.status)
    if (strict.status === 502) expect(JSON.parse(strict.body).cancelled).toBe(true)
    await stopCleanly()
  })

  it.skipIf(!haveRedisServer() && process.env.REDIS_URL === undefined)(
    "tiered-rate-limit: free users get 429 with Retry-After after their burst, pro users do not",
    async () => {
      const port = await serve("examples/tiered-rate-limit/main.ts")
      const run = `${process.pid}-${Date.now()}`
      const alice = []
      for (let i = 0; i < 7; i++) alice.push(await get(port, "/api/report", { "x-user-id": `alice` + run }))
      expect(alice.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429])
      expect(alice[0].headers.get("ratelimit-limit")).toBe("5")
      expect(alice[4].headers.get("ratelimit-remaining")).toBe("0")
      expect(Number(alice[5].headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      expect(JSON.parse(alice[5].body).error.code).toBe("rate_limited")
      const bob = []
      for (let i = 0; i < 7; i++) bob.push(await get(port, "/api/report", { "x-user-id": "bob" }))
      expect(bob.every((r) => r.status === 200)).toBe(true)
      expect(bob[0].headers.get("ratelimit-limit")).toBe("40")
      expect((await get(port, "/api/report")).status).toBe(401)
      await stopCleanly()
    }
  )
})

if (!haveRedisServer() && process.env.REDIS_URL === undefined) {
  console.log("skipping the tiered-rate-limit example test: redis-server is not installed and REDIS_URL is not set")
}
