/**
 * One Lua script that takes from several limits all-or-nothing (`RateLimiter.all` on Redis).
 *
 * Each limit's own script body runs as a function over its key, with `redis` shadowed by a shim
 * that passes reads through and holds writes back. Once every body has answered, the held writes
 * run only if every limit admitted: a refused group writes nothing. The bodies are the very
 * scripts the single limiters run, so a limit in a group and the same limiter alone share keys and
 * decide alike. Redis runs a script atomically; on a Cluster its keys must share a slot (the store
 * wraps each identity in a hash tag, so limits over the same identity always do).
 */
import type { Definition, Kind } from "./core.js"
import { costAndNowHead, scriptHead } from "./core.js"

/** The Lua test of "admitted" on a plain take's reply (`r`), per kind (see the decoders in core.ts). */
const admits = (kind: Kind): string => kind === "TokenBucket" || kind === "Gcra" ? "r >= 0" : "r[3] == 0"

/** A limiter's script without the shared head: its step over `key`, `cost`, `maxDelay` and `now`. */
export const bodyOf = (def: Definition): string => {
  if (!def.script.startsWith(scriptHead)) throw new Error(`${def.kind}: script without the shared head`)
  return def.script.slice(scriptHead.length)
}

/**
 * The group's script. KEYS[i] is limit i's key; ARGV[1] the cost, ARGV[2] the time in µs or ""
 * for Redis `TIME`. Replies with every limit's own reply, in order.
 */
export const allScript = (defs: ReadonlyArray<Definition>): string => {
  const limits = defs.map((def, i) =>
    `do
  local r = (function(key, redis)
${bodyOf(def)}end)(KEYS[${i + 1}], shim)
  replies[${i + 1}] = r
  if not (${admits(def.kind)}) then ok = false end
end
`
  ).join("")
  return `${costAndNowHead}local pending = {}
local shim = { call = function(cmd, ...)
  if cmd == "GET" or cmd == "LRANGE" then return redis.call(cmd, ...) end
  pending[#pending + 1] = { cmd, ... }
  return true
end }
local replies, ok = {}, true
${limits}if ok then
  for i = 1, #pending do redis.call(unpack(pending[i])) end
end
return replies
`
}
