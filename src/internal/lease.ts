/**
 * Leases tied to the fiber that runs the work: how a bulkhead ties a permit (and a registry ties
 * "in use") to the work's lifetime without an uninterruptible region per call.
 *
 * `hold(fiber, tag, work)` takes a slot for `fiber` and wraps `work` in one `matchCauseEffect`
 * whose handlers give the slot back on success, failure and defect. The runtime skips those
 * handlers in one case only: the holding fiber was interrupted while the work ran interruptibly.
 * For that case every holding fiber carries one exit observer (per `Leases` and fiber, added the
 * first time the fiber holds a slot): when the fiber exits, the slots it still holds come back. A
 * fiber interrupted mid-work can run nothing interruptible any more, so it exits once its
 * remaining finalizers have run — the lease outlives the work by those finalizers at most, and is
 * never given back while the work could still be running.
 *
 * Compared with `Effect.uninterruptibleMask` + `restore` around each call, this costs no runtime
 * flag changes and no per-call closures: the handlers of a slot are built once and reused, and a
 * `Guarded` effect (what a bulkhead's `protect(effect)` runs) keeps the matched run of its last
 * slot, so a caller calling it in a loop allocates nothing for the lease.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { enter } from "./frame.js"

type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

interface Handlers {
  readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<never, unknown>
  readonly onSuccess: (a: unknown) => Effect.Effect<unknown>
}

// closures passed as arguments stay anonymous (see the breaker engine on esbuild's keepNames)
const handlers = (
  onFailure: Handlers["onFailure"],
  onSuccess: Handlers["onSuccess"]
): Handlers => ({ onFailure, onSuccess })

const slotHandlers = (leases: Leases<any>, slot: number): Handlers =>
  handlers(
    (cause) => {
      leases.release(slot)
      return Effect.failCause(cause)
    },
    (a) => {
      leases.release(slot)
      return Effect.succeed(a)
    }
  )

const exitObserver = (leases: Leases<any>, fiber: AnyFiber) => () => leases.fiberExited(fiber)

/** An effect that is run holding a lease again and again, with the matched run of its last slot. */
export class Guarded<A, E, R> {
  slot = -1
  leases: Leases<any> | undefined = undefined
  matched: Effect.Effect<A, E, R> | undefined = undefined
  constructor(readonly work: Effect.Effect<A, E, R>) {}
}

export class Leases<T> {
  /** the fiber holding each slot (undefined: free) */
  private readonly holders: Array<AnyFiber | undefined> = []
  private readonly tags: Array<T | undefined> = []
  private readonly handlers: Array<Handlers> = []
  private readonly free: Array<number> = []
  /** fibers that already carry this instance's exit observer */
  private watched: WeakMap<AnyFiber, true> | undefined = undefined
  /** the last fiber watched: a fiber calling in a loop skips the WeakMap lookup */
  private lastWatched: AnyFiber | undefined = undefined
  /** slots held */
  held = 0

  constructor(private readonly onRelease: (tag: T) => void) {}

  /** Runs `work` holding a slot for `tag` on `fiber` (the fiber that runs this effect). */
  hold<A, E, R>(fiber: Fiber.RuntimeFiber<any, any>, tag: T, work: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return this.around(this.take(fiber, tag), work)
  }

  /**
   * `hold` for a guarded effect run again and again: the matched run of its last slot is reused
   * when the slot taken is the same (a caller calling in a loop always takes the same one), and
   * entered in the step that took the slot (`frame.ts`).
   */
  holdGuarded<A, E, R>(fiber: Fiber.RuntimeFiber<any, any>, tag: T, guarded: Guarded<A, E, R>): Effect.Effect<A, E, R> {
    const slot = this.take(fiber, tag)
    if (slot !== guarded.slot || guarded.leases !== this) {
      guarded.matched = this.around(slot, guarded.work)
      guarded.slot = slot
      guarded.leases = this
    }
    return enter(fiber, guarded.matched!, guarded.work)
  }

  /** `work` giving `slot` back when it ends. */
  private around<A, E, R>(slot: number, work: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.matchCauseEffect(work, this.handlers[slot]) as Effect.Effect<A, E, R>
  }

  /** Takes a slot for `tag` on `fiber`. */
  private take(fiber: Fiber.RuntimeFiber<any, any>, tag: T): number {
    let slot = this.free.pop()
    if (slot === undefined) {
      slot = this.holders.length
      this.holders.push(undefined)
      this.tags.push(undefined)
      this.handlers.push(slotHandlers(this, slot))
    }
    this.holders[slot] = fiber
    this.tags[slot] = tag
    this.held++
    if (fiber !== this.lastWatched) {
      const watched = this.watched ??= new WeakMap()
      if (!watched.has(fiber)) {
        watched.set(fiber, true)
        fiber.addObserver(exitObserver(this, fiber))
      }
      this.lastWatched = fiber
    }
    return slot
  }

  release(slot: number): void {
    const tag = this.tags[slot] as T
    this.holders[slot] = undefined
    this.tags[slot] = undefined
    this.free.push(slot)
    this.held--
    this.onRelease(tag)
  }

  /** A holding fiber exited: the slots it still holds were skipped by an interruption. */
  fiberExited(fiber: AnyFiber): void {
    for (let slot = 0; slot < this.holders.length; slot++) {
      if (this.holders[slot] === fiber) this.release(slot)
    }
  }
}
