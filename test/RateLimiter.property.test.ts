/**
 * For random request times and costs, the step functions (run through the memory table, so key
 * expiry is exercised too) take the same decisions as simple reference models written in exact
 * integer arithmetic. Times are ms in the models and µs in the steps.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { Definition, RawDecision } from "../src/internal/ratelimit/core.js"
import * as FixedWindow from "../src/internal/ratelimit/fixedWindow.js"
import * as Gcra from "../src/internal/ratelimit/gcra.js"
import { makeTable } from "../src/internal/ratelimit/memory.js"
import * as SlidingCounter from "../src/internal/ratelimit/slidingCounter.js"
import * as SlidingLog from "../src/internal/ratelimit/slidingLog.js"
import * as TokenBucket from "../src/internal/ratelimit/tokenBucket.js"

interface Request {
  readonly dt: number
  readonly cost: number
}

interface Model {
  readonly take: (now: number, cost: number) => { readonly allowed: boolean; readonly remaining: number }
}

const requests = (maxDt: number, maxCost: number) =>
  fc.array(fc.record({ dt: fc.integer({ min: 0, max: maxDt }), cost: fc.integer({ min: 1, max: maxCost }) }), {
    minLength: 1,
    maxLength: 80
  })

const compare = (def: Definition, model: Model, reqs: ReadonlyArray<Request>, start = 0): void => {
  const table = makeTable(def, { maxKeys: 10, idleTimeToLive: Infinity })
  let now = start
  reqs.forEach((r, i) => {
    now += r.dt
    const got: RawDecision = table.run("k", now * 1000, r.cost, 0)
    const want = model.take(now, r.cost)
    if (got.allowed !== want.allowed || got.remaining !== want.remaining) {
      throw new Error(
        `request ${i} at ${now} (cost ${r.cost}): got ${JSON.stringify(got)}, model ${JSON.stringify(want)}`
      )
    }
  })
}

const runs = { numRuns: 300 }

describe("rate-limit steps match reference models", () => {
  it("token bucket: tokens counted in µs of refill at the last update", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10 }),
        requests(1500, 11),
        (rate, burst, reqs) => {
          const interval = Math.ceil(1e6 / rate - 1e-6) // µs per token, rounded up
          const full = burst * interval
          let level = full
          let last = 0
          const model: Model = {
            take: (now, cost) => {
              level = Math.min(full, level + (now - last) * 1000)
              last = now
              if (cost <= burst && level >= cost * interval) {
                level -= cost * interval
                return { allowed: true, remaining: Math.floor(level / interval) }
              }
              return { allowed: false, remaining: Math.floor(level / interval) }
            }
          }
          compare(TokenBucket.make({ rate, burst }), model, reqs)
        }
      ),
      runs
    )
  })

  it("fixed window: counts per window, unaligned and aligned", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.boolean(),
        requests(1200, 11),
        (limit, windowMs, align, reqs) => {
          const counts = new Map<number, number>()
          let windowStart = -Infinity
          const model: Model = {
            take: (now, cost) => {
              let id: number
              if (align) {
                id = Math.floor(now / windowMs)
              } else {
                if (now >= windowStart + windowMs) windowStart = now
                id = windowStart
              }
              const used = counts.get(id) ?? 0
              if (cost <= limit && used + cost <= limit) {
                counts.set(id, used + cost)
                return { allowed: true, remaining: limit - used - cost }
              }
              return { allowed: false, remaining: limit - used }
            }
          }
          compare(FixedWindow.make({ limit, window: windowMs * 1000, align, offset: 0 }), model, reqs)
        }
      ),
      runs
    )
  })

  it("sliding log: admitted units within the last window", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 2000 }),
        requests(800, 11),
        (limit, windowMs, reqs) => {
          const admitted: Array<number> = []
          const model: Model = {
            take: (now, cost) => {
              const inWindow = admitted.filter((t) => t > now - windowMs).length
              if (cost <= limit && inWindow + cost <= limit) {
                for (let i = 0; i < cost; i++) admitted.push(now)
                return { allowed: true, remaining: limit - inWindow - cost }
              }
              return { allowed: false, remaining: limit - inWindow }
            }
          }
          compare(SlidingLog.make({ limit, window: windowMs * 1000 }), model, reqs)
        }
      ),
      runs
    )
  })

  it("sliding counter: weighted previous window, in integers", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 2000 }),
        requests(900, 21),
        (limit, windowMs, reqs) => {
          const counts = new Map<number, number>()
          const model: Model = {
            take: (now, cost) => {
              const k = Math.floor(now / windowMs)
              const prev = counts.get(k - 1) ?? 0
              const curr = counts.get(k) ?? 0
              const left = windowMs - (now - k * windowMs)
              // estimate · W = prev · left + curr · W
              const admit = cost <= limit && prev * left + (curr + cost) * windowMs <= limit * windowMs
              const after = admit ? curr + cost : curr
              if (admit) counts.set(k, after)
              const remaining = Math.max(0, Math.floor((limit * windowMs - prev * left - after * windowMs) / windowMs))
              return { allowed: admit, remaining }
            }
          }
          compare(SlidingCounter.make({ limit, window: windowMs * 1000 }), model, reqs)
        }
      ),
      runs
    )
  })

  it("GCRA: the equivalent continuous-state leaky bucket", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 10 }),
        requests(600, 11),
        (interval, limit, burst, reqs) => {
          const tau = interval * burst
          let level = 0
          let lastTime = 0
          const model: Model = {
            take: (now, cost) => {
              const drained = Math.max(0, level - (now - lastTime))
              if (cost <= burst && drained + interval * cost <= tau) {
                level = drained + interval * cost
                lastTime = now
                return { allowed: true, remaining: Math.floor((tau - level) / interval) }
              }
              return { allowed: false, remaining: Math.floor((tau - drained) / interval) }
            }
          }
          compare(Gcra.make({ limit, periodMs: interval * limit, burst }), model, reqs)
        }
      ),
      runs
    )
  })

  it("once a step's `until` has passed, the kept state decides like a fresh key", () => {
    const defs: ReadonlyArray<Definition> = [
      TokenBucket.make({ rate: 3, burst: 4 }),
      TokenBucket.make({ rate: 5000, burst: 1 }),
      FixedWindow.make({ limit: 3, window: 250_000, align: true, offset: 0 }),
      SlidingLog.make({ limit: 3, window: 250_000 }),
      SlidingCounter.make({ limit: 3, window: 250_000 }),
      Gcra.make({ limit: 3, periodMs: 1, burst: 2 })
    ]
    fc.assert(
      fc.property(fc.constantFrom(...defs), requests(300, 4), (def, reqs) => {
        let state: unknown = undefined
        let until = Infinity
        let now = 0
        for (const r of reqs) {
          now += r.dt * 1000
          const fresh = def.step(undefined, now, r.cost, 0)
          const kept = def.step(state, now, r.cost, 0)
          if (now >= until) expect(kept.reply).toEqual(fresh.reply)
          expect(Number.isInteger(kept.until)).toBe(true)
          state = kept.state
          until = kept.until
        }
      }),
      runs
    )
  })

  it("token bucket and GCRA: a reservation's delay is the debt over the rate, and cancelling every one restores", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 30 }),
        fc.boolean(),
        (rate, burst, n, gcra) => {
          const def = gcra
            ? Gcra.make({ limit: rate, periodMs: 1000, burst })
            : TokenBucket.make({ rate, burst })
          const interval = Math.ceil(1e6 / rate - 1e-6)
          const table = makeTable(def, { maxKeys: 10, idleTimeToLive: Infinity })
          const acts: Array<number> = []
          for (let i = 1; i <= n; i++) {
            const d = table.run("k", 0, 1, Infinity)
            expect(d.allowed).toBe(true)
            expect(d.delayMs).toBe(Math.max(0, i - burst) * interval / 1000)
            acts.push(d.timeToAct!)
          }
          // latest first: each gives back all it took
          for (let i = n - 1; i >= 0; i--) table.cancel("k", 0, 1, acts[i])
          expect(table.run("k", 0, burst, 0).allowed).toBe(true)
        }
      ),
      { numRuns: 100 }
    )
  })
})
