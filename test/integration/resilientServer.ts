/**
 * The set-up the `ResilientHttpServer` integration tests share: a server with its middleware on a
 * real loopback port, the options that switch every stage off, and the checks of a rejection.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { portOf } from "./aborts.js"
import { serveCounting } from "./serve.js"

/** A handler's plain answer. */
export const ok = HttpServerResponse.text("ok")

/** Every stage off: a test switches on the one it is about. */
export const allOff = {
  shedding: false,
  breaker: false,
  timeout: false,
  maxConns: false
} as const satisfies ResilientHttpServer.Options

/** A resilient server built from `options`, serving `app` through its middleware on 127.0.0.1. */
export const startResilient = <E>(
  app: HttpApp.Default<E, never>,
  options: ResilientHttpServer.Options
): Effect.Effect<
  {
    readonly server: ResilientHttpServer.ResilientHttpServer
    readonly url: string
    readonly port: number
    /** connections the server holds open */
    readonly connections: Effect.Effect<number>
  },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const server = yield* ResilientHttpServer.make(options)
    const { connections, url } = yield* serveCounting(app, server.middleware)
    return { server, url, port: portOf(url), connections }
  })

/** Checks a JSON rejection (status, code, and the body's shape); returns the body. */
export const expectRejection = (
  reply: { readonly status: number; readonly headers: Headers; readonly json: () => any },
  status: number,
  code: string
) => {
  expect(reply.status).toBe(status)
  expect(reply.headers.get("content-type")).toMatch(/application\/json/)
  const body = reply.json()
  expect(body.error.code).toBe(code)
  expect(body.error.status).toBe(status)
  expect(typeof body.error.message).toBe("string")
  expect(typeof body.error.route).toBe("string")
  return body
}

/**
 * Polls `read` until it gives `expected`, for at most `millis`; returns the last value. The budget
 * is generous because a busy machine may run the server seconds late; a leak never gets there.
 */
export const eventually = <A>(read: Effect.Effect<A>, expected: A, millis = 10_000) =>
  Effect.gen(function*() {
    const until = Date.now() + millis
    let value = yield* read
    while (value !== expected && Date.now() < until) {
      yield* Effect.sleep("5 millis")
      value = yield* read
    }
    return value
  })
