/**
 * The effectful side of learned per-host limits: before an attempt, wait for the host's quota
 * (or fail fast); after a response, learn from it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { RateLimitedError } from "../Errors.js"
import type { RedisClient } from "../RedisStore.js"
import * as Timeout from "../Timeout.js"
import { LearnedLimits } from "./learnedLimits.js"
import * as Share from "./learnedLimitsShare.js"

export interface Settings {
  readonly onLimited?: "wait" | "fail" | undefined
  readonly maxWait?: Duration.Duration | undefined
  readonly blockFor?: Duration.Duration | undefined
  /** shares what is learned with the other instances through Redis */
  readonly share?: Omit<Share.ShareSettings, "key"> & { readonly prefix: string } | undefined
}

export interface Gate {
  readonly limits: LearnedLimits
  /** waits until `host` may be sent a request, or fails with `RateLimitedError` */
  readonly enter: (host: string) => Effect.Effect<void, RateLimitedError>
  /** learns from a response of `host` */
  readonly learn: (host: string, status: number, headers: Readonly<Record<string, string | undefined>>) => void
}

/** The decoded `share` option as the gate runs it; a member counts for ten intervals (a busy instance syncs late). */
export const shareSettings = (
  o: {
    readonly client: unknown
    readonly interval: Duration.Duration
    readonly timeout: Duration.Duration
    readonly prefix: string
    readonly instance?: string | undefined
  } | undefined
): Settings["share"] => {
  if (o === undefined) return undefined
  const intervalMillis = Duration.toMillis(o.interval)
  return {
    client: o.client as RedisClient,
    prefix: o.prefix,
    instance: o.instance ?? crypto.randomUUID(),
    intervalMillis,
    timeoutMillis: Duration.toMillis(o.timeout),
    memberTtlMillis: 10 * intervalMillis
  }
}

export const make = (name: string, maxHosts: number, settings: Settings): Effect.Effect<Gate, never, Scope.Scope> =>
  Effect.clockWith((clock) => {
    const limits = new LearnedLimits(
      maxHosts,
      settings.blockFor === undefined ? 1000 : Duration.toMillis(settings.blockFor)
    )
    const wait = settings.onLimited !== "fail"
    const maxWait = settings.maxWait === undefined ? 30_000 : Duration.toMillis(settings.maxWait)
    const refuse = (host: string, millis: number) => {
      const limit = limits.hosts.get(host)?.limit
      return Effect.fail(
        new RateLimitedError({
          limiter: name,
          key: host,
          limit: limit === undefined || Number.isNaN(limit) ? 0 : limit,
          remaining: 0,
          retryAfter: Duration.millis(millis)
        })
      )
    }
    const enter = (host: string): Effect.Effect<void, RateLimitedError> =>
      Effect.suspend(() => {
        const millis = limits.admit(host, clock.unsafeCurrentTimeMillis())
        if (millis === 0) return Effect.void
        if (!wait || millis > maxWait) return refuse(host, millis)
        // never wait past the caller's deadline: the request could not be sent in time
        return Effect.flatMap(Timeout.remaining, (left) =>
          Option.isSome(left) && Duration.toMillis(left.value) <= millis
            ? refuse(host, millis)
            : Effect.zipRight(Effect.sleep(Duration.millis(millis)), enter(host)))
      })
    if (settings.share === undefined) {
      return Effect.succeed({
        limits,
        enter,
        learn: (host, status, headers) => {
          limits.learn(host, status, headers, clock.unsafeCurrentTimeMillis())
        }
      })
    }
    const { prefix, ...share } = settings.share
    return Effect.map(Share.start(name, limits, { ...share, key: `${prefix}{${name}}` }), (shared): Gate => ({
      limits,
      enter,
      learn: (host, status, headers) => {
        const heard = limits.learn(host, status, headers, clock.unsafeCurrentTimeMillis())
        if (heard !== undefined) shared.publish(host, heard)
      }
    }))
  })
