/**
 * A flaky downstream HTTP service for the examples and the demo.
 *
 * It serves `GET /users/:id` (a small JSON user) and `GET /ping`. Its behaviour is held in a `Ref`
 * and can be switched at any time: added latency with jitter, an error rate (500), a rate of
 * requests that hang for `hangMs` (to exercise timeouts), or a full outage (every request 503).
 * Randomness comes from effect's `Random`, time from `Clock`, so it is an ordinary Effect program.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Random, Ref } from "effect"
import type { Scope } from "effect"
import { createServer } from "node:http"

/** How the downstream behaves right now. */
export interface Behaviour {
  /** Base latency added to every answer, in milliseconds. */
  readonly latencyMs: number
  /** Uniform jitter added on top of `latencyMs`, in milliseconds. */
  readonly jitterMs: number
  /** Probability that a request answers 500. */
  readonly errorRate: number
  /** Probability that a request hangs for `hangMs` before answering. */
  readonly hangRate: number
  readonly hangMs: number
  /** When true every request answers 503 at once. */
  readonly down: boolean
}

export const healthy: Behaviour = { latencyMs: 15, jitterMs: 10, errorRate: 0, hangRate: 0, hangMs: 0, down: false }

export interface FlakyServer {
  readonly port: number
  readonly url: string
  readonly set: (behaviour: Partial<Behaviour>) => Effect.Effect<void>
  readonly behaviour: Effect.Effect<Behaviour>
  /** Requests answered so far, by status. */
  readonly served: Effect.Effect<Readonly<Record<number, number>>>
}

const names = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances"]

/**
 * Starts the flaky server on 127.0.0.1 (a free port unless `port` is given); it stops when the
 * scope closes.
 */
export const start = (
  options: { readonly port?: number; readonly behaviour?: Partial<Behaviour> } = {}
): Effect.Effect<FlakyServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const state = yield* Ref.make<Behaviour>({ ...healthy, ...options.behaviour })
    const served = yield* Ref.make<Record<number, number>>({})
    const count = (status: number) => Ref.update(served, (m) => ({ ...m, [status]: (m[status] ?? 0) + 1 }))

    const answer = (body: Effect.Effect<HttpServerResponse.HttpServerResponse>) =>
      Effect.gen(function*() {
        const b = yield* Ref.get(state)
        if (b.down) {
          yield* count(503)
          return HttpServerResponse.unsafeJson({ error: "downstream unavailable" }, { status: 503 })
        }
        const jitter = b.jitterMs > 0 ? yield* Random.nextRange(0, b.jitterMs) : 0
        const hang = b.hangRate > 0 && (yield* Random.next) < b.hangRate
        yield* Effect.sleep(hang ? b.hangMs : b.latencyMs + jitter)
        if (b.errorRate > 0 && (yield* Random.next) < b.errorRate) {
          yield* count(500)
          return HttpServerResponse.unsafeJson({ error: "internal error" }, { status: 500 })
        }
        yield* count(200)
        return yield* body
      })

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/ping", answer(Effect.succeed(HttpServerResponse.unsafeJson({ ok: true })))),
      HttpRouter.get(
        "/users/:id",
        HttpRouter.params.pipe(
          Effect.flatMap((params) => {
            const id = params.id ?? "0"
            const n = Number.parseInt(id, 10)
            return answer(Effect.succeed(HttpServerResponse.unsafeJson({
              id,
              name: names[Number.isFinite(n) ? Math.abs(n) % names.length : 0],
              source: "downstream"
            })))
          })
        )
      )
    )

    const server = yield* NodeHttpServer.make(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
      .pipe(Effect.orDie)
    yield* server.serve(router).pipe(Effect.provide(NodeHttpServer.layerContext))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    return {
      port,
      url: `http://127.0.0.1:${port}`,
      set: (patch) => Ref.update(state, (b) => ({ ...b, ...patch })),
      behaviour: Ref.get(state),
      served: Ref.get(served)
    } satisfies FlakyServer
  })
