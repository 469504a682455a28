import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as AdaptiveLimiter from "../src/AdaptiveLimiter.js"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as CpuUsage from "../src/CpuUsage.js"
import { CircuitOpenError } from "../src/Errors.js"
import * as Shadow from "../src/internal/shadow.js"
import * as LoadShedder from "../src/LoadShedder.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import * as ResilienceMode from "../src/ResilienceMode.js"

const wouldReject = (policy: Shadow.PolicyKind, name: string) =>
  Metric.value(Shadow.wouldRejectCounter(policy, name)).pipe(Effect.map((state) => state.count))

const shadowOn = Effect.provide(ResilienceMode.layerShadow(true))

/** A breaker that opens on the first failure and stays open for a minute. */
const tripped = (name: string) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name, threshold: 1, openFor: "1 minute" }))
    yield* ResilienceMode.setShadow(false)
    yield* Effect.exit(breaker.protect(Effect.fail("boom")))
    expect(yield* breaker.state).toBe("Open")
    return breaker
  })

describe("shadow mode", () => {
  it.scoped("a breaker keeps its state but runs the calls it would reject, and counts them", () =>
    Effect.gen(function*() {
      const breaker = yield* tripped("shadow-breaker")
      const before = yield* wouldReject("circuit_breaker", "shadow-breaker")
      expect(yield* Effect.exit(breaker.protect(Effect.succeed(1)))).toStrictEqual(
        Exit.fail(expect.any(CircuitOpenError) as never)
      )
      yield* ResilienceMode.setShadow(true)
      let runs = 0
      for (let i = 0; i < 3; i++) {
        expect(yield* breaker.protect(Effect.sync(() => ++runs))).toBe(i + 1)
      }
      expect(yield* breaker.state).toBe("Open")
      expect((yield* wouldReject("circuit_breaker", "shadow-breaker")) - before).toBe(3)
      // a two-step caller gets a permit that reports nothing
      const permit = yield* breaker.allow
      yield* permit.success
      expect(yield* breaker.state).toBe("Open")
      // the open period ends as usual: the probe is admitted by the breaker itself
      yield* TestClock.adjust("1 minute")
      yield* breaker.protect(Effect.void)
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(shadowOn))

  it.scoped("a CircuitOpenError raised by the work itself is the work's failure, not a rejection", () =>
    Effect.gen(function*() {
      const inner = yield* tripped("shadow-inner")
      const outer = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "shadow-outer", threshold: 5 }))
      yield* ResilienceMode.setShadow(true)
      let runs = 0
      // the inner breaker is shadowed too, so its work runs; the outer one sees the work's own error
      const work = Effect.suspend(() => {
        runs++
        return Effect.fail(new CircuitOpenError({ breaker: "elsewhere", state: "Open" }))
      })
      const exit = yield* Effect.exit(outer.protect(inner.protect(work)))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(runs).toBe(1)
      expect(yield* wouldReject("circuit_breaker", "shadow-outer")).toBe(0)
    }).pipe(shadowOn))

  it.scoped("switched off at run time, the same breaker rejects again", () =>
    Effect.gen(function*() {
      const breaker = yield* tripped("shadow-toggle")
      yield* ResilienceMode.setShadow(true)
      expect(yield* breaker.protect(Effect.succeed("ran"))).toBe("ran")
      yield* ResilienceMode.setShadow(false)
      const exit = yield* Effect.exit(breaker.protect(Effect.succeed("ran")))
      expect(Exit.isFailure(exit)).toBe(true)
    }).pipe(shadowOn))

  it.scoped("without a switch in context a policy is the plain policy", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(CircuitBreaker.consecutive({ name: "plain", threshold: 1 }))
      expect(breaker.constructor.name).toBe("Breaker")
    }))

  it.effect("a rate limiter reports allowed, never fails or waits, and counts denials", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({
        name: "shadow-limiter",
        algorithm: RateLimiter.tokenBucket({ rate: 1, burst: 1 }),
        onExceeded: "wait"
      })
      expect((yield* limiter.take("k")).allowed).toBe(true)
      const denied = yield* limiter.take("k")
      expect(denied).toMatchObject({ allowed: true, remaining: 0 })
      yield* limiter.acquire("k") // would wait a second: returns at once
      expect(yield* Effect.succeed("done").pipe(limiter.protect("k"))).toBe("done")
      expect((yield* limiter.take("k", 5)).allowed).toBe(true) // above capacity
      expect(yield* wouldReject("rate_limiter", "shadow-limiter")).toBe(4)
      yield* ResilienceMode.setShadow(false)
      expect((yield* limiter.take("k")).allowed).toBe(false)
    }).pipe(Effect.provide(Layer.merge(RateLimiterStore.layerMemory(), ResilienceMode.layerShadow(true)))))

  it.scoped("a full bulkhead runs the call without a permit", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "shadow-bulkhead", maxConcurrent: 1 })
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(release)))
      yield* TestClock.adjust(1)
      expect(yield* bulkhead.protect(Effect.succeed("ran"))).toBe("ran")
      expect(yield* bulkhead.tryProtect(Effect.succeed("ran"))).toBe("ran")
      expect(yield* bulkhead.tryPromise(() => Promise.resolve("ran"))).toBe("ran")
      expect((yield* bulkhead.stats).rejected).toBe(3)
      expect(yield* wouldReject("bulkhead", "shadow-bulkhead")).toBe(3)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    }).pipe(shadowOn))

  it.scoped("a registry's breakers are shadowed too, through protect and through get", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({
        policy: (name) => CircuitBreaker.consecutive({ name, threshold: 1, openFor: "1 minute" })
      })
      yield* ResilienceMode.setShadow(false)
      yield* Effect.exit(registry.protect("shadow-reg")(Effect.fail("boom")))
      expect(yield* (yield* registry.get("shadow-reg")).state).toBe("Open")
      expect(Exit.isFailure(yield* Effect.exit(registry.protect("shadow-reg")(Effect.succeed(1))))).toBe(true)
      yield* ResilienceMode.setShadow(true)
      expect(yield* registry.protect("shadow-reg")(Effect.succeed("ran"))).toBe("ran")
      expect(yield* (yield* registry.get("shadow-reg")).protect(Effect.succeed("ran"))).toBe("ran")
      expect(yield* wouldReject("circuit_breaker", "shadow-reg")).toBe(2)
      expect(yield* (yield* registry.get("shadow-reg")).state).toBe("Open")
    }).pipe(shadowOn))

  it.scoped("a registry's full bulkhead runs the call without a permit", () =>
    Effect.gen(function*() {
      const registry = yield* Bulkhead.makeRegistry({ create: (name) => ({ name, maxConcurrent: 1 }) })
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(registry.protect("shadow-reg-bulkhead", Deferred.await(release)))
      yield* TestClock.adjust(1)
      expect(yield* registry.protect("shadow-reg-bulkhead", Effect.succeed("ran"))).toBe("ran")
      expect(yield* wouldReject("bulkhead", "shadow-reg-bulkhead")).toBe(1)
      yield* ResilienceMode.setShadow(false)
      expect(Exit.isFailure(yield* Effect.exit(registry.protect("shadow-reg-bulkhead", Effect.succeed("ran"))))).toBe(
        true
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    }).pipe(shadowOn))

  it.scoped("an adaptive limiter at its limit hands out a ticket that reports nothing", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimiter.make({
        name: "shadow-adaptive",
        initialLimit: 1,
        minLimit: 1,
        maxLimit: 1
      })
      const first = yield* limiter.allow
      const second = yield* limiter.allow
      yield* second.fail
      expect(yield* limiter.protect(Effect.succeed("ran"))).toBe("ran")
      expect(yield* limiter.stats).toMatchObject({ inFlight: 1, rejected: 2, failed: 0 })
      yield* first.pass
      expect(yield* wouldReject("adaptive_limiter", "shadow-adaptive")).toBe(2)
    }).pipe(shadowOn))

  it.scoped("an overloaded shedder admits, logs the first would-reject once, and counts every one", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => lines.push(String(message)))
      const shedder = yield* LoadShedder.make({ signal: LoadShedder.cpu(), name: "shadow-shedder" })
      for (let bucket = 0; bucket < 10; bucket++) {
        const tickets = yield* Effect.all(Array.from({ length: 10 }, () => shedder.allow))
        yield* TestClock.adjust(10)
        yield* Effect.forEach(tickets, (t) => t.pass, { discard: true })
        yield* TestClock.adjust(90)
      }
      yield* CpuUsage.set(1000)
      const first = yield* shedder.allow
      yield* Effect.gen(function*() {
        yield* shedder.allow
        expect(yield* shedder.protect(Effect.succeed("ran"))).toBe("ran")
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* first.pass
      expect((yield* shedder.stats).dropped).toBe(2)
      expect(yield* wouldReject("load_shedder", "shadow-shedder")).toBe(2)
      expect(lines.filter((line) => line.includes("would reject"))).toHaveLength(1)
    }).pipe(
      Effect.provide(Layer.merge(CpuUsage.layerTest(0), ResilienceMode.layerShadow(true))),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_MODE", "pro"]])))
    ))

  it.effect("layerShadowConfig reads RESILIENCE_SHADOW, off by default", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.map(ResilienceMode.Shadow, (s) => s.enabled).pipe(
          Effect.provide(ResilienceMode.layerShadowConfig),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))
        )
      expect(yield* read([])).toBe(false)
      expect(yield* read([[ResilienceMode.shadowConfigKey, "true"]])).toBe(true)
      const bad = yield* Effect.flip(read([[ResilienceMode.shadowConfigKey, "maybe"]]))
      expect(bad._tag).toBe("InvalidOptionsError")
    }))
})
