/**
 * The engine of `RedisStore.make`: per limiter, the script (loaded once, called by SHA with the
 * parameters inside it, so a plain take sends only the key), the call path, the failure modes and
 * the local fallback.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { createHash, randomUUID } from "node:crypto"
import { StoreError } from "../../Errors.js"
import type { Stepper } from "../../RateLimiterStore.js"
import type { Definition, RawDecision } from "./core.js"
import { num, toMicros, US, Verdict } from "./core.js"
import type { DeniedCache } from "./deniedCache.js"
import { makeDeniedCache } from "./deniedCache.js"
import type { Table } from "./memory.js"
import { makeTable } from "./memory.js"
import type { CallContext, Deadlines, ScriptClient } from "./redisCall.js"
import { errorMessage, EvalCall, evalScript, makeDeadlines } from "./redisCall.js"
import type { Health } from "./redisHealth.js"
import { heartbeatScript, leaveScript, makeHealth } from "./redisHealth.js"

export type OnError = "fail-open" | "fail-closed" | "local-fallback"

export interface EngineOptions {
  readonly prefix: string
  readonly onError: OnError
  readonly timeoutMs: number
  readonly fallbackMaxKeys: number
  readonly healthCheckInterval: Duration.Duration
  readonly heartbeatInterval: Duration.Duration
  readonly failureThreshold: number
  readonly deniedCacheMaxKeys: number
}

const sha1 = (script: string): string => createHash("sha1").update(script).digest("hex")

const noArgs: ReadonlyArray<string> = []

export const makeEngine = (client: ScriptClient, o: EngineOptions) =>
  Effect.gen(function*() {
    const deadlines = yield* Effect.acquireRelease(
      Effect.sync(() => makeDeadlines(o.timeoutMs)),
      (d) => Effect.sync(d.close)
    )
    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
      Effect.async<A, StoreError>((resume) => {
        const pending = deadlines.track((reason) =>
          resume(Effect.fail(new StoreError({ store: "redis", operation, reason }, true)))
        )
        run().then(
          (value) => {
            if (deadlines.settle(pending)) resume(Effect.succeed(value))
          },
          (cause) => {
            if (!deadlines.settle(pending)) return
            resume(Effect.fail(new StoreError({ store: "redis", operation, reason: errorMessage(cause), cause }, true)))
          }
        )
        return Effect.sync(() => {
          deadlines.settle(pending)
        })
      })

    const instance = randomUUID()
    const instancesKey = [`${o.prefix}{instances}`]
    const heartbeatSha = sha1(heartbeatScript)
    const ttlMs = String(Math.ceil(3 * Duration.toMillis(o.heartbeatInterval)))
    const heartbeat = Effect.map(
      call("heartbeat", () => evalScript(client, heartbeatSha, heartbeatScript, instancesKey, [instance, ttlMs])),
      Number
    )
    yield* Effect.addFinalizer(() =>
      Effect.ignore(call("leave", () => evalScript(client, sha1(leaveScript), leaveScript, instancesKey, [instance])))
    )
    const health = yield* makeHealth({
      name: `redis-store ${o.prefix}`,
      failureThreshold: o.failureThreshold,
      probeInterval: o.healthCheckInterval,
      heartbeatInterval: o.heartbeatInterval,
      heartbeat
    })
    const loaded = new Set<string>()
    const prepare = (limiter: string, def: Definition): Effect.Effect<Stepper> =>
      Effect.gen(function*() {
        const sha = sha1(def.script)
        if (!loaded.has(sha)) {
          loaded.add(sha)
          // best effort: a failure here is repaired by the NOSCRIPT fallback on first use
          yield* Effect.ignore(call("script load", () => client.scriptLoad(def.script)))
        }
        return stepperFor(client, o, deadlines, health, call, `${o.prefix}${limiter}:{`, def, sha)
      })
    return { prepare, health }
  })

/**
 * One instance's share of the quota. Each outage starts afresh (the state of the last one is stale
 * by then), and so does a new instance count.
 */
const fallbackFor = (def: Definition, health: Health, maxKeys: number) => {
  let table: Table | undefined
  let epoch = -1
  let shareOf = 0
  return (): Table => {
    const n = health.instances()
    if (table === undefined || epoch !== health.recoveries() || shareOf !== n) {
      table = makeTable(n > 1 ? def.share(n) : def, { maxKeys, idleTimeToLive: Infinity })
      epoch = health.recoveries()
      shareOf = n
    }
    return table
  }
}

const stepperFor = (
  client: ScriptClient,
  o: EngineOptions,
  deadlines: Deadlines,
  health: Health,
  call: <A>(operation: string, run: () => Promise<A>) => Effect.Effect<A, StoreError>,
  keyPrefix: string,
  def: Definition,
  sha: string
): Stepper => {
  const limit = def.limit
  const local = fallbackFor(def, health, o.fallbackMaxKeys)
  const localStep = (key: string, cost: number, maxDelay: number) =>
    Effect.clockWith((clock) => Effect.succeed(local().run(key, clock.unsafeCurrentTimeMillis() * US, cost, maxDelay)))
  const open: RawDecision = new Verdict(true, limit, limit, 0, 0, 0, undefined, undefined)
  const degraded = (key: string, cost: number, maxDelay: number, error: StoreError) => {
    switch (o.onError) {
      case "fail-open":
        return Effect.succeed(open)
      case "fail-closed":
        return Effect.fail(error)
      case "local-fallback":
        return localStep(key, cost, maxDelay)
    }
  }
  const unavailable = new StoreError({ store: "redis", operation: "evalsha", reason: "redis is unavailable" })
  const context: CallContext = {
    client,
    sha,
    script: def.script,
    deadlines,
    decode: def.decode as CallContext["decode"],
    succeeded: health.succeeded,
    failed: (key, cost, maxDelay, error) => Effect.zipRight(health.failed(error), degraded(key, cost, maxDelay, error))
  }
  const denied: DeniedCache | undefined = o.deniedCacheMaxKeys > 0 ? makeDeniedCache(o.deniedCacheMaxKeys) : undefined
  const remote = (key: string, cost: number, maxDelay: number): Effect.Effect<RawDecision, StoreError> => {
    const keys = [keyPrefix + key + "}"]
    const args = cost === 1 && maxDelay === 0 ? noArgs : [String(cost), num(maxDelay)]
    return Effect.async<RawDecision, StoreError>((resume) => {
      new EvalCall(context, key, keys, args, cost, maxDelay, resume).start()
    })
  }
  const cached = (key: string, cost: number, cache: DeniedCache): Effect.Effect<RawDecision, StoreError> => {
    const hit = cache.get(key, cost, performance.now())
    if (hit !== undefined) return Effect.succeed(hit)
    return Effect.tap(remote(key, cost, 0), (d) => {
      if (!d.allowed) cache.put(key, cost, d, performance.now())
    })
  }
  const step = (key: string, cost: number, maxDelayMs: number): Effect.Effect<RawDecision, StoreError> => {
    const maxDelay = maxDelayMs === 0 ? 0 : toMicros(maxDelayMs)
    if (!health.healthy()) return degraded(key, cost, maxDelay, unavailable)
    if (denied !== undefined && maxDelay === 0) return cached(key, cost, denied)
    return remote(key, cost, maxDelay)
  }
  const cancel = (key: string, cost: number, timeToAct: number): Effect.Effect<void, StoreError> => {
    if (!health.healthy()) {
      if (o.onError !== "local-fallback") return Effect.void
      return Effect.clockWith((clock) =>
        Effect.sync(() => local().cancel(key, clock.unsafeCurrentTimeMillis() * US, cost, timeToAct))
      )
    }
    const keys = [keyPrefix + key + "}"]
    // bounded by the timeout like every call: an interrupted waiter never hangs on a dead Redis
    return Effect.asVoid(
      call("cancel", () => evalScript(client, sha, def.script, keys, [String(cost), "0", "", String(timeToAct)]))
    )
  }
  return Object.assign(step, { cancel })
}
