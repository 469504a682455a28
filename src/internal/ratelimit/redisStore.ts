/**
 * The engine of `RedisStore.make`: per limiter, the script (loaded once, called by SHA with the
 * parameters inside it, so a plain take sends only the key), the call path, the failure modes and
 * the local fallback.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { StoreError } from "../../Errors.js"
import type { AllStepper, KeyReader, Limit, Stepper } from "../../RateLimiterStore.js"
import * as NodeCrypto from "../nodeCrypto.js"
import { allScript } from "./allScript.js"
import type { Definition, RawDecision } from "./core.js"
import { num, toMicros, US, Verdict } from "./core.js"
import type { DeniedCache } from "./deniedCache.js"
import { makeDeniedCache } from "./deniedCache.js"
import { KeyWatchers, peekScript } from "./keyView.js"
import type { Table } from "./memory.js"
import { makeTable, runAll } from "./memory.js"
import type { BatchScript } from "./redisBatch.js"
import { Batcher, batchScript } from "./redisBatch.js"
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
  /** most takes in one batch; 1: no batches (see `redisBatch.ts`) */
  readonly batchMaxKeys: number
}

const noArgs: ReadonlyArray<string> = []

/** A Redis call as an effect, failing with `StoreError` when it fails or outlives its deadline. */
const callWithin =
  (deadlines: Deadlines) => <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
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

/** One `A` per limiter and algorithm, made on first use. */
const perLimiter = <A>(make: (def: Definition) => A) => {
  const made = new Map<string, A>()
  return (limiter: string, def: Definition): A => {
    const id = `${limiter}\u0000${def.id}`
    let a = made.get(id)
    if (a === undefined) {
      a = make(def)
      made.set(id, a)
    }
    return a
  }
}

type Call = ReturnType<typeof callWithin>

/**
 * This instance's membership of the store's instances (a heartbeat, and a leave when the scope
 * closes) and the health it drives.
 */
const instanceHealth = (
  client: ScriptClient,
  o: EngineOptions,
  call: Call,
  sha1: (text: string) => string
): Effect.Effect<Health, never, Scope.Scope> =>
  Effect.gen(function*() {
    const instance = crypto.randomUUID()
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
    return yield* makeHealth({
      name: `redis-store ${o.prefix}`,
      failureThreshold: o.failureThreshold,
      probeInterval: o.healthCheckInterval,
      heartbeatInterval: o.heartbeatInterval,
      heartbeat
    })
  })

/** Reads one key of a limiter without taking from it (`RateLimiter.view`), and who watches it. */
const keyReader = (
  client: ScriptClient,
  o: EngineOptions,
  health: Health,
  call: Call,
  view: {
    readonly limiter: string
    readonly def: Definition
    readonly script: string
    readonly sha: string
    readonly local: () => Table
    readonly watchers: KeyWatchers
  }
): KeyReader => {
  const { def, local, script, sha } = view
  const keyPrefix = `${o.prefix}${view.limiter}:{`
  return {
    peek: (key, cost) => {
      // while Redis is away, the local fallback is what decides: the view reads it
      if (!health.healthy() && o.onError === "local-fallback") {
        return Effect.clockWith((clock) =>
          Effect.sync(() => local().evaluate(key, clock.unsafeCurrentTimeMillis() * US, cost).decision)
        )
      }
      return Effect.map(
        call("evalsha", () => evalScript(client, sha, script, [keyPrefix + key + "}"], [String(cost), ""])),
        (reply) => def.decode(reply as never, cost)
      )
    },
    watch: (key, listener) => view.watchers.watch(key, listener)
  }
}

export const makeEngine = (client: ScriptClient, o: EngineOptions) =>
  Effect.gen(function*() {
    const sha1 = yield* NodeCrypto.sha1
    const deadlines = yield* Effect.acquireRelease(
      Effect.sync(() => makeDeadlines(o.timeoutMs)),
      (d) => Effect.sync(d.close)
    )
    const call = callWithin(deadlines)

    const health = yield* instanceHealth(client, o, call, sha1)
    const loaded = new Set<string>()
    const load = (script: string): Effect.Effect<string> => {
      const sha = sha1(script)
      if (loaded.has(sha)) return Effect.succeed(sha)
      loaded.add(sha)
      // best effort: a failure here is repaired by the NOSCRIPT fallback on first use
      return Effect.as(Effect.ignore(call("script load", () => client.scriptLoad(script))), sha)
    }
    // one fallback table per limiter, shared by the limiter alone and the groups it is part of
    const fallback = perLimiter((def) => fallbackFor(def, health, o.fallbackMaxKeys))
    // who watches which key, per limiter (`RateLimiter.view`)
    const watchersFor = perLimiter(() => new KeyWatchers())
    const batching = client.singleNode === true && o.batchMaxKeys > 1
    const batchOf = (def: Definition): Effect.Effect<BatchScript | undefined> => {
      if (!batching) return Effect.succeed(undefined)
      const script = batchScript(def)
      return Effect.map(load(script), (sha) => ({ script, sha, maxKeys: o.batchMaxKeys }))
    }
    const prepare = (limiter: string, def: Definition): Effect.Effect<Stepper> =>
      Effect.zipWith(
        load(def.script),
        batchOf(def),
        (sha, batch) =>
          watched(
            stepperFor(
              client,
              o,
              deadlines,
              health,
              call,
              `${o.prefix}${limiter}:{`,
              def,
              sha,
              fallback(limiter, def),
              batch
            ),
            watchersFor(limiter, def)
          )
      )
    const prepareAll = (limits: ReadonlyArray<Limit>): Effect.Effect<AllStepper> => {
      const script = allScript(limits.map((l) => l.algorithm))
      return Effect.map(load(script), (sha) =>
        watchedAll(
          allStepperFor(o, health, call, {
            client,
            script,
            sha,
            limits,
            locals: limits.map((l) => fallback(l.limiter, l.algorithm))
          }),
          limits.map((l) => watchersFor(l.limiter, l.algorithm))
        ))
    }
    const prepareView = (limiter: string, def: Definition): Effect.Effect<KeyReader> => {
      const script = peekScript(def)
      const local = fallback(limiter, def)
      const watchers = watchersFor(limiter, def)
      return Effect.map(
        load(script),
        (sha) => keyReader(client, o, health, call, { limiter, def, script, sha, local, watchers })
      )
    }
    return { prepare, prepareAll, prepareView, health }
  })

/**
 * Tells the key's watchers after each admitted take or reservation, and each cancel. Keeps the
 * step's `stepThen` (unwatched, it is the whole hot path: one effect per decision).
 */
const watched = (step: Stepper, w: KeyWatchers): Stepper => {
  const then = step.stepThen
  return Object.assign(
    (key: string, cost: number, maxDelayMs: number) =>
      w.count === 0 ? step(key, cost, maxDelayMs) : Effect.tap(step(key, cost, maxDelayMs), (d) => {
        if (d.allowed) w.changed(key)
      }),
    {
      cancel: (key: string, cost: number, timeToAct: number) =>
        w.count === 0
          ? step.cancel(key, cost, timeToAct)
          : Effect.ensuring(step.cancel(key, cost, timeToAct), Effect.sync(() => w.changed(key))),
      stepThen: then === undefined ? undefined : <A, E>(
        key: string,
        cost: number,
        maxDelayMs: number,
        f: (raw: RawDecision) => Effect.Effect<A, E>
      ): Effect.Effect<A, E | StoreError> =>
        w.count === 0 ? then(key, cost, maxDelayMs, f) : then(key, cost, maxDelayMs, (d) => {
          if (d.allowed) w.changed(key)
          return f(d)
        })
    }
  )
}

const watchedAll = (step: AllStepper, ws: ReadonlyArray<KeyWatchers>): AllStepper => (keys, cost) => {
  let watching = false
  for (let i = 0; i < ws.length; i++) if (ws[i].count > 0) watching = true
  if (!watching) return step(keys, cost)
  return Effect.tap(step(keys, cost), (decisions) => {
    for (let i = 0; i < decisions.length; i++) if (!decisions[i].allowed) return
    for (let i = 0; i < ws.length; i++) if (ws[i].count > 0) ws[i].changed(keys[i])
  })
}

interface Group {
  readonly client: ScriptClient
  readonly script: string
  readonly sha: string
  readonly limits: ReadonlyArray<Limit>
  readonly locals: ReadonlyArray<() => Table>
}

/**
 * A group's step: one script over every limit's key, or, in failure mode, what `onError` says
 * (the local fallback runs the group on the limiters' own fallback tables). A key set that spans
 * Cluster slots is the caller's error (`CROSSSLOT`): it fails without counting against Redis.
 */
const allStepperFor = (
  o: EngineOptions,
  health: Health,
  call: Call,
  group: Group
): AllStepper => {
  const { client, limits, locals, script, sha } = group
  const prefixes = limits.map((l) => `${o.prefix}${l.limiter}:{`)
  const open = limits.map((l) =>
    new Verdict(true, l.algorithm.limit, l.algorithm.limit, 0, 0, 0, undefined, undefined) as RawDecision
  )
  const degraded = (keys: ReadonlyArray<string>, cost: number, error: StoreError) => {
    switch (o.onError) {
      case "fail-open":
        return Effect.succeed(open)
      case "fail-closed":
        return Effect.fail(error)
      case "local-fallback":
        return Effect.clockWith((clock) =>
          Effect.sync(() => runAll(locals.map((local) => local()), keys, clock.unsafeCurrentTimeMillis() * US, cost))
        )
    }
  }
  const unavailable = new StoreError({ store: "redis", operation: "evalsha", reason: "redis is unavailable" })
  const decode = (reply: unknown, cost: number): ReadonlyArray<RawDecision> => {
    const replies = reply as ReadonlyArray<unknown>
    return limits.map((l, i) => l.algorithm.decode(replies[i] as never, cost))
  }
  return (keys, cost) => {
    if (!health.healthy()) return degraded(keys, cost, unavailable)
    const redisKeys = keys.map((key, i) => prefixes[i] + key + "}")
    const args = [String(cost)]
    return Effect.matchEffect(call("evalsha", () => evalScript(client, sha, script, redisKeys, args)), {
      onFailure: (error) =>
        error.reason.includes("CROSSSLOT")
          ? Effect.fail(error)
          : Effect.zipRight(health.failed(error), degraded(keys, cost, error)),
      onSuccess: (reply) => {
        const decided = Effect.succeed(decode(reply, cost))
        const report = health.succeeded()
        return report === undefined ? decided : Effect.zipRight(report, decided)
      }
    })
  }
}

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

/** What a take does while Redis is away: admit, refuse, or decide on the local table. */
const degradedFor = (onError: OnError, def: Definition, local: () => Table) => {
  const limit = def.limit
  const localStep = (key: string, cost: number, maxDelay: number) =>
    Effect.clockWith((clock) => Effect.succeed(local().run(key, clock.unsafeCurrentTimeMillis() * US, cost, maxDelay)))
  const open: RawDecision = new Verdict(true, limit, limit, 0, 0, 0, undefined, undefined)
  return (key: string, cost: number, maxDelay: number, error: StoreError) => {
    switch (onError) {
      case "fail-open":
        return Effect.succeed(open)
      case "fail-closed":
        return Effect.fail(error)
      case "local-fallback":
        return localStep(key, cost, maxDelay)
    }
  }
}

/** A cancel while Redis is away: only the local table, which decided meanwhile, has anything to give back. */
const cancelLocally = (
  onError: OnError,
  local: () => Table,
  key: string,
  cost: number,
  timeToAct: number
): Effect.Effect<void> => {
  if (onError !== "local-fallback") return Effect.void
  return Effect.clockWith((clock) =>
    Effect.sync(() => local().cancel(key, clock.unsafeCurrentTimeMillis() * US, cost, timeToAct))
  )
}

const stepperFor = (
  client: ScriptClient,
  o: EngineOptions,
  deadlines: Deadlines,
  health: Health,
  call: Call,
  keyPrefix: string,
  def: Definition,
  sha: string,
  local: () => Table,
  batch: BatchScript | undefined
): Stepper => {
  const degraded = degradedFor(o.onError, def, local)
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
  const batcher = batch === undefined ? undefined : new Batcher(batch)
  const denied: DeniedCache | undefined = o.deniedCacheMaxKeys > 0 ? makeDeniedCache(o.deniedCacheMaxKeys) : undefined
  const remote = <A = RawDecision, E = never>(
    key: string,
    cost: number,
    maxDelay: number,
    then?: (raw: RawDecision) => Effect.Effect<A, E>
  ): Effect.Effect<A, E | StoreError> => {
    const redisKey = keyPrefix + key + "}"
    const args = cost === 1 && maxDelay === 0 ? noArgs : [String(cost), num(maxDelay)]
    if (batcher !== undefined && maxDelay === 0) {
      return Effect.async<A, E | StoreError>((resume) => {
        batcher.add(new EvalCall(context, key, redisKey, args, cost, maxDelay, then, resume))
      })
    }
    return Effect.async<A, E | StoreError>((resume) => {
      new EvalCall(context, key, redisKey, args, cost, maxDelay, then, resume).start()
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
  const stepThen = <A, E>(
    key: string,
    cost: number,
    maxDelayMs: number,
    f: (raw: RawDecision) => Effect.Effect<A, E>
  ): Effect.Effect<A, E | StoreError> => {
    const maxDelay = maxDelayMs === 0 ? 0 : toMicros(maxDelayMs)
    if (health.healthy() && (denied === undefined || maxDelay > 0)) return remote(key, cost, maxDelay, f)
    return Effect.flatMap(step(key, cost, maxDelayMs), f)
  }
  const cancel = (key: string, cost: number, timeToAct: number): Effect.Effect<void, StoreError> => {
    if (!health.healthy()) return cancelLocally(o.onError, local, key, cost, timeToAct)
    const keys = [keyPrefix + key + "}"]
    // bounded by the timeout like every call: an interrupted waiter never hangs on a dead Redis
    return Effect.asVoid(
      call("cancel", () => evalScript(client, sha, def.script, keys, [String(cost), "0", "", String(timeToAct)]))
    )
  }
  return Object.assign(step, { cancel, stepThen })
}
