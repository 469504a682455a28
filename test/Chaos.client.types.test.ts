import { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Chaos from "../src/Chaos.js"

// Checked by `tsc` (npm run typecheck): what `Chaos.client` accepts and what its client may fail with.
const clients = Effect.gen(function*() {
  const chaos = yield* Chaos.make({ name: "types", enabled: true, rate: 1 })
  const base = yield* HttpClient.HttpClient
  const response = HttpClientResponse.fromWeb(HttpClientRequest.get("http://127.0.0.1/"), new Response("ok"))
  const outcome: HttpClient.HttpClient.With<HttpClientError.HttpClientError> = base.pipe(
    Chaos.client(Chaos.outcome(chaos, Effect.succeed(response)))
  )
  const fault: HttpClient.HttpClient.With<HttpClientError.HttpClientError | "boom"> = base.pipe(
    Chaos.client(Chaos.fault(chaos, () => "boom" as const))
  )
  const latency = Chaos.client(base, Chaos.latency(chaos, "1 second"))
  const status = Chaos.client(base, Chaos.clientStatus(chaos, 503))
  // @ts-expect-error an outcome whose value is not a response cannot stand in for one
  const wrong = base.pipe(Chaos.client(Chaos.outcome(chaos, Effect.succeed("not a response"))))
  return [outcome, fault, latency, status, wrong]
})

describe("Chaos.client types", () => {
  it("the type checks above compile", () => {
    expect(Effect.isEffect(clients)).toBe(true)
  })
})
