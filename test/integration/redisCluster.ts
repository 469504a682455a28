/**
 * Starts a throwaway three-master Redis Cluster on loopback for integration tests:
 * `redis-server --cluster-enabled yes` three times, `redis-cli --cluster create`, then waits (by
 * polling `CLUSTER INFO` on every node) until the cluster state is ok. Readiness is awaited by
 * event, with budgets of a minute, because the machine may be busy.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./redisServer.js"

const BUDGET_MS = 60_000

/** Sends one inline command and resolves with the raw reply (or undefined: no answer). */
export const ask = (port: number, command: string, timeoutMs = 1000): Promise<string | undefined> =>
  new Promise((resolve) => {
    const socket = new Socket()
    let data = ""
    const done = (reply: string | undefined) => {
      socket.destroy()
      resolve(reply)
    }
    socket.setTimeout(timeoutMs, () => done(data.length > 0 ? data : undefined))
    socket.once("error", () => done(undefined))
    socket.on("data", (chunk) => {
      data += chunk.toString()
      // a bulk reply is complete once its announced length has arrived
      const m = /^\$(\d+)\r\n/.exec(data)
      if (m === null || data.length >= m[0].length + Number(m[1]) + 2) done(data)
    })
    socket.connect(port, "127.0.0.1", () => socket.write(`${command}\r\n`))
  })

const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + BUDGET_MS
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${what} not within ${BUDGET_MS / 1000} s`)
}

/** A port whose cluster bus port (port + 10000) is free too. */
const clusterPort = async (taken: ReadonlyArray<number>): Promise<number> => {
  for (;;) {
    const port = await freePort()
    if (port > 55_000 || taken.includes(port)) continue
    const bus = await new Promise<boolean>((resolve) => {
      const probe = new Socket()
      probe.once("error", () => resolve(true))
      probe.connect(port + 10_000, "127.0.0.1", () => {
        probe.destroy()
        resolve(false)
      })
    })
    if (bus) return port
  }
}

export interface RedisCluster {
  readonly ports: ReadonlyArray<number>
  readonly urls: ReadonlyArray<string>
  /** the port of the master serving `key`'s slot */
  readonly nodeOf: (key: string) => Promise<number>
  /** SIGKILL one node and wait for its exit */
  readonly kill: (port: number) => Promise<void>
  /** start it again (same identity, from its nodes.conf; empty data) and wait for the cluster to be ok */
  readonly restart: (port: number) => Promise<void>
  readonly stop: () => Promise<void>
}

const clusterOk = async (ports: ReadonlyArray<number>): Promise<boolean> => {
  for (const port of ports) {
    const info = await ask(port, "CLUSTER INFO")
    if (info === undefined || !info.includes("cluster_state:ok")) return false
  }
  return true
}

export const startCluster = async (): Promise<RedisCluster> => {
  const dir = mkdtempSync(join(tmpdir(), "rl-cluster-"))
  const ports: Array<number> = []
  for (let i = 0; i < 3; i++) ports.push(await clusterPort(ports))
  const children = new Map<number, ChildProcess>()
  const startNode = async (port: number) => {
    const child = spawn("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      `nodes-${port}.conf`,
      "--cluster-node-timeout",
      "2000",
      "--save",
      "",
      "--appendonly",
      "no"
    ], { stdio: "ignore" })
    children.set(port, child)
    await until(`redis-server on ${port}`, async () => (await ask(port, "PING"))?.startsWith("+PONG") === true)
  }
  const kill = async (port: number) => {
    const child = children.get(port)
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve())
      child.kill("SIGKILL")
    })
  }
  const stop = async () => {
    for (const port of ports) await kill(port)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const port of ports) await startNode(port)
    const create = spawn("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes"
    ], { stdio: "ignore" })
    const code = await new Promise<number | null>((resolve) => create.once("exit", resolve))
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}`)
    await until("cluster_state:ok", () => clusterOk(ports))
  } catch (e) {
    await stop()
    throw e
  }
  return {
    ports,
    urls: ports.map((p) => `redis://127.0.0.1:${p}`),
    nodeOf: async (key) => {
      const slot = Number(/:(\d+)/.exec((await ask(ports[0], `CLUSTER KEYSLOT ${key}`)) ?? "")?.[1])
      const shards = (await ask(ports[0], "CLUSTER NODES")) ?? ""
      for (const line of shards.split("\n")) {
        const fields = line.split(" ")
        const port = Number(/:(\d+)@/.exec(fields[1] ?? "")?.[1])
        for (const range of fields.slice(8)) {
          const [from, to] = range.split("-").map(Number)
          if (slot >= from && slot <= (to ?? from)) return port
        }
      }
      throw new Error(`no master serves slot ${slot}`)
    },
    kill,
    restart: async (port) => {
      await kill(port)
      await startNode(port)
      await until("cluster_state:ok after restart", () => clusterOk(ports))
    },
    stop
  }
}
