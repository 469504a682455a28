/**
 * Learned host limits shared by the instances of one client through Redis.
 *
 * Calls never wait for Redis: each instance admits on its local table. A fiber syncs every
 * `interval` with one script over one hash per client name (`<prefix>{<name>}`, one slot on a
 * Cluster). The script records this instance as a member (with a TTL), publishes what this
 * instance heard from each host since the last round, drops what has expired, and answers with
 * the number of live members and, per host, the freshest figures any instance heard. Each instance
 * then takes on the figures it has not heard newer itself, and divides a host's remaining quota by
 * the number of members, so together they send no more than the server still accepts.
 *
 * Times cross the wire as durations (a reset in so many ms, heard so many ms ago) and are placed
 * on Redis's clock by the script, so instances' clocks need not agree. When Redis is down or slow
 * the instance runs on its own limits (share 1), and the next good round catches up.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { RedisClient } from "../RedisStore.js"
import type { HostLimit, LearnedLimits } from "./learnedLimits.js"
import * as NodeCrypto from "./nodeCrypto.js"

export interface ShareSettings {
  readonly client: RedisClient
  /** the hash, `<prefix>{<name>}` */
  readonly key: string
  readonly instance: string
  readonly intervalMillis: number
  readonly timeoutMillis: number
  /** how long a member counts without syncing (after a crash, say) */
  readonly memberTtlMillis: number
}

/**
 * KEYS[1]: the hash. ARGV: instance, member TTL (ms), then per host five fields: host, remaining,
 * reset in (ms), limit (-1 unknown), heard ago (ms). Fields: "m\n<instance>" → expiry (Redis ms);
 * "h\n<host>\n<instance>" → "remaining resetAt limit seen" (Redis ms). Replies
 * `[members, host, remaining, resetIn, limit, seenAgo, instance, seen, …]`, one group per host with
 * the freshest figures (`seen` on Redis's clock names the hearing).
 */
export const shareScript = `local key = KEYS[1]
local me = ARGV[1]
local t = redis.call("TIME")
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call("HSET", key, "m\\n" .. me, now + tonumber(ARGV[2]))
local i = 3
while ARGV[i] do
  local value = string.format("%d %d %d %d", tonumber(ARGV[i + 1]), now + tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3]), now - tonumber(ARGV[i + 4]))
  redis.call("HSET", key, "h\\n" .. ARGV[i] .. "\\n" .. me, value)
  i = i + 5
end
local all = redis.call("HGETALL", key)
local members, best, order, longest = 0, {}, {}, now
for j = 1, #all, 2 do
  local field, value = all[j], all[j + 1]
  local member = string.match(field, "^m\\n(.*)$")
  if member then
    local expiry = tonumber(value)
    if expiry <= now then redis.call("HDEL", key, field) else
      members = members + 1
      if expiry > longest then longest = expiry end
    end
  else
    local host, inst = string.match(field, "^h\\n(.*)\\n([^\\n]*)$")
    local r, reset, limit, seen = string.match(value, "^(%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+)$")
    reset = tonumber(reset)
    if not host or not reset or reset <= now then redis.call("HDEL", key, field) else
      if reset > longest then longest = reset end
      seen = tonumber(seen)
      local b = best[host]
      if not b then order[#order + 1] = host end
      if not b or seen > b[4] then best[host] = { tonumber(r), reset, tonumber(limit), seen, inst } end
    end
  end
end
redis.call("PEXPIREAT", key, longest + 1000)
local reply = { members }
for _, host in ipairs(order) do
  local b = best[host]
  reply[#reply + 1] = host
  reply[#reply + 1] = b[1]
  reply[#reply + 1] = b[2] - now
  reply[#reply + 1] = b[3]
  reply[#reply + 1] = now - b[4]
  reply[#reply + 1] = b[5]
  reply[#reply + 1] = b[4]
end
return reply
`

/** Withdraws this instance from the members, so the others' shares grow at once. */
const leaveScript = `redis.call("HDEL", KEYS[1], "m\\n" .. ARGV[1])
return 0
`

/** Runs `script` by its SHA, sending it whole the first time Redis has not seen it. */
const evalScript = (sha1: NodeCrypto.Sha1, script: string) => {
  const sha = sha1(script)
  return (client: RedisClient, keys: Array<string>, args: Array<string>): Promise<unknown> =>
    client.evalsha(sha, keys, args).catch((error: unknown) => {
      if (!String((error as { message?: unknown })?.message ?? error).includes("NOSCRIPT")) throw error
      return client.eval !== undefined
        ? client.eval(script, keys, args)
        : client.scriptLoad(script).then(() => client.evalsha(sha, keys, args))
    })
}

/** What one round sends for `host`: the server's own figures as this instance heard them. */
const argsOf = (host: string, h: HostLimit, now: number): Array<string> => [
  host,
  String(h.remaining),
  String(Math.max(0, Math.ceil(h.resetAt - now))),
  String(Number.isNaN(h.limit) ? -1 : h.limit),
  String(Math.max(0, Math.floor(now - h.seen)))
]

/** Takes a round's reply into `limits`; returns the live member count. */
export const applyReply = (limits: LearnedLimits, reply: ReadonlyArray<unknown>, me: string, now: number): number => {
  const members = Math.max(1, Number(reply[0]))
  limits.share = members
  for (let i = 1; i + 6 < reply.length; i += 7) {
    const instance = String(reply[i + 5])
    if (instance === me) continue
    const limit = Number(reply[i + 3])
    limits.adopt(String(reply[i]), {
      remaining: Number(reply[i + 1]),
      resetAt: now + Number(reply[i + 2]),
      limit: limit < 0 ? Number.NaN : limit,
      seen: now - Number(reply[i + 4]),
      origin: `${instance} ${reply[i + 6]}`
    }, now)
  }
  return members
}

export interface Share {
  /** records what this instance heard from `host`, for the next round */
  readonly publish: (host: string, heard: HostLimit) => void
}

/** Starts the sync fiber in the current scope. */
export const start = (
  name: string,
  limits: LearnedLimits,
  s: ShareSettings
): Effect.Effect<Share, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sha1 = yield* NodeCrypto.sha1
    const evalShare = evalScript(sha1, shareScript)
    const evalLeave = evalScript(sha1, leaveScript)
    // heard since the last round that reached Redis
    let pending = new Map<string, HostLimit>()
    let reachable = true
    const round = Effect.clockWith((clock) => {
      const sending = pending
      pending = new Map()
      const now = clock.unsafeCurrentTimeMillis()
      const args = [s.instance, String(s.memberTtlMillis)]
      for (const [host, h] of sending) if (h.resetAt > now) args.push(...argsOf(host, h, now))
      return Effect.tryPromise(() => evalShare(s.client, [s.key], args)).pipe(
        Effect.timeoutFail({ duration: Duration.millis(s.timeoutMillis), onTimeout: () => "timeout" }),
        Effect.flatMap((reply) =>
          Effect.clockWith((c) =>
            Effect.sync(() =>
              applyReply(limits, reply as ReadonlyArray<unknown>, s.instance, c.unsafeCurrentTimeMillis())
            )
          )
        ),
        Effect.tapError(() =>
          Effect.sync(() => {
            // not published: send it next round, unless heard newer meanwhile
            for (const [host, h] of sending) if (!pending.has(host)) pending.set(host, h)
            limits.share = 1
          })
        )
      )
    })
    const logged = round.pipe(
      Effect.zipRight(Effect.suspend(() => {
        if (reachable) return Effect.void
        reachable = true
        return Effect.logInfo(`http client "${name}": shared learned limits reachable again`)
      })),
      Effect.catchAll((error) => {
        if (!reachable) return Effect.void
        reachable = false
        return Effect.logWarning(`http client "${name}": shared learned limits unreachable, running on local limits`)
          .pipe(Effect.annotateLogs({ client: name, error: String(error) }))
      })
    )
    const timeout = Effect.timeoutFail({ duration: Duration.millis(s.timeoutMillis), onTimeout: () => "timeout" })
    yield* Effect.addFinalizer(() =>
      Effect.ignore(timeout(Effect.tryPromise(() => evalLeave(s.client, [s.key], [s.instance]))))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(logged, Effect.sleep(Duration.millis(s.intervalMillis)))))
    return {
      publish: (host, heard) => {
        pending.set(host, heard)
      }
    }
  })
