import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Metrics from "../src/Metrics.js"
import * as ResilientHttpClient from "../src/ResilientHttpClient.js"

/** A client answering `statuses` in turn, recording when each response body is read. */
const scripted = (statuses: ReadonlyArray<number>) => {
  const events: Array<string> = []
  let call = 0
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      const n = call++
      const status = statuses[Math.min(n, statuses.length - 1)]
      events.push(`send ${n}`)
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          events.push(`read ${n}`)
          controller.enqueue(new TextEncoder().encode(`status ${status}`))
          controller.close()
        }
      }, { highWaterMark: 0 })
      return HttpClientResponse.fromWeb(request, new Response(body, { status }))
    })
  )
  return { client, events }
}

describe("ResilientHttpClient (scripted client, TestClock)", () => {
  it.scoped("drains an abandoned 5xx before the backoff wait, and leaves the last one unread for the caller", () =>
    Effect.gen(function*() {
      const { client, events } = scripted([503, 503, 503])
      const resilient = yield* ResilientHttpClient.make({
        breaker: false,
        bulkhead: false,
        timeout: false,
        retry: { times: 2, schedule: Schedule.spaced("1 second") }
      }).pipe(Effect.provideService(HttpClient.HttpClient, client))
      const fiber = yield* Effect.fork(resilient.get("http://downstream.test/x"))
      yield* TestClock.adjust("10 millis")
      // the first response is read while the client waits out the backoff
      expect(events).toEqual(["send 0", "read 0"])
      yield* TestClock.adjust("1 second")
      expect(events).toEqual(["send 0", "read 0", "send 1", "read 1"])
      yield* TestClock.adjust("1 second")
      const response = yield* Fiber.join(fiber)
      expect(response.status).toBe(503)
      expect(events).toEqual(["send 0", "read 0", "send 1", "read 1", "send 2"])
      expect(yield* response.text).toBe("status 503")
    }))
})

/** A client whose calls to host `slow.test` wait for `gate`; others answer 200 at once. */
const gated = (gate: Deferred.Deferred<void>) =>
  HttpClient.make((request) =>
    Effect.zipRight(
      new URL(request.url).host === "slow.test" ? Deferred.await(gate) : Effect.void,
      Effect.sync(() => HttpClientResponse.fromWeb(request, new Response("ok", { status: 200 })))
    )
  )

/** Per-host bulkheads of one permit, idle for a minute at most, over `gated(gate)`; no other layer. */
const bulkheadsOnly = (gate: Deferred.Deferred<void>) =>
  ResilientHttpClient.make({
    breaker: false,
    timeout: false,
    retry: false,
    bulkhead: { maxConcurrent: 1, idleTimeToLive: "1 minute" }
  }).pipe(Effect.provideService(HttpClient.HttpClient, gated(gate)))

/** Collects the hosts of "dropped idle bulkhead" debug logs. */
const droppedLogs = () => {
  const hosts: Array<string> = []
  const logger = Logger.make(({ annotations, message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    if (text === "dropped idle bulkhead") {
      hosts.push(String(Option.getOrElse(HashMap.get(annotations, "host"), () => "")))
    }
  })
  return { hosts, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("ResilientHttpClient per-host bulkheads (TestClock)", () => {
  it.scoped("drops a host's bulkhead once idle for bulkhead.idleTimeToLive, and builds a fresh one on the next call", () => {
    const { hosts, layer } = droppedLogs()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const resilient = yield* bulkheadsOnly(gate)
      for (let i = 0; i < 3; i++) expect((yield* resilient.get(`http://h${i}.test/x`)).status).toBe(200)
      yield* TestClock.adjust("50 seconds")
      expect(hosts).toEqual([])
      yield* resilient.get("http://h0.test/x") // touches h0 only
      yield* TestClock.adjust("40 seconds")
      expect(hosts.slice().sort()).toEqual(["h1.test", "h2.test"])
      yield* TestClock.adjust("2 minutes")
      expect(hosts.slice().sort()).toEqual(["h0.test", "h1.test", "h2.test"])
      // a dropped host works again with a new bulkhead
      expect((yield* resilient.get("http://h1.test/x")).status).toBe(200)
    }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
  })

  it.scoped("never drops a bulkhead with a call in flight, however long the call runs", () => {
    const { hosts, layer } = droppedLogs()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const resilient = yield* bulkheadsOnly(gate)
      const slow = yield* Effect.fork(resilient.get("http://slow.test/x"))
      yield* TestClock.adjust("10 minutes")
      expect(hosts).toEqual([])
      // still the same bulkhead: its only permit is held, so a second call is rejected
      const second = yield* Effect.exit(resilient.get("http://slow.test/y"))
      expect(Exit.isFailure(second) && second.cause._tag === "Fail" && second.cause.error._tag).toBe(
        "BulkheadFullError"
      )
      yield* Deferred.succeed(gate, undefined)
      expect((yield* Fiber.join(slow)).status).toBe(200)
      // idle from the moment the call ended
      yield* TestClock.adjust("59 seconds")
      expect(hosts).toEqual([])
      yield* TestClock.adjust("1 minute")
      expect(hosts).toEqual(["slow.test"])
    }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
  })

  it.scoped("keeps a breaker and a bulkhead for at most maxHosts hosts, never dropping one in use", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const resilient = yield* ResilientHttpClient.make({ timeout: false, retry: false, maxHosts: 3 }).pipe(
        Effect.provideService(HttpClient.HttpClient, gated(gate))
      )
      const slow = yield* Effect.fork(resilient.get("http://slow.test/x"))
      yield* Effect.yieldNow()
      for (let i = 0; i < 20; i++) expect((yield* resilient.get(`http://h${i}.test/x`)).status).toBe(200)
      // the per-host parts alive are those whose series are exported
      const namesOf = (metric: string) =>
        Effect.map(
          Metrics.snapshot,
          (samples) => new Set(samples.filter((s) => s.metric === metric).map((s) => s.labels.name))
        )
      for (const metric of ["resilience_breaker_state", "resilience_bulkhead_active"]) {
        const names = yield* namesOf(metric)
        expect(names.size).toBe(3)
        expect(names.has("http-client slow.test")).toBe(true)
        expect(names.has("http-client h19.test")).toBe(true)
      }
      yield* Deferred.succeed(gate, undefined)
      expect((yield* Fiber.join(slow)).status).toBe(200)
    }).pipe(Metrics.withInstanceRegistry()))

  it.effect("rejects a non-positive bulkhead.idleTimeToLive", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ResilientHttpClient.make({ bulkhead: { idleTimeToLive: 0 } }).pipe(
          Effect.provideService(HttpClient.HttpClient, gated(Deferred.unsafeMake(undefined as never))),
          Effect.scoped
        )
      )
      expect(error._tag).toBe("InvalidOptionsError")
    }))
})
