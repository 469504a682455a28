import { afterEach, describe, expect, it } from "@effect/vitest"
import { available as haveRedisServer } from "../examples/shared/redisServer.js"
import type { Running } from "./integration/spawn.js"
import { CHILD_TEST_TIMEOUT_MS, get, start } from "./integration/spawn.js"

const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)/

let running: Running | undefined
afterEach(async () => {
  if (running !== undefined) {
    await running.stop()
    running = undefined
  }
}, CHILD_TEST_TIMEOUT_MS)

/** Starts a server example on a free port and returns the port it printed. */
const serve = async (script: string, env: Record<string, string> = {}) => {
  running = start(script, [], { PORT: "0", ...env })
  const m = await running.waitFor(LISTENING)
  return Number(m[1])
}

const stopCleanly = async () => {
  const r = running!
  running = undefined
  const code = await r.stop()
  expect(code, r.output()).toBe(0)
}

// Each example starts as its own Node process through tsx: on a busy machine that takes a while.
describe("examples", { timeout: CHILD_TEST_TIMEOUT_MS }, () => {
  it("user-api: seed configuration, resilient routes, /health and /metrics", async () => {
    const port = await serve("examples/user-api/main.ts")
    const ok = await get(port, "/api/users/1", { "x-user-id": "42" })
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toMatchObject({ id: 1, name: "Ada Lovelace" })
    expect(ok.headers.get("ratelimit-limit")).toBe("100")
    expect(Number(ok.headers.get("ratelimit-remaining"))).toBeLessThan(100)
    expect((await get(port, "/api/users/99", { "x-user-id": "42" })).status).toBe(404)

    const health = await get(port, "/health")
    expect(health.status).toBe(200)
    const report = JSON.parse(health.body)
    expect(report.checks.database.status).toBe("healthy")
    expect(report.breakers["GET /api/users/:id"]).toBe("Closed")

    const metrics = await get(port, "/metrics")
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get("content-type")).toContain("text/plain")
    expect(metrics.body).toMatch(/^resilience_\w+/m)
    await stopCleanly()
  })

  it("user-api: a bad configuration value stops the start-up naming the key", async () => {
    running = start("examples/user-api/main.ts", [], { PORT: "0", MaxConns: "-3" })
    const code = await running.exited
    expect(code).not.toBe(0)
    expect(running.output()).toContain("MaxConns")
    running = undefined
  })

  it("resilient-client: retries the flaky stage, fails fast while the server is down, recovers", async () => {
    running = start("examples/resilient-client/main.ts")
    const code = await running.exited
    const out = running.output()
    expect(code, out).toBe(0)
    const stage = (name: string) => out.slice(out.indexOf(`stage ${name}`)).split("\n").slice(0, 4).join("\n")
    expect(stage("flaky")).toMatch(/client saw:.*\bok: \d+/)
    expect(stage("down")).toMatch(/rejected by the open breaker: \d+/)
    expect(stage("recovered")).toMatch(/client saw:\s+ok: 30\b/)
    running = undefined
  })

  it("health-check: healthy, then unhealthy, then circuit_open with 503", async () => {
    const port = await serve("examples/health-check/main.ts")
    const healthy = await get(port, "/health")
    expect(healthy.status).toBe(200)
    expect(JSON.parse(healthy.body).checks.downstream.status).toBe("healthy")

    expect((await get(port, "/admin/down")).status).toBe(200)
    const statuses: Array<string> = []
    let last = { status: 0, body: "" }
    for (let i = 0; i < 5; i++) {
      last = await get(port, "/health")
      statuses.push(JSON.parse(last.body).checks.downstream.status)
    }
    expect(statuses.slice(0, 3)).toEqual(["unhealthy", "unhealthy", "unhealthy"])
    expect(statuses[4]).toBe("circuit_open")
    expect(last.status).toBe(503)
    await stopCleanly()
  })

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
      const alice = (headers = { "x-user-id": `alice` + run }) => get(port, "/api/report", headers)
      // A burst of 7 at once: the free tier's 5 pass, and only tokens refilled at 1/s while the
      // burst was in flight (a busy machine may take seconds to answer it) can let more through.
      const sentAt = Date.now()
      const burst = await Promise.all(Array.from({ length: 7 }, () => alice()))
      const refilled = Math.floor((Date.now() - sentAt) / 1_000)
      const passed = burst.filter((r) => r.status === 200)
      expect(passed.length).toBeGreaterThanOrEqual(5)
      expect(passed.length).toBeLessThanOrEqual(5 + refilled)
      expect(burst.every((r) => r.status === 200 || r.status === 429)).toBe(true)
      expect(passed[0].headers.get("ratelimit-limit")).toBe("5")
      expect(Math.min(...passed.map((r) => Number(r.headers.get("ratelimit-remaining"))))).toBeLessThanOrEqual(refilled)
      // past the burst, requests faster than 1/s are refused with 429 and Retry-After
      let denied = burst.find((r) => r.status === 429)
      for (let i = 0; i < 20 && denied === undefined; i++) {
        const r = await alice()
        if (r.status === 429) denied = r
      }
      expect(denied, "a 429 once the burst is spent").toBeDefined()
      expect(Number(denied!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      expect(JSON.parse(denied!.body).error.code).toBe("rate_limited")
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

describe("cross-service examples", () => {
  /** Runs an example to its end and returns its output (exit code 0 expected). */
  const runToEnd = async (script: string) => {
    const r = start(script)
    running = r
    const code = await r.exited
    running = undefined
    expect(code, r.output()).toBe(0)
    return r.output()
  }

  it("breaker-recovery: the probe closes the breaker with no user call, then the ramp reaches 100 %", async () => {
    const out = await runToEnd("examples/breaker-recovery/main.ts")
    expect(out).toMatch(/breaker Open after 3 failures/)
    const closed = /breaker Closed (\d+) ms after the downstream healed/.exec(out)
    expect(closed, out).not.toBeNull()
    const shares = [...out.matchAll(/ramp: (\d+) % of 200 calls admitted/g)].map((m) => Number(m[1]))
    expect(shares.length).toBe(5)
    expect(shares[0]).toBeLessThan(60)
    expect(shares[4]).toBe(100)
  }, 60_000)

  it("deadline-chain: each hop gets the budget less what came before; a slow C stops the chain", async () => {
    const out = await runToEnd("examples/deadline-chain/main.ts")
    const budgets = [...out.matchAll(/(\w) received a budget of (\d+) ms/g)].map((m) => Number(m[2]))
    expect(budgets[0], out).toBe(300)
    expect(budgets[1]).toBeLessThanOrEqual(250)
    expect(budgets[2]).toBeLessThanOrEqual(200)
    expect(out).toMatch(/C interrupted after \d+ ms/)
    expect(out).toMatch(/the caller got 503 timeout/)
  }, 180_000)

  it.skipIf(!haveRedisServer() && process.env.REDIS_URL === undefined)(
    "cluster-breaker: one instance's failures open only its breaker; the quorum opens all three",
    async () => {
      const out = await runToEnd("examples/cluster-breaker/main.ts")
      expect(out).toMatch(/quorum 2 not reached\)\s+a=Open b=Closed c=Closed/)
      expect(out).toMatch(/quorum reached\)\s+a=Open b=Open c=Open/)
      expect(out).toMatch(/probes succeeded\s+a=Closed b=Closed c=Closed/)
    },
    60_000
  )

  it("learned-limits: no 429 while waiting for the learned quota; fail fast refuses at once", async () => {
    const out = await runToEnd("examples/learned-limits/main.ts")
    expect(out).toMatch(/the client saw: (200 ){11}200/)
    expect(out).toMatch(/the server answered: 200×12\n/)
    expect(out).toMatch(/fail fast: .*RateLimitedError/)
  }, 60_000)
})
