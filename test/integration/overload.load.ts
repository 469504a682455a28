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

const request = (port: number, timeoutMs: number): Promise<number> =>
  new Promise((resolve) => {
    let done = false
    const finish = (status: number) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(status)
    }
    const req = http.get({ host: "127.0.0.1", port, path: "/work", agent }, (res) => {
      res.resume()
      res.on("end", () => finish(res.statusCode ?? 0))
      res.on("error", () => finish(0))
    })
    req.on("error", () => finish(0))
    // a request already sent is left to finish: closing its connection would make the generator
    // open new ones in a storm
    let sent = false
    req.on("socket", () => (sent = true))
    const timer = setTimeout(() => {
      finish(0)
      if (!sent) req.destroy()
    }, timeoutMs)
  })

const closedLoop = async ({ concurrency, port, seconds }: Closed) => {
  let ok = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      if ((await request(port, 10_000)) === 200) ok++
    }
  }))
  return { perSecond: ok / seconds }
}

const openLoop = async ({ ports, rate, seconds, timeoutMs }: Open) => {
  const samples: Array<Array<Sample>> = ports.map(() => [])
  const pending: Array<Promise<void>> = []
  const total = Math.round(rate * seconds)
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000))
      for (; sent < due; sent++) {
        const intended = start + (sent * 1000) / rate
        // the ports take turns going first
        for (let k = 0; k < ports.length; k++) {
          const i = (k + sent) % ports.length
          pending.push(
            request(ports[i], timeoutMs).then((status) => {
              samples[i].push({ status, latencyMs: performance.now() - intended })
            })
          )
        }
      }
      if (sent >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(pending)
  return { samples }
}

try {
  // latency should be the server's, not this process waiting for a CPU (when the OS allows it)
  setPriority(-10)
} catch {
  // not permitted: normal priority
}

process.on("message", async (command: Closed | Open) => {
  const reply = command.kind === "closed" ? await closedLoop(command) : await openLoop(command)
  agent.destroy()
  agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })
  process.send!(reply)
})
// the test process is gone: nothing left to answer to
process.on("disconnect", () => process.exit(0))
process.send!({ ready: true })
