/**
 * Starts a throwaway PostgreSQL (Debian's binaries under /usr/lib/postgresql/<version>/bin) on a
 * free loopback port for integration tests: `initdb` into a temporary directory, `postgres` as a
 * child process (no system service, no Unix socket), readiness awaited by connecting (`pg_isready`). PostgreSQL
 * refuses to run as root: as root, the server runs as the `postgres` user (Debian creates it with
 * the package), through the `uid` / `gid` options of `spawn`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./redisServer.js"

const binDir = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "postgres")) && existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a))
  return versions.length === 0 ? undefined : join(root, versions[0], "bin")
}

interface RunAs {
  readonly uid: number
  readonly gid: number
}

/** The user to run PostgreSQL as: ourselves, or `postgres` when we are root. */
const runAs = (): RunAs | undefined | string => {
  if (process.getuid?.() !== 0) return undefined
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" })
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" })
  if (uid.status !== 0 || gid.status !== 0) return "running as root and there is no postgres user to run PostgreSQL as"
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/** Why PostgreSQL cannot be started here, or `undefined` when it can. */
export const postgresMissing = (): string | undefined => {
  if (binDir() === undefined) return "PostgreSQL not found under /usr/lib/postgresql (apt-get install postgresql)"
  const user = runAs()
  return typeof user === "string" ? user : undefined
}

export interface PostgresServer {
  readonly port: number
  readonly url: string
  /** fast shutdown (sessions are ended, transactions rolled back); waits for the exit */
  readonly stop: () => Promise<void>
  /** starts again on the same port and data directory; resolves once it accepts connections */
  readonly start: () => Promise<void>
  /** stops it and removes its data directory */
  readonly destroy: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the server accepts connections: `pg_isready` opens one. */
const acceptsConnections = (bin: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = spawn(join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-t", "2"], {
      stdio: "ignore"
    })
    probe.once("error", () => resolve(false))
    probe.once("exit", (code) => resolve(code === 0))
  })

/** Polls until the server accepts connections, the process exits, or `budgetMs` passes. */
const awaitReady = async (bin: string, port: number, child: ChildProcess, log: () => string, budgetMs: number) => {
  const deadline = Date.now() + budgetMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${log()}`)
    }
    if (await acceptsConnections(bin, port)) return
    if (Date.now() > deadline) throw new Error(`postgres did not accept connections in ${budgetMs} ms:\n${log()}`)
    await sleep(50)
  }
}

/** Starts a server; `budgetMs` bounds the start-up (≥ 60 s: the machine may be busy). */
export const startPostgres = async (budgetMs = 90_000): Promise<PostgresServer> => {
  const bin = binDir()
  const user = runAs()
  if (bin === undefined || typeof user === "string") throw new Error(postgresMissing())
  const dir = mkdtempSync(join(tmpdir(), "effect-resilience-pg-"))
  if (user !== undefined) chownSync(dir, user.uid, user.gid)
  const data = join(dir, "data")
  const ids = user === undefined ? {} : { uid: user.uid, gid: user.gid }
  const init = spawnSync(
    join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
    { cwd: dir, encoding: "utf8", timeout: budgetMs, ...ids }
  )
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`initdb failed (${init.status ?? init.error?.message}):\n${init.stderr}`)
  }
  const port = await freePort()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  let child: ChildProcess | undefined
  let output = ""

  const start = async () => {
    output = ""
    child = spawn(
      join(bin, "postgres"),
      [
        "-D",
        data,
        "-p",
        String(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=40"
      ],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"], ...ids }
    )
    // keep the tail of the server log for error messages (and keep the pipe drained)
    child.stderr!.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4_000)
    })
    await awaitReady(bin, port, child, () => output, budgetMs)
  }

  const stop = async () => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve())
      c.kill("SIGINT") // fast shutdown
    })
  }

  try {
    await start()
  } catch (error) {
    await stop()
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    port,
    url,
    stop,
    start,
    destroy: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
