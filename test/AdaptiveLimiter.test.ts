import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Stream, TestClock } from "effect"
import * as AdaptiveLimiter from "../src/AdaptiveLimiter.js"
import { InvalidOptionsError, OverloadedError, TimeoutError } from "../src/Errors.js"
import * as Limit from "../src/internal/adaptiveLimit.js"

const bounds: Limit.Bounds = { min: 1, max: 1000 }
const g2: Limit.Gradient2 = { _tag: "Gradient2", tolerance: 1.5, smoothing: 0.2, queueSize: 4, longWindow: 600 }
const vegas: Limit.Vegas = { _tag: "Vegas", smoothing: 1, probeMultiplier: 30, alpha: 3, beta: 6 }
const aimd: Limit.Aimd = { _tag: "Aimd", backoffRatio: 0.9, latencyThreshold: 100 }

describe("adaptive limit algorithms", () => {
  it("gradient2 grows by the queue allowance while latency is flat", () => {
    const state = Limit.make(20, 1)
    for (let i = 0; i < 10; i++) Limit.gradient2(g2, state, { rtt: 10, inflight: 20, dropped: false }, bounds)
    // each sample: 0.8 · L + 0.2 · (L + 4)
    expect(state.limit).toBeCloseTo(28, 10)
  })

  it("gradient2 shrinks when short RTT exceeds 1.5 × long RTT, at most halving the estimate", () => {
    const state = Limit.make(100, 1)
    for (let i = 0; i < 10; i++) Limit.gradient2(g2, state, { rtt: 10, inflight: 100, dropped: false }, bounds)
    const before = state.limit
    Limit.gradient2(g2, state, { rtt: 30, inflight: Math.floor(before), dropped: false }, bounds)
    // gradient = 1.5 · 10 / 30 = 0.5; no queue allowance: 0.8 L + 0.2 · 0.5 L
    expect(state.limit).toBeCloseTo(before * 0.9, 1)
    const again = state.limit
    Limit.gradient2(g2, state, { rtt: 1000, inflight: Math.floor(again), dropped: false }, bounds)
    expect(state.limit).toBeCloseTo(again * 0.9, 1) // clamped at 0.5
  })

  it("gradient2 does not move while fewer than half the limit are in flight", () => {
    const state = Limit.make(40, 1)
    for (let i = 0; i < 20; i++) Limit.gradient2(g2, state, { rtt: 10 + i * 10, inflight: 5, dropped: false }, bounds)
    expect(state.limit).toBe(40)
  })

  it("gradient2's long RTT does not learn from saturated samples", () => {
    const state = Limit.make(10, 1)
    for (let i = 0; i < 10; i++) Limit.gradient2(g2, state, { rtt: 10, inflight: 10, dropped: false }, bounds)
    const long = state.longRtt
    for (let i = 0; i < 1000; i++) {
      Limit.gradient2(g2, state, { rtt: 50, inflight: Limit.limitOf(state, bounds), dropped: false }, bounds)
    }
    expect(state.longRtt).toBe(long)
    expect(Limit.limitOf(state, bounds)).toBeLessThan(10)
    // with spare capacity it follows
    for (let i = 0; i < 1000; i++) Limit.gradient2(g2, state, { rtt: 50, inflight: 0, dropped: false }, bounds)
    expect(state.longRtt).toBeGreaterThan(40)
  })

  it("vegas grows on a short queue, shrinks on a long one and on drops", () => {
    const state = Limit.make(20, 1)
    Limit.vegas(vegas, state, { rtt: 10, inflight: 20, dropped: false }, bounds) // learns rttNoLoad
    expect(state.rttNoLoad).toBe(10)
    Limit.vegas(vegas, state, { rtt: 10, inflight: 20, dropped: false }, bounds) // queue 0 → +6
    expect(state.limit).toBe(26)
    Limit.vegas(vegas, state, { rtt: 20, inflight: 26, dropped: false }, bounds) // queue 13 > 6 → −1
    expect(state.limit).toBe(25)
    Limit.vegas(vegas, state, { rtt: 11, inflight: 25, dropped: false }, bounds) // queue 3 ≤ 1? no, < 3? no → hold
    expect(state.limit).toBe(25)
    Limit.vegas(vegas, state, { rtt: 10, inflight: 25, dropped: true }, bounds)
    expect(state.limit).toBe(24)
    expect(Limit.log10Root(5)).toBe(1)
    expect(Limit.log10Root(150)).toBe(2)
  })

  it("aimd adds one while in use, backs off on drops and slow samples", () => {
    const state = Limit.make(20, 1)
    Limit.aimd(aimd, state, { rtt: 10, inflight: 10, dropped: false }, bounds)
    expect(state.limit).toBe(21)
    Limit.aimd(aimd, state, { rtt: 10, inflight: 2, dropped: false }, bounds)
    expect(state.limit).toBe(21)
    Limit.aimd(aimd, state, { rtt: 101, inflight: 21, dropped: false }, bounds)
    expect(state.limit).toBe(18)
    Limit.aimd(aimd, state, { rtt: 1, inflight: 18, dropped: true }, bounds)
    expect(state.limit).toBe(16)
    for (let i = 0; i < 100; i++) Limit.aimd(aimd, state, { rtt: 1, inflight: 1, dropped: true }, { min: 3, max: 50 })
    expect(state.limit).toBe(3)
  })
})

/**
 * A server whose latency is `base` up to `knee` requests in flight and grows in proportion beyond:
 * capacity `knee / base` requests per ms. Offered load ramps up to `rate` requests per ms over
 * `ramp` ms and stays there until `millis`. Time moves in steps of `step` ms; the server completes
 * due requests after each step (one timer for all of them keeps the simulation fast).
 */
const simulate = (
  protect: (<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OverloadedError, R>) | undefined,
  options: {
    readonly knee: number
    readonly base: number
    readonly rate: number
    readonly ramp: number
    readonly millis: number
    readonly step: number
  },
  limit?: Effect.Effect<number>
) =>
  Effect.gen(function*() {
    let now = 0
    let completed = 0
    const running: Array<{ readonly deadline: number; readonly done: Deferred.Deferred<void> }> = []
    const request = Effect.flatMap(Deferred.make<void>(), (done) =>
      Effect.suspend(() => {
        const latency = options.base * Math.max(1, (running.length + 1) / options.knee)
        running.push({ deadline: now + latency, done })
        return Deferred.await(done)
      }))
    const call = protect === undefined ? request : protect(request)
    const peaks: Array<number> = []
    const limits: Array<number> = []
    const completedAt: Array<number> = []
    let peak = 0
    let due = 0
    for (let t = 0; t < options.millis; t += options.step) {
      due += options.step * options.rate * Math.min(1, (t + options.step) / options.ramp)
      for (; due >= 1; due--) yield* Effect.fork(Effect.exit(call))
      yield* Effect.yieldNow()
      if (running.length > peak) peak = running.length
      yield* TestClock.adjust(options.step)
      now = t + options.step
      for (let i = running.length - 1; i >= 0; i--) {
        if (running[i].deadline <= now) {
          const [entry] = running.splice(i, 1)
          completed++
          yield* Deferred.succeed(entry.done, undefined)
        }
      }
      yield* Effect.yieldNow()
      completedAt.push(completed)
      if (now % 100 === 0) {
        peaks.push(peak)
        peak = 0
        if (limit !== undefined) limits.push(yield* limit)
      }
    }
    return { peaks, limits, completedAt }
  })

const knee = 10
const base = 50 // capacity: knee / base = 0.2 requests per ms
const capacity = knee / base
// 5× capacity, reached after one second, for five seconds in all
const overload = { knee, base, rate: 5 * capacity, ramp: 1000, millis: 5000, step: 5 }

const converges = (algorithm: AdaptiveLimiter.Algorithm) =>
  Effect.gen(function*() {
    const limiter = yield* AdaptiveLimiter.make({ name: `sim-${algorithm._tag}`, algorithm })
    const run = yield* simulate(limiter.protect, overload, limiter.limit)
    const steady = run.limits.slice(20) // from 2 s on
    // the limit settles near the knee: enough to use the capacity, little queueing beyond it
    for (const limit of steady) {
      expect(limit).toBeGreaterThanOrEqual(knee)
      expect(limit).toBeLessThanOrEqual(2.5 * knee)
    }
    // in flight stays bounded
    expect(Math.max(...run.peaks)).toBeLessThanOrEqual(3 * knee)
    // goodput from 2 s on: at least 80 % of capacity
    const perStep = overload.step
    const done = run.completedAt[overload.millis / perStep - 1] - run.completedAt[2000 / perStep - 1]
    expect(done).toBeGreaterThanOrEqual(0.8 * 3000 * capacity)
    const stats = yield* limiter.stats
    expect(stats.rejected).toBeGreaterThan(stats.admitted)
    return steady
  })

describe("AdaptiveLimiter under 5× overload (TestClock)", () => {
  it.scoped("without a limit, in flight grows without bound", () =>
    Effect.gen(function*() {
      const run = yield* simulate(undefined, { ...overload, millis: 2000 })
      // the backlog grows by up to 4 × capacity per ms once the ramp is done
      expect(Math.max(...run.peaks)).toBeGreaterThan(10 * knee)
    }))

  it.scoped("the view follows every move of the limit", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "view", algorithm: AdaptiveLimiter.gradient2() })
      const moves: Array<number> = []
      const views: Array<AdaptiveLimiter.Stats> = []
      yield* Effect.forkScoped(Stream.runForEach(limiter.changes, (l) => Effect.sync(() => moves.push(l))))
      yield* Effect.forkScoped(Stream.runForEach(limiter.view.changes, (s) => Effect.sync(() => views.push(s))))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      const initial = yield* limiter.limit
      yield* simulate(limiter.protect, { ...overload, millis: 2000 }, limiter.limit)
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(moves.length).toBeGreaterThan(3)
      expect(views.map((s) => s.limit)).toEqual([initial, ...moves])
    }))

  it.scoped("gradient2 converges near the knee", () => converges(AdaptiveLimiter.gradient2()))
  it.scoped("vegas converges near the knee", () => converges(AdaptiveLimiter.vegas()))
  it.scoped(
    "aimd with a latency threshold converges near the knee",
    () => converges(AdaptiveLimiter.aimd({ latencyThreshold: "75 millis" }))
  )
})

describe("AdaptiveLimiter", () => {
  it.scoped("rejects with OverloadedError(concurrency) when in flight reaches the limit", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "tight", initialLimit: 2, minLimit: 2, maxLimit: 2 })
      const a = yield* limiter.allow
      const b = yield* limiter.allow
      const rejected = yield* Effect.exit(limiter.allow)
      expect(rejected).toStrictEqual(Exit.fail(new OverloadedError({ shedder: "tight", reason: "concurrency" })))
      expect(yield* Effect.exit(limiter.protect(Effect.void))).toStrictEqual(rejected)
      yield* a.ignore
      yield* a.pass // only the first call counts
      yield* b.fail
      const stats = yield* limiter.stats
      expect(stats).toMatchObject({ inFlight: 0, admitted: 2, rejected: 2, passed: 0, failed: 1, ignored: 1, limit: 2 })
    }))

  it.scoped("protect: success passes, TimeoutError fails, other errors, defects and interruption are ignored", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "outcomes", algorithm: AdaptiveLimiter.aimd() })
      yield* limiter.protect(Effect.void)
      yield* Effect.exit(limiter.protect(Effect.fail(new TimeoutError({ duration: Duration.seconds(1) }))))
      yield* Effect.exit(limiter.protect(Effect.fail("not found")))
      yield* Effect.exit(limiter.protect(Effect.die("bug")))
      yield* Effect.exit(limiter.protect(Effect.fail("custom drop"), { isDrop: (e) => e === "custom drop" }))
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(AdaptiveLimiter.protect(limiter))
      )
      yield* Deferred.await(started)
      expect((yield* limiter.stats).inFlight).toBe(1)
      yield* Fiber.interrupt(fiber)
      expect(yield* limiter.stats).toMatchObject({ inFlight: 0, admitted: 6, passed: 1, failed: 2, ignored: 3 })
    }))

  it.scoped("a throwing isDrop predicate does not leave the request in flight", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "throwing" })
      const exit = yield* Effect.exit(limiter.protect(Effect.fail("e"), {
        isDrop: () => {
          throw new Error("bad predicate")
        }
      }))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* limiter.stats).toMatchObject({ inFlight: 0, ignored: 1 })
    }))

  it.scoped("a window of drops backs the limit off; one of fast passes grows it", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "aimd", algorithm: AdaptiveLimiter.aimd(), initialLimit: 10 })
      const round = (outcome: "pass" | "fail", count = 10) =>
        Effect.gen(function*() {
          yield* TestClock.adjust(20)
          const tickets = yield* Effect.all(Array.from({ length: count }, () => limiter.allow))
          yield* TestClock.adjust(10)
          yield* Effect.forEach(tickets, (t) => t[outcome], { discard: true })
        })
      yield* round("fail")
      expect(yield* limiter.limit).toBe(9)
      yield* round("pass", 9) // 9 samples: the window stays open
      expect(yield* limiter.limit).toBe(9)
      yield* round("pass", 9)
      expect(yield* limiter.limit).toBe(10)
    }))

  it.scoped("publishes limit changes", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({ name: "changes", initialLimit: 4 })
      const collected = yield* Effect.fork(Stream.runCollect(Stream.take(limiter.changes, 3)))
      yield* Effect.yieldNow()
      // latency flat with the limit in use: gradient2 grows by 0.8 per window
      for (let i = 0; i < 20; i++) {
        const tickets = yield* Effect.all(Array.from({ length: 4 }, () => limiter.allow))
        yield* TestClock.adjust(10)
        yield* Effect.forEach(tickets, (t) => t.pass, { discard: true })
      }
      const values = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(values).toStrictEqual([5, 6, 7])
    }))

  it.effect.each(
    [
      [{ name: "" }, "name"],
      [{ name: "x", initialLimit: 0 }, "initialLimit"],
      [{ name: "x", minLimit: 1.5 }, "minLimit"],
      [{ name: "x", maxLimit: -1 }, "maxLimit"],
      [{ name: "x", minLimit: 10, maxLimit: 5 }, "minLimit"],
      [{ name: "x", initialLimit: 50, maxLimit: 40 }, "initialLimit"],
      [{ name: "x", algorithm: AdaptiveLimiter.gradient2({ smoothing: 0 }) }, "algorithm.options.smoothing"],
      [{ name: "x", algorithm: AdaptiveLimiter.gradient2({ tolerance: 0.5 }) }, "algorithm.options.tolerance"],
      [{ name: "x", algorithm: AdaptiveLimiter.vegas({ alpha: Number.NaN }) }, "algorithm.options.alpha"],
      [{ name: "x", algorithm: AdaptiveLimiter.vegas({ alpha: 6, beta: 3 }) }, "algorithm.options.beta"],
      [{ name: "x", algorithm: AdaptiveLimiter.vegas({ beta: 3 }) }, "algorithm.options.beta"],
      [{ name: "x", algorithm: AdaptiveLimiter.aimd({ backoffRatio: 1 }) }, "algorithm.options.backoffRatio"],
      [
        { name: "x", algorithm: AdaptiveLimiter.aimd({ latencyThreshold: "-1 seconds" }) },
        "algorithm.options.latencyThreshold"
      ],
      [{ name: "x", algorithm: { _tag: "Cubic" } as unknown as AdaptiveLimiter.Algorithm }, "algorithm"]
    ] as const
  )("rejects bad options %j", ([options, option]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(AdaptiveLimiter.make(options as AdaptiveLimiter.Options))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.option).toBe(option)
    }).pipe(Effect.scoped))
})
