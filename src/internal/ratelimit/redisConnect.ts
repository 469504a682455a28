/**
 * node-redis connections for the Redis store: one server or a Cluster, configured for rate
 * limiting (no offline queue, no per-command timer, quick reconnects) and closed with the scope.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Redis from "redis"
import { StoreError } from "../../Errors.js"
import { errorMessage } from "./redisCall.js"

type Client = ReturnType<typeof Redis.createClient>
type Cluster = ReturnType<typeof Redis.createCluster>

/**
 * node-redis is an optional peer: it is loaded when a connection is first asked for, so importing
 * the toolkit (or a store built on an existing client) never loads it.
 */
const loadRedis = (): Promise<typeof Redis> =>
  import("redis").catch((cause) => {
    throw new Error("RedisStore needs the optional peer dependency \"redis\" (npm install redis)", { cause })
  })

/** A promise that fails after `ms` (not keeping the process alive). */
const within = <A>(work: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`could not ${what} within ${ms} ms`)), ms)
    t.unref()
    work.then((a) => {
      clearTimeout(t)
      resolve(a)
    }, (e) => {
      clearTimeout(t)
      reject(e)
    })
  })

const socketOptions = (connectTimeout: number, connected: () => boolean) => ({
  connectTimeout,
  // at start-up give up after a few attempts (the layer fails); later, keep reconnecting
  reconnectStrategy: (retries: number, cause: Error) =>
    !connected() && retries >= 3 ? cause : Math.min(20 * (retries + 1), 200)
})

export const connectWithin = (url: string, connectTimeout: number): Effect.Effect<Client, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const { createClient } = await loadRedis()
        let connected = false
        const client = createClient({
          url,
          disableOfflineQueue: true,
          // the store times calls out itself with one shared timer; node-redis's own default (5 s) arms an
          // AbortSignal timer per command, which costs more than the rest of the call
          commandOptions: { timeout: 0 },
          socket: socketOptions(connectTimeout, () => connected)
        })
        client.on("ready", () => {
          connected = true
        })
        client.on("error", () => {
          // reconnects are automatic; failures surface on the calls
        })
        try {
          await within(client.connect(), connectTimeout, "connect")
        } catch (e) {
          client.destroy()
          throw e
        }
        return client as Client
      },
      catch: (cause) => new StoreError({ store: "redis", operation: "connect", reason: errorMessage(cause), cause })
    }),
    (client) => Effect.promise(() => client.close().catch(() => undefined))
  )

export const connectCluster = (
  urls: ReadonlyArray<string>,
  connectTimeout: number
): Effect.Effect<Cluster, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const { createCluster } = await loadRedis()
        let connected = false
        const cluster = createCluster({
          rootNodes: urls.map((url) => ({ url })),
          commandOptions: { timeout: 0 },
          defaults: {
            disableOfflineQueue: true,
            socket: socketOptions(connectTimeout, () => connected)
          }
        })
        cluster.on("error", () => {
          // node failures surface on the calls; the client rediscovers the topology itself
        })
        try {
          await within(cluster.connect(), connectTimeout, "connect to the cluster")
          connected = true
        } catch (e) {
          cluster.destroy()
          throw e
        }
        return cluster as unknown as Cluster
      },
      catch: (cause) => new StoreError({ store: "redis", operation: "connect", reason: errorMessage(cause), cause })
    }),
    (cluster) => Effect.promise(() => cluster.close().catch(() => undefined))
  )
