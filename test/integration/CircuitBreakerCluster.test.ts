/**
 * Clustered breakers against a real Redis: three instances (three independent clients) with a
 * failing downstream. A quorum opens everyone once reached and not before; a shared state opens
 * and closes everyone and outlives a restart; Redis killed mid-run leaves each on its local state.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as CircuitBreakerCluster from "../../src/CircuitBreakerCluster.js"
import { InvalidOptionsError } from "../../src/Errors.js"
import * as RedisStore from "../../src/RedisStore.js"
import * as ResilienceMode from "../../src/ResilienceMode.js"
import { type RedisServer, redisServerMissing, startRedis } from "./redisServer.js"

const missing = redisServerMissing()

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(effect).pipe(Logger.withMinimumLogLevel(LogLevel.Error)))

const failing = Effect.fail("downstream down")
const ok = Effect.succeed("ok")

/** Polls `check` every 10 ms until it holds; fails after `ms`. */
const until = (what: string, check: Effect.Effect<boolean>, ms = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`${what}: not within ${ms} ms`))
      yield* Effect.sleep("10 millis")
    }
  })

const states = (breakers: ReadonlyArray<CircuitBreaker.CircuitBreaker>) => Effect.forEach(breakers, (b) => b.state)

const trip = (breaker: CircuitBreaker.CircuitBreaker) => Effect.repeatN(Effect.either(breaker.protect(failing)), 2)

describe.skipIf(missing !== undefined)("CircuitBreakerCluster (real Redis on 127.0.0.1)", () => {
  let server: RedisServer

  beforeAll(async () => {
    server = await startRedis()
  }, 120_000)

  afterAll(async () => {
    await server?.stop()
  })

  /** Three instances of one breaker, each with its own Redis connection. */
  const instances = (name: string, mode: CircuitBreakerCluster.Mode, openFor: CircuitBreaker.OpenFor = "1 second") =>
    Effect.forEach(["a", "b", "c"], (instance) =>
      Effect.flatMap(
        RedisStore.connect(server.url),
        (client) =>
          CircuitBreakerCluster.make(CircuitBreaker.consecutive({ name, threshold: 3, openFor }), {
            mode,
            client,
            instance,
            interval: "50 millis"
          })
      ))

  it(
    "quorum(2): none opens on one instance's failures, all open once two tripped; Redis killed → local",
    () =>
      run(Effect.gen(function*() {
        const [a, b, c] = yield* instances("quorum", CircuitBreakerCluster.quorum(2))
        yield* trip(a)
        expect(yield* a.state).toBe("Open")
        // several sync rounds: one report is below the quorum
        yield* Effect.sleep("400 millis")
        expect(yield* states([b, c])).toEqual(["Closed", "Closed"])
        yield* trip(b)
        yield* until("c opens on the quorum", Effect.map(c.state, (s) => s === "Open"), 2_000)
        expect(yield* states([a, b, c])).toEqual(["Open", "Open", "Open"])

        yield* Effect.promise(() => server.kill())
        // c closes by its own probe once its open period is over, with nobody to tell it otherwise
        yield* Effect.sleep("1100 millis")
        expect(yield* c.protect(ok)).toBe("ok")
        expect(yield* c.state).toBe("Closed")
        // and trips by itself, at once: calls never wait for Redis
        const started = Date.now()
        yield* trip(c)
        expect(Date.now() - started).toBeLessThan(50)
        expect(yield* c.state).toBe("Open")
        yield* Effect.sleep("1100 millis")
        expect(yield* c.protect(ok)).toBe("ok")
        yield* Effect.promise(() => server.start())
      })),
    30_000
  )

  it(
    "quorum: after the quorum each closes by its own probes, and a closed one stays closed",
    () =>
      run(Effect.gen(function*() {
        const [a, b, c] = yield* instances("quorum-close", CircuitBreakerCluster.quorum(2))
        yield* trip(a)
        yield* trip(b)
        yield* until("c opens on the quorum", Effect.map(c.state, (s) => s === "Open"), 2_000)
        yield* Effect.sleep("1100 millis")
        // c's half-open call succeeds: Closed, while a and b still report the downstream failing
        expect(yield* c.protect(ok)).toBe("ok")
        yield* Effect.sleep("300 millis")
        expect(yield* c.state).toBe("Closed")
      })),
    30_000
  )

  it(
    "shared: a trip opens everyone, a close anywhere closes everyone, and a restart starts Open",
    () =>
      run(Effect.gen(function*() {
        const [a, b, c] = yield* instances("shared", CircuitBreakerCluster.shared, "30 seconds")
        yield* trip(a)
        yield* until("b and c open", Effect.map(states([b, c]), (s) => s.every((x) => x === "Open")), 2_000)
        // a later instance (a restart) reads the shared state
        const client = yield* RedisStore.connect(server.url)
        const restarted = yield* CircuitBreakerCluster.make(
          CircuitBreaker.consecutive({ name: "shared", threshold: 3, openFor: "30 seconds" }),
          { mode: CircuitBreakerCluster.shared, client, interval: "50 millis" }
        )
        yield* until("the restarted instance opens", Effect.map(restarted.state, (s) => s === "Open"), 2_000)
        // an operator's reset on one instance is a close there: everyone follows
        yield* b.reset
        yield* until(
          "everyone closes",
          Effect.map(states([a, c, restarted]), (s) => s.every((x) => x === "Closed")),
          2_000
        )
      })),
    30_000
  )

  it("with Redis unreachable from the start a clustered breaker is a local one", () =>
    run(Effect.gen(function*() {
      const down: RedisStore.RedisClient = {
        evalsha: () => Promise.reject(new Error("ECONNREFUSED")),
        scriptLoad: () => Promise.reject(new Error("ECONNREFUSED")),
        ping: () => Promise.reject(new Error("ECONNREFUSED")),
        quit: () => Promise.resolve()
      }
      const breaker = yield* CircuitBreakerCluster.make(
        CircuitBreaker.consecutive({ name: "offline", threshold: 3, openFor: "200 millis" }),
        { mode: CircuitBreakerCluster.quorum(2), client: down, interval: "20 millis" }
      )
      yield* trip(breaker)
      expect(yield* breaker.state).toBe("Open")
      yield* Effect.sleep("250 millis")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    })))

  it(
    "in shadow mode the quorum still opens the breaker, and calls are admitted anyway",
    () =>
      run(
        Effect.gen(function*() {
          const [a, b, c] = yield* instances("shadow-quorum", CircuitBreakerCluster.quorum(2))
          yield* trip(a)
          yield* trip(b)
          yield* until("c opens on the quorum", Effect.map(c.state, (s) => s === "Open"), 2_000)
          // the switch is on: the open breaker decides, the call still runs
          expect(yield* c.protect(ok)).toBe("ok")
        }).pipe(Effect.provide(ResilienceMode.layerShadow(true)))
      ),
    30_000
  )

  it("refuses the adaptive policy and bad options", () =>
    run(Effect.gen(function*() {
      const client = yield* RedisStore.connect(server.url)
      const sre = yield* Effect.flip(
        CircuitBreakerCluster.make(CircuitBreaker.sre({ name: "x" }), { mode: CircuitBreakerCluster.shared, client })
      )
      expect(sre).toBeInstanceOf(InvalidOptionsError)
      expect(sre.option).toBe("mode")
      const zero = yield* Effect.flip(
        CircuitBreakerCluster.make(CircuitBreaker.consecutive({ name: "x" }), {
          mode: CircuitBreakerCluster.quorum(0),
          client
        })
      )
      expect(zero.option).toBe("mode.n")
      // local: the plain breaker, even for the adaptive policy
      const local = yield* CircuitBreakerCluster.make(CircuitBreaker.sre({ name: "x" }), {
        mode: CircuitBreakerCluster.local,
        client
      })
      expect(yield* local.protect(ok)).toBe("ok")
    })))
})
