import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
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
