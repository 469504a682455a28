/**
 * Read-only live views of a primitive's state (`view: Subscribable<Stats>` on each module).
 *
 * `get` reads the state when asked. `changes` emits the state at subscription, then after every
 * change, for as long as the stream runs. The primitive calls `notify()` where its state changes:
 * with nobody subscribed that is one field read — no hub exists until the first subscriber, and no
 * snapshot is built — so the hot path pays nothing for views nobody watches.
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as Subscribable from "effect/Subscribable"

export class Publisher<A> {
  /** subscribers of `changes` right now */
  subscribers = 0
  private hub: PubSub.PubSub<A> | undefined = undefined
  readonly view: Subscribable.Subscribable<A>

  constructor(private readonly read: () => A) {
    this.view = Subscribable.make({
      get: Effect.sync(read),
      changes: Stream.unwrapScoped(Effect.gen(this, function*() {
        const made = yield* PubSub.unbounded<A>()
        const hub = this.hub ??= made
        // subscribed before the first read: no change can fall between the two
        const dequeue = yield* PubSub.subscribe(hub)
        this.subscribers++
        yield* Effect.addFinalizer(() => Effect.sync(() => this.subscribers--))
        return Stream.concat(Stream.succeed(read()), Stream.fromQueue(dequeue))
      }))
    })
  }

  /** The state changed: publishes it to the subscribers, if any. */
  notify(): void {
    if (this.subscribers > 0) this.hub!.unsafeOffer(this.read())
  }

  /** Publishes `value` (already built by the caller) to the subscribers, if any. */
  offer(value: A): void {
    if (this.subscribers > 0) this.hub!.unsafeOffer(value)
  }
}

/**
 * A view over events the primitive already announces (a breaker's state changes, an adaptive
 * limit's moves): `changes` emits `get` at subscription, then `onEvent(event)` for each event. The
 * primitive calls `offer` only where it announces; with nobody subscribed that is one field read.
 */
export class EventView<E, A> {
  subscribers = 0
  private hub: PubSub.PubSub<E> | undefined = undefined
  readonly view: Subscribable.Subscribable<A>

  constructor(get: Effect.Effect<A>, onEvent: (event: E) => Effect.Effect<A>) {
    this.view = Subscribable.make({
      get,
      changes: Stream.unwrapScoped(Effect.gen(this, function*() {
        const made = yield* PubSub.unbounded<E>()
        const hub = this.hub ??= made
        const dequeue = yield* PubSub.subscribe(hub)
        this.subscribers++
        yield* Effect.addFinalizer(() => Effect.sync(() => this.subscribers--))
        const first = yield* get
        return Stream.concat(Stream.succeed(first), Stream.mapEffect(Stream.fromQueue(dequeue), onEvent))
      }))
    })
  }

  offer(event: E): void {
    if (this.subscribers > 0) this.hub!.unsafeOffer(event)
  }
}
