/**
 * Starts throwaway `redis-server` processes on free loopback ports for integration tests.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { createServer, Socket } from "node:net"

export const redisServerMissing = (): string | undefined => {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" })
  return probe.error !== undefined ? `redis-server not found (${probe.error.message})` : undefined
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const answersPing = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(200, () => done(false))
    socket.once("error", () => done(false))
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"))
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")))
  })

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly process: () => ChildProcess
  /** SIGKILL, then wait for the exit */
  readonly kill: () => Promise<void>
  /** start again on the same port (empty: no persistence) */
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
}

export const startRedis = async (): Promise<RedisServer> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    // DEBUG SLEEP stands for a Redis that stops answering for a while
    child = spawn("redis-server", [...args, "--enable-debug-command", "local"], {
      stdio: "ignore"
    })
    // a busy machine may take long to start a process: wait for the answer, up to a minute
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      if (await answersPing(port)) return
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`redis-server did not answer on port ${port} within 60 s`)
  }
  const kill = async () => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve())
      c.kill("SIGKILL")
    })
  }
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    process: () => child!,
    kill,
    start,
    stop: kill
  }
}
