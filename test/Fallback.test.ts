import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, HashMap, Logger, LogLevel, Metric, Ref } from "effect"
import * as Fallback from "../src/Fallback.js"

interface User {
  readonly id: string
  readonly name: string
  readonly source: string
}

class NotFound {
  readonly _tag = "NotFound"
}
class Unavailable {
  readonly _tag = "Unavailable"
  constructor(readonly store: string) {}
}

const source = (name: string, behaviour: "ok" | "down" | "missing") =>
  Effect.gen(function*() {
    const calls = yield* Ref.make(0)
    const answer: Effect.Effect<User, NotFound | Unavailable> = behaviour === "ok"
      ? Effect.succeed({ id: "42", name: "Ada", source: name })
      : behaviour === "down"
      ? Effect.fail(new Unavailable(name))
      : Effect.fail(new NotFound())
    const effect = Effect.zipRight(Ref.update(calls, (n) => n + 1), answer)
    return { effect, calls }
  })

const captureDebug = Effect.gen(function*() {
  const lines = yield* Ref.make<Array<Record<string, unknown>>>([])
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    if (logLevel._tag === "Debug" && (Array.isArray(message) ? message[0] : message) === "falling back") {
      Effect.runSync(Ref.update(lines, (all) => [...all, Object.fromEntries(HashMap.toEntries(annotations))]))
    }
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

describe("Fallback.chain", () => {
  it.effect("database → cache → replica → default: tried in order, first success wins", () =>
    Effect.gen(function*() {
      const db = yield* source("database", "down")
      const cache = yield* source("cache", "down")
      const replica = yield* source("replica", "ok")
      const { layer, lines } = yield* captureDebug
      const user = yield* Fallback.chain([
        Fallback.alternative("database", db.effect),
        Fallback.alternative("cache", cache.effect),
        Fallback.alternative("replica", replica.effect)
      ], { name: "get-user", default: () => ({ id: "42", name: "Unknown", source: "default" }) }).pipe(
        Effect.provide(layer),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      expect(user.source).toBe("replica")
      expect([yield* Ref.get(db.calls), yield* Ref.get(cache.calls), yield* Ref.get(replica.calls)]).toEqual([1, 1, 1])
      const logged = yield* Ref.get(lines)
      expect(logged.map((l) => [l["fallback.from"], l["fallback.to"]])).toEqual([
        ["database", "cache"],
        ["cache", "replica"]
      ])
      expect(logged[0]["fallback.error"]).toBe("Unavailable")
    }))

  it.effect("every alternative down: the last-resort default, counted", () =>
    Effect.gen(function*() {
      const alternatives = yield* Effect.all([source("database", "down"), source("cache", "down")])
      const counter = Fallback.fallbacksTotal.pipe(Metric.tagged("name", "all-down"), Metric.tagged("to", "default"))
      const before = (yield* Metric.value(counter)).count
      const user = yield* Fallback.chain(
        [
          Fallback.alternative("database", alternatives[0].effect),
          Fallback.alternative("cache", alternatives[1].effect)
        ],
        { name: "all-down", default: () => ({ id: "42", name: "Unknown", source: "default" }) }
      )
      expect(user.source).toBe("default")
      expect((yield* Metric.value(counter)).count - before).toBe(1)
    }))

  it.effect("without a default the last failure is returned; an unselected failure stops the chain", () =>
    Effect.gen(function*() {
      const db = yield* source("database", "down")
      const cache = yield* source("cache", "down")
      const error = yield* Effect.flip(Fallback.chain([db.effect, cache.effect]))
      expect(error).toEqual(new Unavailable("cache"))
      // NotFound is an answer, not an outage: do not ask the next store
      const missing = yield* source("database", "missing")
      const replica = yield* source("replica", "ok")
      const stopped = yield* Effect.flip(
        Fallback.chain([missing.effect, replica.effect], {
          when: (e) => e._tag === "Unavailable",
          default: () => ({ id: "?", name: "Unknown", source: "default" })
        })
      )
      expect(stopped).toBeInstanceOf(NotFound)
      expect(yield* Ref.get(replica.calls)).toBe(0)
    }))

  it.effect("defects are not fallen back from", () =>
    Effect.gen(function*() {
      const cache = yield* source("cache", "ok")
      const exit = yield* Effect.exit(Fallback.chain([Effect.die("bug"), cache.effect]))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(yield* Ref.get(cache.calls)).toBe(0)
    }))
})

describe("Fallback.orElse / orElseSucceed", () => {
  it.effect("falls back only for the errors the predicate selects", () =>
    Effect.gen(function*() {
      const cache = yield* source("cache", "ok")
      const fromCache = yield* Effect.fail(new Unavailable("database")).pipe(
        Fallback.orElse({ fallback: () => cache.effect, when: (e) => e._tag === "Unavailable" })
      )
      expect(fromCache.source).toBe("cache")
      const kept = yield* Effect.fail(new NotFound()).pipe(
        Fallback.orElse({ fallback: () => cache.effect, when: (e: NotFound) => e._tag !== "NotFound" }),
        Effect.flip
      )
      expect(kept).toBeInstanceOf(NotFound)
      expect(yield* Ref.get(cache.calls)).toBe(1)
    }))

  it.effect("orElseSucceed is the last resort", () =>
    Effect.gen(function*() {
      const value = yield* Effect.fail("down").pipe(Fallback.orElseSucceed({ value: () => "default" }))
      expect(value).toBe("default")
      const untouched = yield* Effect.succeed("live").pipe(Fallback.orElseSucceed({ value: () => "default" }))
      expect(untouched).toBe("live")
    }))
})

describe("Fallback types", () => {
  it.effect("without `when` the original error type is dropped, as with Effect.orElse", () =>
    Effect.gen(function*() {
      const primary: Effect.Effect<number, "primary"> = Effect.fail("primary")
      // these annotations are the test: they compile only with the narrowed error types
      const all: Effect.Effect<number | string, "fallback"> = Fallback.orElse(primary, {
        fallback: () => Effect.fail("fallback" as const)
      })
      const piped: Effect.Effect<number | string, never> = primary.pipe(
        Fallback.orElse({ fallback: () => Effect.succeed("recovered") })
      )
      const selective: Effect.Effect<number | string, "primary" | "fallback"> = primary.pipe(
        Fallback.orElse({ when: (e) => e === "primary", fallback: () => Effect.fail("fallback" as const) })
      )
      const last: Effect.Effect<number | string, never> = Fallback.orElseSucceed(primary, { value: () => "last" })
      expect(yield* Effect.flip(all)).toBe("fallback")
      expect(yield* piped).toBe("recovered")
      expect(yield* Effect.flip(selective)).toBe("fallback")
      expect(yield* last).toBe("last")
    }))
})
