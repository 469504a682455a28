/**
 * A FIFO of waiters with O(1) removal from anywhere: the queue behind bulkheads and task runners.
 * A waiter that gives up (interrupted, timed out) unlinks itself at once, so it never holds a place
 * that a later caller could have used.
 */
import * as Effect from "effect/Effect"

export interface Waiter {
  /** resumes the waiting fiber; set once the fiber has suspended, called at most once */
  wake: (() => void) | undefined
  /** set when a permit has been handed to this waiter */
  granted: boolean
  /** permits this waiter needs (1 unless a bulkhead call is weighted) */
  weight: number
  prev: Waiter | undefined
  next: Waiter | undefined
  linked: boolean
}

export interface WaitQueue {
  head: Waiter | undefined
  tail: Waiter | undefined
  length: number
}

export const makeQueue = (): WaitQueue => ({ head: undefined, tail: undefined, length: 0 })

export const makeWaiter = (weight = 1): Waiter => ({
  wake: undefined,
  granted: false,
  weight,
  prev: undefined,
  next: undefined,
  linked: false
})

/** Appends `waiter` at the tail. */
export const push = (queue: WaitQueue, waiter: Waiter): void => {
  waiter.prev = queue.tail
  waiter.next = undefined
  if (queue.tail === undefined) queue.head = waiter
  else queue.tail.next = waiter
  queue.tail = waiter
  waiter.linked = true
  queue.length++
}

/** Removes `waiter` wherever it is; a no-op when it already left. */
export const remove = (queue: WaitQueue, waiter: Waiter): void => {
  if (!waiter.linked) return
  if (waiter.prev === undefined) queue.head = waiter.next
  else waiter.prev.next = waiter.next
  if (waiter.next === undefined) queue.tail = waiter.prev
  else waiter.next.prev = waiter.prev
  waiter.prev = undefined
  waiter.next = undefined
  waiter.linked = false
  queue.length--
}

/** Takes the oldest waiter off the queue. */
export const shift = (queue: WaitQueue): Waiter | undefined => {
  const waiter = queue.head
  if (waiter !== undefined) remove(queue, waiter)
  return waiter
}

/**
 * Permit accounting shared by the bulkhead and the task runner: `active` permits are held,
 * `queue` holds the callers waiting for one. Invariant: the queue is empty unless every permit is held.
 */
export interface Permits {
  readonly capacity: number
  active: number
  readonly queue: WaitQueue
}

export const makePermits = (capacity: number): Permits => ({ capacity, active: 0, queue: makeQueue() })

/** Takes a free permit if there is one and nobody is queued ahead. */
export const tryAcquire = (permits: Permits): boolean => {
  if (permits.active < permits.capacity && permits.queue.length === 0) {
    permits.active++
    return true
  }
  return false
}

/**
 * Gives a permit back. When someone is waiting, the permit goes straight to the oldest waiter
 * (`active` is unchanged) and that waiter is woken; otherwise `active` drops by one.
 */
export const release = (permits: Permits): void => {
  const next = shift(permits.queue)
  if (next === undefined) {
    permits.active--
    return
  }
  next.granted = true
  next.wake?.()
}

/**
 * Weighted permits: gives back `weight` permits, then grants waiters from the head for as long as
 * the head fits (FIFO: a waiter that does not fit yet blocks the ones behind it, so a heavy waiter
 * is never starved by light ones passing it).
 */
export const releaseWeighted = (permits: Permits, weight: number): void => {
  permits.active -= weight
  grantFitting(permits)
}

/** Grants waiters from the head while the head's weight fits in the free permits. */
export const grantFitting = (permits: Permits): void => {
  const queue = permits.queue
  for (
    let head = queue.head;
    head !== undefined && permits.active + head.weight <= permits.capacity;
    head = queue.head
  ) {
    remove(queue, head)
    permits.active += head.weight
    head.granted = true
    head.wake?.()
  }
}

/**
 * A weighted waiter gives up: a granted weight goes back to the queue; a waiter leaving the head
 * may let the ones behind it fit.
 */
export const abandonWeighted = (permits: Permits, waiter: Waiter): void => {
  if (waiter.granted) {
    waiter.granted = false
    releaseWeighted(permits, waiter.weight)
  } else {
    remove(permits.queue, waiter)
    grantFitting(permits)
  }
}

/**
 * A waiter gives up (interrupted or timed out). If a permit was already handed to it, the permit
 * moves on to the next waiter (or becomes free); otherwise it just leaves the queue.
 */
export const abandon = (permits: Permits, waiter: Waiter): void => {
  if (waiter.granted) {
    waiter.granted = false
    release(permits)
  } else {
    remove(permits.queue, waiter)
  }
}

/**
 * Suspends until `waiter` is granted a permit or taken off the queue by {@link wakeAll} (the owner
 * closed); the caller tells the two apart by `granted`.
 */
export const awaitPermit = (waiter: Waiter): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (waiter.granted || !waiter.linked) resume(Effect.void)
    else waiter.wake = () => resume(Effect.void)
  })

/** Takes every waiter off the queue and wakes it without a permit (the owner closed). */
export const wakeAll = (queue: WaitQueue): void => {
  for (let waiter = shift(queue); waiter !== undefined; waiter = shift(queue)) waiter.wake?.()
}
