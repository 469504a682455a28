/**
 * Runs an example as its own Node process (through tsx, as `npm run example:*` does) and collects
 * its output.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"

export const root = Path.resolve(import.meta.dirname, "..", "..")

export interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  /**
   * Resolves with the first match of `pattern` in stdout+stderr, rejects on exit or after `timeoutMs`
   * (default `START_BUDGET_MS`: a child compiling TypeScript on a busy machine can take tens of seconds).
   */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>
  /** Sends SIGINT and waits for the exit; SIGKILL after `graceMs` (default 30 s: a busy machine exits slowly). */
  readonly stop: (graceMs?: number) => Promise<number | string>
}

/**
 * How long a child process may take to print what a test waits for: readiness is awaited by the
 * line itself, so a generous budget costs nothing when the machine is idle.
 */
export const START_BUDGET_MS = 90_000

/** A test that starts child processes and waits for them: room for two start-up budgets. */
export const CHILD_TEST_TIMEOUT_MS = 3 * START_BUDGET_MS

export const start = (
  script: string,
  args: ReadonlyArray<string> = [],
  env: Readonly<Record<string, string>> = {}
): Running => {
  const child = spawn(process.execPath, ["--import", "tsx", Path.join(root, script), ...args], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    out += chunk.toString("utf8")
    for (const l of listeners) l()
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      resolve(code ?? signal ?? -1)
      for (const l of listeners) l()
    })
  })
  const waitFor = (pattern: RegExp, timeoutMs = START_BUDGET_MS) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = out.match(pattern)
        if (m !== null) {
          cleanup()
          resolve(m)
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup()
          reject(new Error(`process exited before printing ${pattern}:\n${out}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out waiting for ${pattern}:\n${out}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        listeners.delete(check)
      }
      listeners.add(check)
      check()
    })
  const stop = async (graceMs = 30_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  return { child, output: () => out, waitFor, exited, stop }
}

/** A GET on 127.0.0.1 returning status, headers and the body text. */
export const get = async (port: number, path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
  return { status: res.status, headers: res.headers, body: await res.text() }
}
