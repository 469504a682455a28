/**
 * A load generator in its own process for the overload test, so that the server under test does
 * not share its event loop with the client. It is driven over the IPC channel:
 *
 * - `{ kind: "closed", port, concurrency, seconds }` → `{ perSecond }`: 2xx answers per second
 *   with `concurrency` requests always outstanding (capacity);
 * - `{ kind: "open", ports, rate, seconds, timeoutMs }` → `{ samples }`, one list per port: `rate`
 *   requests per second to each port at the same moments, sent on schedule whether or not earlier
 *   ones were answered, each sample's latency counted from its scheduled time (so a slow server
 *   cannot hide its queue), status 0 for no answer within `timeoutMs`.
 *
 * After each command every connection is closed: a server still working on abandoned requests sees
 * its clients go away.
 */
import * as http from "node:http"
import { setPriority } from "node:os"
import { performance } from "node:perf_hooks"
import { closedLoop, getStatus, openLoop } from "./httpLoad.js"

export interface Closed {
  readonly kind: "closed"
  readonly port: number
  readonly concurrency: number
  readonly seconds: number
}

export interface Open {
  readonly kind: "open"
  readonly ports: ReadonlyArray<number>
  readonly rate: number
  readonly seconds: number
  readonly timeoutMs: number
}

export interface Sample {
  readonly status: number
  readonly latencyMs: number
}

let agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })

const closed = async ({ concurrency, port, seconds }: Closed) => ({
  perSecond: await closedLoop(() => getStatus(agent, port, 10_000), concurrency, seconds)
})

const open = async ({ ports, rate, seconds, timeoutMs }: Open) => {
  const samples: Array<Array<Sample>> = ports.map(() => [])
  await openLoop(rate, seconds, (index, dueAt) =>
    // the ports take turns going first
    Promise.all(ports.map((_, k) => {
      const i = (k + index) % ports.length
      return getStatus(agent, ports[i], timeoutMs).then((status) => {
        samples[i].push({ status, latencyMs: performance.now() - dueAt })
      })
    })).then(() => undefined))
  return { samples }
}

try {
  // latency should be the server's, not this process waiting for a CPU (when the OS allows it)
  setPriority(-10)
} catch {
  // not permitted: normal priority
}

process.on("message", async (command: Closed | Open) => {
  const reply = command.kind === "closed" ? await closed(command) : await open(command)
  agent.destroy()
  agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })
  process.send!(reply)
})
// the test process is gone: nothing left to answer to
process.on("disconnect", () => process.exit(0))
process.send!({ ready: true })
