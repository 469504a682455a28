/**
 * The Redis fixture of the integration tests, apart from `redisServer.ts`, which the benchmarks
 * import outside vitest.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { createClient } from "redis"
import { type RedisServer, startRedis } from "./redisServer.js"

/** A redis-server and a node-redis client connected to it, for looking at keys behind the store's back. */
export interface RedisFixture {
  readonly server: RedisServer
  readonly raw: ReturnType<typeof createClient>
}

/**
 * Starts a redis-server and a connected client before the tests of the enclosing `describe` block,
 * and stops both after them. The fields are set once the block's tests run.
 */
export const useRedisServer = (startTimeout = 120_000): RedisFixture => {
  const fixture = {} as { server: RedisServer; raw: ReturnType<typeof createClient> }
  beforeAll(async () => {
    fixture.server = await startRedis()
    fixture.raw = createClient({ url: fixture.server.url })
    // tests stop and kill the server: the client's reconnection errors are expected, not failures
    fixture.raw.on("error", () => {})
    await fixture.raw.connect()
  }, startTimeout)
  afterAll(async () => {
    await fixture.raw?.close().catch(() => undefined)
    await fixture.server?.stop()
  })
  return fixture
}
