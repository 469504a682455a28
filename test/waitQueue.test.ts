import { describe, expect, it } from "@effect/vitest"
import * as Q from "../src/internal/waitQueue.js"

const drain = (queue: Q.WaitQueue): Array<Q.Waiter> => {
  const out: Array<Q.Waiter> = []
  for (let w = Q.shift(queue); w !== undefined; w = Q.shift(queue)) out.push(w)
  return out
}

describe("internal/waitQueue", () => {
  it("keeps FIFO order and removes from anywhere in O(1), matching an array model", () => {
    // a small deterministic pseudo-random walk (no Math.random in the toolkit, not even in tests)
    let seed = 42
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const queue = Q.makeQueue()
    const model: Array<Q.Waiter> = []
    for (let step = 0; step < 5000; step++) {
      const r = next()
      if (r < 0.5) {
        const w = Q.makeWaiter()
        Q.push(queue, w)
        model.push(w)
      } else if (r < 0.75) {
        expect(Q.shift(queue)).toBe(model.shift())
      } else if (model.length > 0) {
        const i = Math.floor(next() * model.length)
        const [w] = model.splice(i, 1)
        Q.remove(queue, w)
        Q.remove(queue, w) // removing twice is a no-op
      }
      expect(queue.length).toBe(model.length)
    }
    expect(drain(queue)).toEqual(model)
    expect(queue.head).toBeUndefined()
    expect(queue.tail).toBeUndefined()
  })

  it("release hands the permit to the oldest waiter; abandon passes a granted permit on", () => {
    const permits = Q.makePermits(1)
    expect(Q.tryAcquire(permits)).toBe(true)
    expect(Q.tryAcquire(permits)).toBe(false)
    const woken: Array<string> = []
    const a = Q.makeWaiter()
    const b = Q.makeWaiter()
    a.wake = () => woken.push("a")
    b.wake = () => woken.push("b")
    Q.push(permits.queue, a)
    Q.push(permits.queue, b)
    Q.release(permits)
    expect(woken).toEqual(["a"])
    expect(a.granted).toBe(true)
    expect(permits.active).toBe(1) // handed over, not freed
    // a gives up after being granted: the permit moves on to b
    Q.abandon(permits, a)
    expect(woken).toEqual(["a", "b"])
    expect(b.granted).toBe(true)
    expect(permits.active).toBe(1)
    Q.abandon(permits, b)
    expect(permits.active).toBe(0)
    expect(permits.queue.length).toBe(0)
  })

  it("a newcomer cannot take a free permit while someone is queued", () => {
    const permits = Q.makePermits(2)
    expect(Q.tryAcquire(permits)).toBe(true)
    expect(Q.tryAcquire(permits)).toBe(true)
    const w = Q.makeWaiter()
    Q.push(permits.queue, w)
    permits.active-- // a permit frees up without going through release (defensive)
    expect(Q.tryAcquire(permits)).toBe(false)
    Q.abandon(permits, w)
    expect(Q.tryAcquire(permits)).toBe(true)
  })
})
