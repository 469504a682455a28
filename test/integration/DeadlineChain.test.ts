/**
 * Deadline propagation across three processes on 127.0.0.1: A → B → C, a 300 ms budget sent to A.
 * Each hop receives at most what the caller had left less what the hops before it spent, and when
 * C is too slow the whole chain stops at the deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { get, type Running, start } from "./spawn.js"

const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)/
const SERVICE = "examples/deadline-chain/service.ts"

interface Hop {
  readonly name: string
  readonly budget: number
  readonly forwardedAfter: number
  readonly spent: number
  readonly downstream: Hop | { readonly status: number } | null
}

describe("deadline chain A → B → C (three processes)", () => {
  const running: Array<Running> = []
  let portA = 0

  const service = async (name: string, next?: number) => {
    const r = start(SERVICE, [], {
      NAME: name,
      PORT: "0",
      WORK_MS: "50",
      ...(next === undefined ? {} : { NEXT: `http://127.0.0.1:${next}` })
    })
    running.push(r)
    return Number((await r.waitFor(LISTENING, 60_000))[1])
  }

  beforeAll(async () => {
    const portC = await service("C")
    const portB = await service("B", portC)
    portA = await service("A", portB)
    // a few calls to warm each process (module loading, the first connections)
    for (let i = 0; i < 3; i++) await get(portA, "/chain")
  }, 180_000)

  afterAll(async () => {
    await Promise.all(running.map((r) => r.stop(3_000)))
  })

  it("each hop receives the caller's 300 ms less what the hops before it spent", async () => {
    // on a saturated machine a round may not fit in 300 ms (then A answers 503): a few tries
    let reply = await get(portA, "/chain", { "x-request-timeout": "300" })
    for (let i = 0; i < 5 && reply.status !== 200; i++) {
      reply = await get(portA, "/chain", { "x-request-timeout": "300" })
    }
    expect(reply.status, reply.body).toBe(200)
    const a = JSON.parse(reply.body) as Hop
    const b = a.downstream as Hop
    const c = b.downstream as Hop
    expect(a.budget).toBe(300)
    // B: at most A's budget less A's 50 ms of work; C: less B's too
    expect(b.budget).toBeLessThanOrEqual(300 - 50)
    expect(c.budget).toBeLessThanOrEqual(300 - 50 - 50)
    // exactly: each hop's budget less the time it took before calling on
    expect(b.budget).toBeLessThanOrEqual(a.budget - a.forwardedAfter)
    expect(c.budget).toBeLessThanOrEqual(b.budget - b.forwardedAfter)
    expect(c.budget).toBeGreaterThan(0)
  })

  it("a slow C: the whole chain stops at the 300 ms deadline", async () => {
    const started = Date.now()
    const reply = await get(portA, "/chain?slow=C", { "x-request-timeout": "300" })
    const elapsed = Date.now() - started
    expect(reply.status).toBe(503)
    expect(JSON.parse(reply.body).error.code).toBe("timeout")
    // 300 ms and the time to answer (a busy machine adds some), far from C's 2 seconds of work
    expect(elapsed).toBeLessThan(1200)
    const c = running[0]
    const m = await c.waitFor(/C interrupted after (\d+) ms \(budget (\d+) ms\)/, 5_000)
    expect(Number(m[2])).toBeLessThanOrEqual(200)
    expect(Number(m[1])).toBeLessThan(Number(m[2]) + 100)
  })

  it("a request arriving with no budget left is answered 504 without running the chain", async () => {
    const reply = await get(portA, "/chain", { "x-request-timeout": "0" })
    expect(reply.status).toBe(504)
    expect(JSON.parse(reply.body).error.code).toBe("deadline_exceeded")
  })
})
