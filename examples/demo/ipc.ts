/**
 * The demo's processes and how they talk: the load driver (the parent) starts the downstream and
 * the API as child Node processes and exchanges JSON messages with them over Node's IPC channel.
 * Separate processes keep a starved load driver from slowing the server it measures, and the
 * server's event-loop readings from counting the driver's work.
 */
import { Deferred, Effect, Exit } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"

/** A message between the demo's processes: `type` says what it is, the rest is its content. */
export interface Message {
  readonly type: string
  readonly [key: string]: unknown
}

export interface Child {
  readonly pid: number | undefined
  /** Sends a message; nothing happens once the child has gone. */
  readonly send: (message: Message) => Effect.Effect<void>
  /**
   * Sends `message` with a fresh `id` and waits for the child's `{ type: "ack", id }`; fails when
   * the child exits first.
   */
  readonly request: (message: Message) => Effect.Effect<Message, Error>
  /** The first message of `type` (already received or still to come); fails when the child exits first. */
  readonly next: (type: string) => Effect.Effect<Message, Error>
  /** Called with every message the child sends. */
  readonly onMessage: (f: (message: Message) => void) => void
}

const root = Path.resolve(import.meta.dirname, "..", "..")

/** A child asked to stop that has not exited after this long is killed. */
const STOP_GRACE_MS = 10_000

/**
 * Starts `script` (TypeScript, through tsx) as a child process with an IPC channel; it is asked to
 * stop (SIGINT) when the scope closes and killed if it has not exited within 10 s.
 */
export const spawnChild = (
  script: string,
  args: ReadonlyArray<string> = []
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", Path.join(root, script), ...args], {
          cwd: root,
          // the children write only errors; their log lines come over IPC
          stdio: ["ignore", "ignore", "inherit", "ipc"]
        })
      ),
      (c) => stop(c)
    )
    const exited = yield* Deferred.make<void>()
    child.once("exit", () => Deferred.unsafeDone(exited, Exit.void))

    const received: Array<Message> = []
    const listeners = new Set<(m: Message) => void>()
    child.on("message", (raw) => {
      const m = raw as Message
      received.push(m)
      if (received.length > 64) received.shift()
      for (const l of listeners) l(m)
    })

    const gone = Effect.flatMap(Deferred.await(exited), () =>
      Effect.fail(new Error(`${Path.basename(script)} exited (code ${child.exitCode ?? child.signalCode})`)))

    const next = (type: string): Effect.Effect<Message, Error> =>
      Effect.suspend(() => {
        const seen = received.find((m) =>
          m.type === type
        )
        if (seen !== undefined) return Effect.succeed(seen)
        return Effect.raceFirst(
          Effect.async<Message>((resume) => {
            const l = (m: Message) => {
              if (m.type === type) {
                listeners.delete(l)
                resume(Effect.succeed(m))
              }
            }
            listeners.add(l)
            return Effect.sync(() => listeners.delete(l))
          }),
          gone
        )
      })

    const send = (message: Message) =>
      Effect.sync(() => {
        if (child.connected) child.send(message)
      })

    let ids = 0
    const request = (message: Message): Effect.Effect<Message, Error> =>
      Effect.suspend(() => {
        const id = ++ids
        const ack = Effect.async<Message>((resume) => {
          const l = (m: Message) => {
            if (m.type === "ack" && m.id === id) {
              listeners.delete(l)
              resume(Effect.succeed(m))
            }
          }
          listeners.add(l)
          return Effect.sync(() => listeners.delete(l))
        })
        return Effect.zipRight(send({ ...message, id }), Effect.raceFirst(ack, gone))
      })

    return {
      pid: child.pid,
      send,
      request,
      next,
      onMessage: (f) => void listeners.add(f)
    } satisfies Child
  })

const stop = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    child.kill("SIGINT")
  })

/** CPU time (user and system) this process has used, in milliseconds. */
export const cpuMs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** In a child: sends `message` to the parent, if it is still connected. */
export const toParent = (message: Message): void => {
  if (process.send !== undefined && process.connected) process.send(message)
}

/**
 * In a child: calls `f` with every message from the parent, and interrupts the main fiber (as
 * SIGINT does) when the parent goes away, so a child never outlives the demo.
 */
export const fromParent = (f: (message: Message) => void): void => {
  process.on("message", (m) => f(m as Message))
  process.once("disconnect", () => process.kill(process.pid, "SIGINT"))
}
