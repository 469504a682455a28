/**
 * Load generation over keep-alive HTTP on 127.0.0.1, shared by the overload integration test's
 * generator and the load-shedding benchmark: one request's status, a closed loop (capacity) and an
 * open loop (requests sent on schedule whether or not earlier ones were answered).
 */
import * as http from "node:http"
import { performance } from "node:perf_hooks"

/**
 * One `GET path`: its status, 0 for an error or no answer within `timeoutMs`. A request still
 * waiting for a socket is withdrawn at its timeout; one already sent is left to finish, so a
 * timeout never closes a pooled connection (reconnect storms would overflow the listen queue).
 */
export const getStatus = (
  agent: http.Agent,
  port: number,
  timeoutMs: number,
  headers?: http.OutgoingHttpHeaders,
  path = "/work"
): Promise<number> =>
  new Promise((resolve) => {
    let done = false
    const finish = (status: number) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(status)
    }
    const req = http.get({ host: "127.0.0.1", port, path, agent, headers }, (res) => {
      res.resume()
      res.on("end", () => finish(res.statusCode ?? 0))
      res.on("error", () => finish(0))
    })
    req.on("error", () => finish(0))
    let sent = false
    req.on("socket", () => (sent = true))
    const timer = setTimeout(() => {
      finish(0)
      if (!sent) req.destroy()
    }, timeoutMs)
  })

/** 200s per second with `concurrency` calls of `send` always outstanding for `seconds`. */
export const closedLoop = async (
  send: () => Promise<number>,
  concurrency: number,
  seconds: number
): Promise<number> => {
  let ok = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      if ((await send()) === 200) ok++
    }
  }))
  return ok / seconds
}

/**
 * Open loop: `rate` sends per second for `seconds`, each started on schedule; `send` gets the
 * send's index and the moment it was due (so a latency counted from it includes any lateness of
 * the generator itself, and a slow server cannot hide its queue). Resolves once every send settled.
 */
export const openLoop = async (
  rate: number,
  seconds: number,
  send: (index: number, dueAt: number) => Promise<void>
): Promise<void> => {
  const pending: Array<Promise<void>> = []
  const total = Math.round(rate * seconds)
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000))
      for (; sent < due; sent++) pending.push(send(sent, start + (sent * 1000) / rate))
      if (sent >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(pending)
}
