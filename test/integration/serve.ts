/**
 * Real servers on 127.0.0.1 for the integration tests.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"

/** Serves `app` (through `middleware`) on a free loopback port; returns its base URL. */
export const serve = <E>(
  app: HttpApp.Default<E, never>,
  middleware?: HttpMiddleware.HttpMiddleware
): Effect.Effect<string, unknown, Scope.Scope> => Effect.map(serveCounting(app, middleware), (s) => s.url)

/**
 * Like `serve`, with the number of connections the server holds open: a client's close has been
 * seen by the server once it is no longer counted.
 */
export const serveCounting = <E>(
  app: HttpApp.Default<E, never>,
  middleware?: HttpMiddleware.HttpMiddleware
): Effect.Effect<{ readonly url: string; readonly connections: Effect.Effect<number> }, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const node = createServer()
    const server = yield* NodeHttpServer.make(() => node, { port: 0, host: "127.0.0.1" })
    yield* middleware === undefined
      ? server.serve(app as HttpApp.Default<unknown>)
      : server.serve(app as HttpApp.Default<unknown>, middleware)
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    const connections = Effect.async<number>((resume) => {
      node.getConnections((error, n) => resume(error ? Effect.die(error) : Effect.succeed(n)))
    })
    return { url: `http://127.0.0.1:${address.port}`, connections }
  })

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: string
  readonly json: () => any
}

/** A plain `fetch`, so the server under test is exercised by an independent client. */
export const get = (url: string, init?: RequestInit): Effect.Effect<Reply> =>
  Effect.promise(async (signal) => {
    const response = await fetch(url, { ...init, signal })
    const body = await response.text()
    return { status: response.status, headers: response.headers, body, json: () => JSON.parse(body) }
  })
