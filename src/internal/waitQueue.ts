/**
 * A FIFO of waiters with O(1) removal from anywhere: the queue behind bulkheads and task runners.
 * A waiter that gives up (interrupted, timed out) unlinks itself at once, so it never holds a place
 * that a later caller could have used.
 */

export interface Waiter {
  /** resumes the waiting fiber; set once the fiber has suspended, called at most once */
  wake: (() => void) | undefined
  /** set when a permit has been handed to this waiter */
  granted: boolean
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

export const makeWaiter = (): Waiter => ({
  wake: undefined,
  granted: false,
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
