/**
 * The sync fiber of a clustered breaker. Every `interval` it runs one script on the breaker's hash
 * in Redis (see `clusterScript.ts`): it publishes what this instance saw and applies what the
 * others decided. Calls never wait for Redis: the breaker decides locally, and the sync only opens
 * or closes it from outside. When Redis fails or is slow the round is dropped, the breaker runs on
 * its local state (its own trips, open period and probes), and the next good round catches up.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { RedisClient } from "../../RedisStore.js"
import * as Script from "./clusterScript.js"
import { MachineCore } from "./core.js"
import type { Breaker } from "./engine.js"

export type Mode =
  | { readonly _tag: "Local" }
  | { readonly _tag: "Shared" }
  | { readonly _tag: "Quorum"; readonly n: number }

export interface Settings {
  readonly client: RedisClient
  readonly mode: Mode
  readonly key: string
  readonly instance: string
  readonly intervalMillis: number
  readonly timeoutMillis: number
  readonly reportTtlMillis: number
  readonly keyTtlMillis: number
}

/** Runs the script, loading it when Redis does not have it (a restart, a new Cluster node). */
const makeCaller = (client: RedisClient, key: string) => {
  let sha: string | undefined
  const run = async (args: ReadonlyArray<string>): Promise<unknown> => {
    if (sha === undefined) {
      if (client.eval !== undefined) return client.eval(Script.script, [key], args)
      sha = String(await client.scriptLoad(Script.script))
    }
    try {
      return await client.evalsha(sha, [key], args)
    } catch (error) {
      if (!String(error).includes("NOSCRIPT")) throw error
      sha = undefined
      return run(args)
    }
  }
  return run
}

/** Starts the sync fiber of `breaker` in the current scope. */
export const start = (breaker: Breaker, s: Settings): Effect.Effect<void, never, Scope.Scope> => {
  if (s.mode._tag === "Local") return Effect.void
  const mode = s.mode
  const core = breaker.core as MachineCore
  const call = makeCaller(s.client, s.key)
  /** set while a decision from Redis is applied: the changes it causes are not this instance's */
  let applying = false
  /** shared: the latest state this instance reached by itself and has not published yet */
  let unpublished: "Open" | "Closed" | undefined
  let seenGen = 0
  /** quorum: this instance tripped on its own (not on the quorum's word) and has not closed since */
  let ownTrip = false
  let seenEpoch = -1
  let reachable = true

  const listeners = breaker.listeners ??= []
  listeners.push((change) => {
    if (applying) return
    if (change.to === "Open" || change.to === "Closed") unpublished = change.to
    if (change.to === "Open") ownTrip = true
    else if (change.to === "Closed") ownTrip = false
  })

  const apply = (change: (core: MachineCore, now: number) => void) =>
    Effect.suspend(() => {
      applying = true
      return Effect.ensuring(
        breaker.applyExternal((_, now) => change(core, now)),
        Effect.sync(() => {
          applying = false
        })
      )
    })

  const sharedRound = Effect.suspend(() => {
    const publish = unpublished
    unpublished = undefined
    return Effect.flatMap(
      request(["shared", s.instance, publish ?? "", "", "", "", String(s.keyTtlMillis)]),
      (reply) => {
        const [gen, state] = reply as [number, string]
        if (publish !== undefined) {
          seenGen = gen
          return Effect.void
        }
        if (gen <= seenGen) return Effect.void
        seenGen = gen
        const local = breaker.currentState()
        if (state === "Open" && local !== "Open") return apply((c, now) => c.forceOpen(now))
        if (state === "Closed" && local !== "Closed") return apply((c, now) => c.forceClosed(now))
        return Effect.void
      }
    ).pipe(Effect.tapError(() =>
      Effect.sync(() => {
        // not published: try again next round, unless a newer local change replaced it
        unpublished ??= publish
      })
    ))
  })

  const report = (failing: boolean) =>
    request([
      "quorum",
      s.instance,
      "",
      failing ? "1" : "0",
      String(s.reportTtlMillis),
      String(mode._tag === "Quorum" ? mode.n : 1),
      String(s.keyTtlMillis)
    ])

  const quorumRound = Effect.suspend(() => {
    const failing = ownTrip && breaker.currentState() !== "Closed"
    return Effect.flatMap(report(failing), (reply) => {
      const [epoch, active] = reply as [number, number]
      const first = seenEpoch < 0
      const opened = first ? active === 1 : epoch > seenEpoch
      seenEpoch = epoch
      return opened && breaker.currentState() !== "Open" ? apply((c, now) => c.forceOpen(now)) : Effect.void
    })
  })

  function request(args: ReadonlyArray<string>): Effect.Effect<unknown, unknown> {
    return Effect.tryPromise(() => call(args)).pipe(
      Effect.timeoutFail({ duration: Duration.millis(s.timeoutMillis), onTimeout: () => "timeout" })
    )
  }

  const round = (mode._tag === "Shared" ? sharedRound : quorumRound).pipe(
    Effect.zipRight(Effect.suspend(() => {
      if (reachable) return Effect.void
      reachable = true
      return Effect.logInfo(`circuit breaker "${breaker.name}": cluster state reachable again`)
    })),
    Effect.catchAll((error) => {
      if (!reachable) return Effect.void
      reachable = false
      return Effect.logWarning(`circuit breaker "${breaker.name}": cluster state unreachable, running on local state`)
        .pipe(Effect.annotateLogs({ breaker: breaker.name, error: String(error) }))
    })
  )

  const loop = Effect.forever(Effect.zipRight(round, Effect.sleep(Duration.millis(s.intervalMillis))))
  // on the way out a quorum member withdraws its report, so the others do not wait for it to expire
  const withdraw = mode._tag === "Quorum" ? Effect.ignore(report(false)) : Effect.void
  return Effect.zipRight(Effect.addFinalizer(() => withdraw), Effect.asVoid(Effect.forkScoped(loop)))
}

/** Whether a breaker can follow a cluster (state machines can be opened and closed from outside). */
export const supports = (breaker: Breaker): boolean => breaker.core instanceof MachineCore
