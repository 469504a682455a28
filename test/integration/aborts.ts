/**
 * Hostile clients for the server tests: requests abandoned by hand on real sockets.
 */
import * as Effect from "effect/Effect"
import * as http from "node:http"
import * as net from "node:net"

/** The port of a `serve` base URL. */
export const portOf = (url: string): number => Number(new URL(url).port)

/**
 * Sends `GET path` on a raw socket and destroys the socket after `afterMillis` (0: as soon as the
 * request is written). Resolves once the socket is closed.
 */
export const abandon = (port: number, path: string, afterMillis = 0): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    socket.on("error", () => {})
    socket.on("close", () => resume(Effect.void))
    socket.on("connect", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, () => {
        if (afterMillis === 0) socket.destroy()
        else setTimeout(() => socket.destroy(), afterMillis)
      })
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * A `node:http` request that is aborted once `abortWhen` resolves (or once the first body chunk
 * arrives, with `onFirstChunk`). Resolves with how it ended.
 */
export const abortedRequest = (
  url: string,
  options: {
    readonly abortWhen?: Promise<unknown>
    readonly onFirstChunk?: boolean
    readonly headers?: Record<string, string>
  }
): Promise<"aborted" | number> =>
  new Promise((resolve) => {
    const request = http.get(url, { agent: false, headers: options.headers ?? {} }, (response) => {
      if (options.onFirstChunk === true) {
        response.once("data", () => request.destroy())
      }
      response.on("error", () => {})
      response.on("end", () => resolve(response.statusCode ?? 0))
      response.on("close", () => resolve("aborted"))
    })
    request.on("error", () => resolve("aborted"))
    options.abortWhen?.then(() => request.destroy())
  })
