/**
 * Plain takes of one limiter issued in the same tick, sent to Redis as one script call over all
 * their keys.
 *
 * Under concurrency most of a decision's cost is per command, on both sides of the socket: the
 * client encodes the command, parks a promise and parses a reply; Redis parses the command, looks
 * the script up and sets up its run. The batch script pays that once for many decisions: it reads
 * `TIME` once and runs the limiter's own step over each key in turn, so a batch decides exactly as
 * the same takes sent one after another at that instant would (the same key twice in a batch is
 * two takes, in order).
 *
 * Each take keeps its own deadline, reply and failure: a batch that fails fails each of its takes
 * as if each had been its own call. All the keys of a batch go to one server, so batches are only
 * made on a single-node client (a Cluster spreads the identities over slots). A lone take is sent
 * as the plain script, as without batching.
 */
import { bodyOf } from "./allScript.js"
import type { Definition } from "./core.js"
import { nowFromRedisTime } from "./core.js"
import type { EvalCall } from "./redisCall.js"
import { errorMessage, evalWhole } from "./redisCall.js"

/**
 * The batch script of `def`. KEYS are the takes' keys; ARGV[i], when present, the cost of
 * KEYS[i] (absent: one unit each, the hot path); ARGV[#KEYS + 1], when present, the time in µs
 * instead of Redis `TIME`. Replies with each key's own reply, in order.
 */
export const batchScript = (def: Definition): string =>
  `local now = tonumber(ARGV[#KEYS + 1])
${nowFromRedisTime}local maxDelay = 0
local none = {}
local function take(key, cost, ARGV)
${bodyOf(def)}end
local replies = {}
for i = 1, #KEYS do
  local c = ARGV[i]
  replies[i] = take(KEYS[i], c and tonumber(c) or 1, none)
end
return replies
`

/** The batch script, loaded or not, and how many takes one call may carry. */
export interface BatchScript {
  readonly script: string
  readonly sha: string
  readonly maxKeys: number
}

/**
 * Sends a take at once when none of this limiter's commands is waiting on Redis (a lone caller
 * pays no delay); while some are, it queues the takes until the end of the current tick (a
 * microtask: the takes that replies resumed together are all issued by then, and the client still
 * writes them in this turn of the event loop), then sends them in batches of at most `maxKeys`.
 */
export class Batcher {
  private queue: Array<EvalCall> = []
  private scheduled = false
  private inFlight = 0
  constructor(readonly batch: BatchScript) {}
  add(call: EvalCall): void {
    call.track()
    if (this.inFlight === 0 && !this.scheduled) {
      this.inFlight++
      return call.send(this.landed)
    }
    this.queue.push(call)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.flush)
    }
  }
  private readonly landed = (): void => {
    this.inFlight--
  }
  private readonly flush = (): void => {
    this.scheduled = false
    const queue = this.queue
    this.queue = []
    const max = this.batch.maxKeys
    for (let from = 0; from < queue.length; from += max) {
      const to = from + max < queue.length ? from + max : queue.length
      this.inFlight++
      if (to - from === 1) queue[from].send(this.landed)
      else sendBatch(this.batch, queue.slice(from, to), this.landed)
    }
  }
}

const ones = (calls: ReadonlyArray<EvalCall>): boolean => {
  for (let i = 0; i < calls.length; i++) if (calls[i].cost !== 1) return false
  return true
}

const noArgs: ReadonlyArray<string> = []

const sendBatch = (
  batch: BatchScript,
  calls: ReadonlyArray<EvalCall>,
  landed: () => void,
  whole = false
): void => {
  const keys = calls.map((c) => c.redisKey)
  const args = ones(calls) ? noArgs : calls.map((c) => String(c.cost))
  const { client } = calls[0].context
  const replied = (reply: unknown): void => {
    landed()
    const replies = reply as ReadonlyArray<unknown>
    if (!Array.isArray(replies) || replies.length !== calls.length) {
      for (let i = 0; i < calls.length; i++) calls[i].error(new Error(`batch: expected ${calls.length} replies`))
      return
    }
    for (let i = 0; i < calls.length; i++) calls[i].reply(replies[i])
  }
  const failed = (cause: unknown): void => {
    landed()
    for (let i = 0; i < calls.length; i++) calls[i].error(cause)
  }
  if (whole) return void evalWhole(client, batch.sha, batch.script, keys, args).then(replied, failed)
  client.evalsha(batch.sha, keys, args).then(replied, (cause) => {
    if (!errorMessage(cause).includes("NOSCRIPT")) return failed(cause)
    // sent whole once (a flush, a restart); takes that timed out meanwhile are not taken again
    const live = calls.filter((c) => !c.done)
    if (live.length > 0) sendBatch(batch, live, landed, true)
    else landed()
  })
}
