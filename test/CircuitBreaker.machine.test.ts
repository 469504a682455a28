/**
 * The state machine on its own: invariants over long random sequences of admissions and
 * outcomes (a seeded generator, so a failure replays).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Machine from "../src/internal/breaker/machine.js"

const generator = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const rules = (now: number) => ({
  consecutive: () => Machine.consecutiveRule(3),
  countWindow: () =>
    Machine.countWindowRule(10, { minimumCalls: 5, failureRateThreshold: 0.5, slowCallRateThreshold: 0.5 }),
  timeWindow: () =>
    Machine.timeWindowRule(1000, 10, { minimumCalls: 5, failureRateThreshold: 0.5, slowCallRateThreshold: 0.5 }, now),
  custom: () => Machine.customRule((c) => c.totalFailures >= 4)
})

describe("state machine invariants", () => {
  for (const [label, rule] of Object.entries(rules(0))) {
    it(`${label}: probes never exceed halfOpenMaxCalls, Open rejects, transitions chain`, () => {
      const random = generator(label.length * 7919)
      const s = Machine.make({ intervalMillis: 0, halfOpenMaxCalls: 2, rule: rule() }, 500, 0)
      const inFlight: Array<{ token: number; state: Machine.MachineState }> = []
      let now = 0
      let seen = 0
      let trips = 0
      for (let step = 0; step < 20_000; step++) {
        now += Math.floor(random() * 30)
        const r = random()
        if (r < 0.5) {
          const before = s.state === "Open" && now < s.openUntil ? "Open" : undefined
          const token = Machine.acquire(s, now)
          if (before === "Open") expect(token).toBe(Machine.REJECT)
          if (token !== Machine.REJECT) inFlight.push({ token, state: s.state })
          if (s.state === "HalfOpen") {
            expect(inFlight.filter((c) => c.token === s.generation).length).toBeLessThanOrEqual(2)
          }
        } else if (inFlight.length > 0) {
          const call = inFlight.splice(Math.floor(random() * inFlight.length), 1)[0]
          const outcome = random()
          if (outcome < 0.45) Machine.failure(s, call.token, now, random() < 0.2)
          else if (outcome < 0.95) Machine.success(s, call.token, now, random() < 0.2)
          else Machine.ignore(s, call.token, now)
        }
        for (; seen < s.pending.length; seen++) {
          const t = s.pending[seen]
          const previous = seen === 0 ? "Closed" : s.pending[seen - 1].to
          expect(t.from).toBe(previous)
          expect(t.from).not.toBe(t.to)
          if (t.to === "Open") trips++
          if (t.from === "Open") expect(t.to).toBe("HalfOpen")
          if (t.to === "Closed") expect(t.from).toBe("HalfOpen")
        }
      }
      // the sequence exercised every state
      expect(trips).toBeGreaterThan(5)
      expect(s.pending.some((t) => t.to === "Closed")).toBe(true)
    })
  }

  it("interval rolls the counts over while Closed, never while Open", () => {
    const s = Machine.make({ intervalMillis: 100, halfOpenMaxCalls: 1, rule: Machine.consecutiveRule(2) }, 1000, 0)
    Machine.failure(s, Machine.acquire(s, 10), 10, false)
    expect(s.counts.totalFailures).toBe(1)
    expect(Machine.acquire(s, 150)).toBe(s.generation)
    expect(s.counts.totalFailures).toBe(0)
    Machine.failure(s, s.generation, 150, false)
    Machine.failure(s, Machine.acquire(s, 160), 160, false)
    expect(s.state).toBe("Open")
    Machine.tick(s, 500)
    expect(s.state).toBe("Open")
    Machine.tick(s, 1160)
    expect(s.state).toBe("HalfOpen")
  })
})
