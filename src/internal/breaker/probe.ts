/**
 * The active recovery probe: a fiber in the breaker's scope that, while the breaker is not Closed,
 * runs the probe effect every interval and reports its outcome to the breaker. While the breaker
 * is Closed the fiber waits on a latch and costs nothing; the breaker's state changes open and
 * close the latch synchronously, so calls pay nothing for the probe.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { Breaker } from "./engine.js"
import type { Probe } from "./policy.js"

/** Starts the probe fiber of `breaker` in the current scope. */
export const start = (breaker: Breaker, probe: Probe): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const recovering = yield* Effect.makeLatch(breaker.currentState() !== "Closed")
    const listeners = breaker.listeners ??= []
    listeners.push((change) => {
      if (change.to === "Closed") recovering.unsafeClose()
      else recovering.unsafeOpen()
    })
    const round = Effect.zipRight(
      recovering.await,
      Effect.zipRight(Effect.sleep(probe.everyMillis), Effect.suspend(() => probeOnce(breaker, probe)))
    )
    yield* Effect.forkScoped(Effect.forever(round))
  })

const probeOnce = (breaker: Breaker, probe: Probe): Effect.Effect<void> => {
  // an isolated breaker stays open until `reset`; a Closed one needs no probe (closed meanwhile)
  if (breaker.isolated || breaker.currentState() === "Closed") return Effect.void
  return Effect.flatMap(
    Effect.exit(probe.effect),
    (exit) => breaker.probed(Exit.isSuccess(exit), Exit.isFailure(exit) ? exit.cause : undefined)
  )
}
