/**
 * A deterministic outage: a downstream that fails every call for 60 virtual seconds, then heals.
 * 1,000 calls per second (100 every 100 ms) for 70 seconds, under TestClock and a seeded Random.
 * The downstream heals 100 ms after a probe failed — the worst moment for a breaker that probes
 * once a second. Reports, and bounds, the share of calls that reached the downstream during the
 * outage and the time from healing until the breaker admits ≥ 95 % of calls for good.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Sre from "../src/internal/breaker/sre.js"

const STEP_MS = 100
const CALLS_PER_STEP = 100
const OUTAGE_MS = 60_100
const TOTAL_MS = 70_000
const SLOT_MS = 100

interface Report {
  readonly leakShare: number
  readonly recoveryMs: number
  /** share of calls admitted in the 5 s after healing */
  readonly admittedFirst5s: number
  /** share of calls admitted from 5 s after healing to the end */
  readonly admittedAfter5s: number
}

/** Admission per 100 ms slot → the report. */
const summarize = (reached: Array<number>, offered: Array<number>): Report => {
  const outageSlots = OUTAGE_MS / SLOT_MS
  let leaked = 0
  let offeredDuringOutage = 0
  for (let i = 0; i < outageSlots; i++) {
    leaked += reached[i]
    offeredDuringOutage += offered[i]
  }
  // recovery: the start of the first slot after which every slot admits ≥ 95 %
  let recoverySlot = reached.length
  for (let i = reached.length - 1; i >= outageSlots; i--) {
    if (reached[i] / offered[i] >= 0.95) recoverySlot = i
    else break
  }
  const share = (from: number, to: number) => {
    let admitted = 0
    let total = 0
    for (let i = from; i < Math.min(to, reached.length); i++) {
      admitted += reached[i]
      total += offered[i]
    }
    return admitted / total
  }
  const fiveSeconds = 5_000 / SLOT_MS
  return {
    leakShare: leaked / offeredDuringOutage,
    recoveryMs: recoverySlot * SLOT_MS - OUTAGE_MS,
    admittedFirst5s: share(outageSlots, outageSlots + fiveSeconds),
    admittedAfter5s: share(outageSlots + fiveSeconds, reached.length)
  }
}

const simulateBreaker = (policy: CircuitBreaker.Policy) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make(policy)
    const slots = TOTAL_MS / SLOT_MS
    const reached = new Array<number>(slots).fill(0)
    const offered = new Array<number>(slots).fill(0)
    let now = 0
    const downstream = Effect.suspend(() => {
      reached[Math.floor(now / SLOT_MS)]++
      return now < OUTAGE_MS ? Effect.fail("unavailable") : Effect.succeed("ok")
    })
    const call = Effect.either(breaker.protect(downstream))
    for (now = 0; now < TOTAL_MS; now += STEP_MS) {
      for (let i = 0; i < CALLS_PER_STEP; i++) {
        offered[Math.floor(now / SLOT_MS)]++
        yield* call
      }
      yield* TestClock.adjust(STEP_MS)
    }
    return summarize(reached, offered)
  }).pipe(Effect.scoped, Effect.withRandom(Random.make(20261124)))

/** The same traffic through the pure adaptive algorithm, optionally with go-zero's counting. */
const simulatePure = (countDrops: boolean): Report => {
  const slots = TOTAL_MS / SLOT_MS
  const reached = new Array<number>(slots).fill(0)
  const offered = new Array<number>(slots).fill(0)
  const state = Sre.make({
    k: 1.5,
    minK: 1.1,
    protection: 5,
    forcePassAfterMillis: 1000,
    windowMillis: 10_000,
    buckets: 40,
    countDrops
  }, 0)
  // a small deterministic generator (mulberry32)
  let seed = 20261124
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let now = 0; now < TOTAL_MS; now += STEP_MS) {
    for (let i = 0; i < CALLS_PER_STEP; i++) {
      const slot = Math.floor(now / SLOT_MS)
      offered[slot]++
      let d = Sre.decide(state, now)
      if (d === Sre.NEED_RANDOM) d = Sre.decideWithRandom(state, now, random())
      if (d !== Sre.ADMIT) continue
      reached[slot]++
      if (now < OUTAGE_MS) Sre.markFailure(state, now)
      else Sre.markSuccess(state, now)
    }
  }
  return summarize(reached, offered)
}

const show = (label: string, r: Report) =>
  console.log(
    `${label.padEnd(34)} reached downstream during outage: ${(r.leakShare * 100).toFixed(3)} %` +
      `  recovered (≥95 % admitted) after: ${(r.recoveryMs / 1000).toFixed(1)} s` +
      `  admitted in the first 5 s: ${(r.admittedFirst5s * 100).toFixed(1)} %, after: ${
        (r.admittedAfter5s * 100).toFixed(1)
      } %`
  )

describe("CircuitBreaker outage simulation (60 s of failures at 1,000 calls/s, then healthy)", () => {
  it.effect("sre: leaks < 0.25 % during the outage and admits ≥ 95 % within 1.5 s of healing", () =>
    Effect.gen(function*() {
      const r = yield* simulateBreaker(CircuitBreaker.sre({ name: "sim-sre" }))
      show("sre (this library)", r)
      expect(r.leakShare).toBeLessThan(0.0025)
      expect(r.recoveryMs).toBeLessThanOrEqual(1_500)
      expect(r.admittedAfter5s).toBeGreaterThanOrEqual(0.95)
    }))

  it.effect("consecutive (threshold 5, openFor 5 s): leaks < 0.1 %, recovers within openFor", () =>
    Effect.gen(function*() {
      const r = yield* simulateBreaker(
        CircuitBreaker.consecutive({ name: "sim-consecutive", threshold: 5, openFor: "5 seconds" })
      )
      show("consecutive (openFor 5 s)", r)
      expect(r.leakShare).toBeLessThan(0.001)
      expect(r.recoveryMs).toBeLessThanOrEqual(5_000)
    }))

  it("the pure algorithm agrees with the service, and go-zero's counting recovers far slower", () => {
    const ours = simulatePure(false)
    const goZero = simulatePure(true)
    show("sre algorithm (pure)", ours)
    show("go-zero counting (drops in total)", goZero)
    expect(ours.recoveryMs).toBeLessThanOrEqual(5_000)
    // the weakness being fixed: with drops in `total` recovery takes longer than 5 s
    expect(goZero.recoveryMs).toBeGreaterThan(5_000)
    expect(goZero.recoveryMs).toBeGreaterThan(ours.recoveryMs * 2)
  })
})
