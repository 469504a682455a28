/**
 * Entering a matched effect in the step that decided to run it.
 *
 * A policy's happy path decides inside `Effect.withFiberRuntime` and then runs its work wrapped in
 * a `matchCauseEffect` built once. Run as an effect, that match costs the runtime a step of its
 * own, whose whole job is to push the match onto the fiber's stack as the frame its handlers are
 * called from, then go on with the work. `enter` does that push itself, from the step already
 * running, and goes on with the work directly: the same frame on the same stack, so the handlers
 * run exactly when the match's would — on success, on failure, on a defect, and not when the
 * fiber is interrupted while the work runs interruptibly — one runtime step fewer.
 *
 * The push is a method of the running fiber beyond the public `RuntimeFiber` interface (Effect 3's
 * FiberRuntime, as `timedRun.ts` reads it); on a fiber without it the match runs as an effect.
 */
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"

interface Stack {
  pushStack(frame: unknown): void
}

/**
 * Runs `matched` — `Effect.matchCauseEffect(work, handlers)` — on `fiber`: the match's frame is
 * pushed now and `work` is returned. `fiber` must be the fiber calling this (from
 * `Effect.withFiberRuntime`), and the returned effect must be the next one it runs — returned
 * as is from that callback, never composed with anything first.
 */
export const enter = <A, E, R>(
  fiber: Fiber.RuntimeFiber<any, any>,
  matched: Effect.Effect<A, E, R>,
  work: Effect.Effect<any, any, any>
): Effect.Effect<A, E, R> => {
  if (typeof (fiber as unknown as Partial<Stack>).pushStack !== "function") return matched
  ;(fiber as unknown as Stack).pushStack(matched)
  return work
}
