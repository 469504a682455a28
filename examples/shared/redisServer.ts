/**
 * A throw-away `redis-server` on a free loopback port, for the examples and the demo when no
 * `REDIS_URL` is given. It lives as long as the scope.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Net from "node:net"

/** Whether a `redis-server` binary is on the PATH. */
export const available = (): boolean => {
  const r = spawnSync("redis-server", ["--version"], { stdio: "ignore" })
  return r.error === undefined && r.status === 0
}

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const waitReady = (child: ChildProcess) =>
  Effect.async<void, Error>((resume) => {
    let out = ""
    const onData = (chunk: Buffer) => {
      out += chunk.toString("utf8")
      if (out.includes("Ready to accept connections")) {
        child.stdout?.off("data", onData)
        resume(Effect.void)
      }
    }
    child.stdout?.on("data", onData)
    child.once("exit", (code) => resume(Effect.fail(new Error(`redis-server exited with ${code}: ${out}`))))
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("redis-server did not start") }))

/** Starts `redis-server` (no persistence) and returns its URL. */
export const start: Effect.Effect<string, Error, Scope.Scope> = Effect.gen(function*() {
  const port = yield* freePort
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: ["ignore", "pipe", "ignore"]
      })
    ),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      })
  )
  yield* waitReady(child)
  return `redis://127.0.0.1:${port}`
})

/** `REDIS_URL` when set, else a fresh `redis-server`. */
export const url: Effect.Effect<string, Error, Scope.Scope> = Effect.suspend(() => {
  const fromEnv = process.env.REDIS_URL
  return fromEnv !== undefined && fromEnv !== "" ? Effect.succeed(fromEnv) : start
})
