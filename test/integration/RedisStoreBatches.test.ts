/**
 * RedisStore batches (plain takes issued together, sent as one script call) with a client the
 * test answers by hand: what goes out together, and that each take keeps its own reply, timeout,
 * interruption and failure. The real-server batch tests (decisions, parity with the TypeScript
 * step) are in RedisStore.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RedisStore from "../../src/RedisStore.js"

interface Sent {
  readonly keys: ReadonlyArray<string>
  readonly args: ReadonlyArray<string>
  readonly whole: boolean
  readonly answer: (reply: unknown) => void
  readonly fail: (error: Error) => void
}

/** A single-node client whose calls wait until the test answers them; heartbeats answer at once. */
const byHand = (singleNode = true) => {
  const sent: Array<Sent> = []
  let noScript = false
  const call = (whole: boolean) => (_: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => {
    if (keys[0].endsWith("{instances}")) return Promise.resolve(1)
    if (!whole && noScript) return Promise.reject(new Error("NOSCRIPT No matching script. Please use EVAL."))
    return new Promise<unknown>((resolve, reject) => sent.push({ keys, args, whole, answer: resolve, fail: reject }))
  }
  const client: RedisStore.RedisClient = {
    evalsha: call(false),
    eval: call(true),
    scriptLoad: () => Promise.resolve("sha"),
    ping: () => Promise.resolve("PONG"),
    quit: () => Promise.resolve("OK"),
    singleNode
  }
  return {
    client,
    sent,
    flush: () => {
      noScript = true
    }
  }
}

const limiterOn = (client: RedisStore.RedisClient, options: Omit<RedisStore.Options, "client"> = {}) =>
  Effect.flatMap(
    Layer.build(RedisStore.layer({ client, onError: "fail-closed", ...options })),
    (context) =>
      RateLimiter.make({ name: "api", algorithm: RateLimiter.tokenBucket({ rate: 10, burst: 5 }) }).pipe(
        Effect.provide(context)
      )
  )

/** Waits (live clock) until `n` calls have been sent. */
const sentCount = (sent: ReadonlyArray<Sent>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000 && sent.length < n; i++) yield* Effect.sleep("1 millis")
    expect(sent.length).toBe(n)
  })

// replies are leads in µs: 100 ms per token, so a lead of k·100,000 leaves 5 − k tokens
const lead = (tokensTaken: number) => tokensTaken * 100_000

describe("RedisStore batches (client answered by hand)", () => {
  it.live("a lone take goes at once; takes issued while it is in flight go together, each with its own reply", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, sent } = byHand()
      const limiter = yield* limiterOn(client)
      const first = yield* Effect.fork(limiter.take("a"))
      yield* sentCount(sent, 1)
      expect(sent[0].keys).toEqual(["rl:api:{a}"])
      const more = yield* Effect.fork(
        Effect.all([limiter.take("b"), limiter.take("c", 2), limiter.take("b")], { concurrency: "unbounded" })
      )
      yield* sentCount(sent, 2)
      expect(sent[1].keys).toEqual(["rl:api:{b}", "rl:api:{c}", "rl:api:{b}"])
      expect(sent[1].args).toEqual(["1", "2", "1"]) // costs, one per key
      sent[1].answer([lead(1), lead(2), lead(2)])
      sent[0].answer(lead(3))
      expect((yield* Fiber.join(more)).map((d) => d.remaining)).toEqual([4, 3, 3])
      expect((yield* Fiber.join(first)).remaining).toBe(2)
    })))

  it.live("no batches on a client that is not single-node (a Cluster)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, sent } = byHand(false)
      const limiter = yield* limiterOn(client)
      const all = yield* Effect.fork(
        Effect.all([limiter.take("a"), limiter.take("b"), limiter.take("c")], { concurrency: "unbounded" })
      )
      yield* sentCount(sent, 3)
      expect(sent.map((s) => s.keys)).toEqual([["rl:api:{a}"], ["rl:api:{b}"], ["rl:api:{c}"]])
      for (const s of sent) s.answer(lead(1))
      expect(yield* Fiber.join(all)).toHaveLength(3)
    })))

  it.live("batches hold at most batchMaxKeys takes", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, sent } = byHand()
      const limiter = yield* limiterOn(client, { batchMaxKeys: 3 })
      const first = yield* Effect.fork(limiter.take("x"))
      yield* sentCount(sent, 1)
      const rest = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 7 }, (_, i) => `k${i}`), (k) => limiter.take(k), {
          concurrency: "unbounded"
        })
      )
      yield* sentCount(sent, 4)
      expect(sent.slice(1).map((s) => s.keys.length)).toEqual([3, 3, 1])
      sent[0].answer(lead(1))
      sent[1].answer([lead(1), lead(1), lead(1)])
      sent[2].answer([lead(1), lead(1), lead(1)])
      sent[3].answer(lead(1))
      yield* Fiber.join(first)
      expect(yield* Fiber.join(rest)).toHaveLength(7)
    })))

  it.live("a failed batch fails each of its takes, and they count as failures toward failure mode", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, sent } = byHand()
      const limiter = yield* limiterOn(client, { failureThreshold: 3 })
      const first = yield* Effect.fork(Effect.either(limiter.take("a")))
      yield* sentCount(sent, 1)
      const batch = yield* Effect.fork(
        Effect.all([limiter.take("b"), limiter.take("c"), limiter.take("d")].map(Effect.either), {
          concurrency: "unbounded"
        })
      )
      yield* sentCount(sent, 2)
      sent[1].fail(new Error("connection lost"))
      const failed = yield* Fiber.join(batch)
      expect(failed.map((e) => e._tag === "Left" && e.left._tag)).toEqual(["StoreError", "StoreError", "StoreError"])
      // three consecutive failures: failure mode, the next take does not reach Redis
      const next = yield* Effect.either(limiter.take("e"))
      expect(next._tag === "Left" && next.left.message).toContain("unavailable")
      expect(sent).toHaveLength(2)
      sent[0].answer(lead(1))
      yield* Fiber.join(first)
    })))

  it.live("each take of a batch keeps its timeout; an interrupted take leaves the others their answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, sent } = byHand()
      const limiter = yield* limiterOn(client, { timeout: "1 second", failureThreshold: 100 })
      const first = yield* Effect.fork(Effect.either(limiter.take("a")))
      yield* sentCount(sent, 1)
      const [b, c, d] = yield* Effect.forEach(["b", "c", "d"], (k) => Effect.fork(Effect.either(limiter.take(k))))
      yield* sentCount(sent, 2)
      yield* Fiber.interrupt(c)
      sent[1].answer([lead(1), lead(1), lead(1)])
      const [rb, rd] = [yield* Fiber.join(b), yield* Fiber.join(d)]
      expect([rb._tag, rd._tag]).toEqual(["Right", "Right"])
      // the lone call never answered: it fails after its own timeout
      const started = performance.now()
      const r = yield* Fiber.join(first)
      expect(r._tag === "Left" && r.left._tag).toBe("StoreError")
      expect(performance.now() - started).toBeLessThan(5000)
    })))

  it.live("after NOSCRIPT a batch is sent whole, once", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, flush, sent } = byHand()
      const limiter = yield* limiterOn(client)
      const first = yield* Effect.fork(limiter.take("a"))
      yield* sentCount(sent, 1)
      flush()
      const batch = yield* Effect.fork(
        Effect.all([limiter.take("b"), limiter.take("c")], { concurrency: "unbounded" })
      )
      yield* sentCount(sent, 2)
      expect(sent[1]).toMatchObject({ whole: true, keys: ["rl:api:{b}", "rl:api:{c}"] })
      sent[1].answer([lead(1), lead(4)])
      expect((yield* Fiber.join(batch)).map((d) => d.remaining)).toEqual([4, 1])
      sent[0].answer(lead(1))
      yield* Fiber.join(first)
    })))
})
