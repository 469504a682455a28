/**
 * Whether the Redis store trusts Redis, and how many instances share it.
 *
 * The store's own `CircuitBreaker` (consecutive failures) decides: calls report their failures
 * to it (successes only after a failure, so the hot path reports nothing), and a failed health
 * ping isolates it at once. While it is not closed the store is in failure mode; a fiber pings
 * Redis every `probeInterval` and resets the breaker on the first good answer.
 *
 * The ping is the heartbeat: each instance keeps an entry in one sorted set (score: when the
 * entry expires, three heartbeats later), and the heartbeat script drops the expired entries and
 * counts the rest. The largest of the last three counts is remembered, so the local fallback can
 * take its share of the quota while Redis is down.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type { StoreError } from "../../Errors.js"

export const heartbeatScript = `local t = redis.call("TIME")
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call("ZADD", KEYS[1], now + ttl, ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
redis.call("PEXPIRE", KEYS[1], ttl)
return redis.call("ZCARD", KEYS[1])
`

export const leaveScript = `redis.call("ZREM", KEYS[1], ARGV[1])
return 0
`

export interface Health {
  readonly healthy: () => boolean
  /** live instances sharing the store, as last counted (at least 1) */
  readonly instances: () => number
  /** counts up each time Redis is back: the next outage's fallback starts afresh */
  readonly recoveries: () => number
  readonly succeeded: () => Effect.Effect<void> | undefined
  readonly failed: (error: StoreError) => Effect.Effect<void>
}

export interface HealthOptions {
  /** the breaker's name, in its logs and metrics */
  readonly name: string
  readonly failureThreshold: number
  readonly probeInterval: Duration.Duration
  readonly heartbeatInterval: Duration.Duration
  /** one heartbeat: the live instance count */
  readonly heartbeat: Effect.Effect<number, StoreError>
}

export const makeHealth = (options: HealthOptions): Effect.Effect<Health, never, Scope.Scope> =>
  Effect.gen(function*() {
    const breaker = yield* Effect.orDie(CircuitBreaker.make(CircuitBreaker.consecutive({
      name: options.name,
      threshold: options.failureThreshold,
      // the probe fiber resets it; it never probes by itself
      openFor: Duration.days(1)
    })))
    let healthy = true
    let dirty = false
    let instances = 1
    let recoveries = 0

    const enter = (reason: string) =>
      Effect.suspend(() => {
        if (!healthy) return Effect.void
        healthy = false
        return Effect.logWarning("redis failed: rate limits fall back to this process").pipe(
          Effect.annotateLogs({ reason, instances })
        )
      })
    const failed = (error: StoreError): Effect.Effect<void> =>
      Effect.suspend(() => {
        dirty = true
        return Effect.ignore(breaker.protect(Effect.fail(error))).pipe(
          Effect.zipRight(breaker.state),
          Effect.flatMap((state) => state === "Closed" ? Effect.void : enter(error.reason))
        )
      })
    const report = Effect.ignore(breaker.protect(Effect.void))
    const succeeded = (): Effect.Effect<void> | undefined => {
      if (!dirty) return undefined
      dirty = false
      return report
    }

    // the largest of the last three counts: a late heartbeat (a busy instance, its entry expired for
    // a moment) must not shrink the count, which would make the others' shares too large
    const recent = [1, 1, 1]
    const beat = Effect.tap(options.heartbeat, (n) =>
      Effect.sync(() => {
        recent.shift()
        recent.push(n >= 1 ? n : 1)
        instances = Math.max(recent[0], recent[1], recent[2])
      }))
    const recovered = Effect.zipRight(
      breaker.reset,
      Effect.suspend(() => {
        healthy = true
        dirty = false
        recoveries++
        return Effect.logInfo("redis is back: rate limits are shared again").pipe(Effect.annotateLogs({ instances }))
      })
    )
    const every = Math.max(
      1,
      Math.round(Duration.toMillis(options.heartbeatInterval) / Duration.toMillis(options.probeInterval))
    )
    let tick = 0
    const probe = Effect.suspend(() => {
      if (!healthy) return Effect.ignore(Effect.zipRight(beat, recovered))
      if (tick++ % every !== 0) return Effect.void
      return beat.pipe(
        Effect.catchAll((error) => Effect.zipRight(breaker.isolate, enter(`health ping: ${error.reason}`))),
        Effect.asVoid
      )
    })
    yield* Effect.forkScoped(Effect.repeat(probe, Schedule.spaced(options.probeInterval)))

    return {
      healthy: () => healthy,
      instances: () => instances,
      recoveries: () => recoveries,
      succeeded,
      failed
    }
  })
