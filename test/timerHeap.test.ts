/**
 * The shared host timer of timed runs on the live clock: entries fire in due order, cancelled
 * ones never fire, and the host timer stops holding the process once nothing waits.
 */
import { describe, expect, it } from "@effect/vitest"
import * as TimerHeap from "../src/internal/timerHeap.js"

const entry = (name: string, fired: Array<string>): TimerHeap.Entry => ({
  due: 0,
  queued: false,
  fire: () => fired.push(name)
})

const wait = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

describe("timer heap", () => {
  it("fires entries in due order, whatever order they were scheduled in; cancelled ones never", async () => {
    const fired: Array<string> = []
    const entries = [["c", 60], ["a", 20], ["x", 30], ["b", 40], ["y", 10]] as const
    const made = new Map(entries.map(([name]) => [name, entry(name, fired)]))
    for (const [name, millis] of entries) TimerHeap.schedule(made.get(name)!, millis)
    TimerHeap.cancel(made.get("x")!)
    TimerHeap.cancel(made.get("y")!)
    TimerHeap.cancel(made.get("y")!)
    expect(TimerHeap.size()).toBe(3)
    await wait(200)
    expect(fired).toEqual(["a", "b", "c"])
    expect(TimerHeap.size()).toBe(0)
    // a fired entry is no longer queued: cancelling it is a no-op
    TimerHeap.cancel(made.get("a")!)
    expect(TimerHeap.size()).toBe(0)
  })

  it("an entry never fires before its due time", async () => {
    const firedAt: Array<number> = []
    const started = performance.now()
    for (const millis of [5, 25, 50]) {
      TimerHeap.schedule({ due: 0, queued: false, fire: () => firedAt.push(performance.now() - started) }, millis)
    }
    await wait(150)
    expect(firedAt.length).toBe(3)
    firedAt.forEach((at, i) => expect(at).toBeGreaterThanOrEqual([5, 25, 50][i] - 1))
  })

  it("many cancelled among few waiting: swept, and the waiting ones still fire", async () => {
    const fired: Array<string> = []
    const keep = entry("keep", fired)
    TimerHeap.schedule(keep, 30)
    for (let i = 0; i < 10_000; i++) {
      const e = entry(`e${i}`, fired)
      TimerHeap.schedule(e, 1000 + i)
      TimerHeap.cancel(e)
    }
    expect(TimerHeap.size()).toBe(1)
    await wait(120)
    expect(fired).toEqual(["keep"])
  })

  it("a delay past the host timer's limit never fires, as with Effect's live clock", () => {
    const fired: Array<string> = []
    const e = entry("far", fired)
    TimerHeap.schedule(e, 2 ** 31)
    expect(e.queued).toBe(false)
    expect(TimerHeap.size()).toBe(0)
  })

  it("scheduled after the host timer went idle: fires on time", async () => {
    const fired: Array<string> = []
    const first = entry("first", fired)
    TimerHeap.schedule(first, 1000)
    TimerHeap.cancel(first)
    // the idle host timer (due in ~1 s) is let go at the end of this turn
    await wait(5)
    const second = entry("second", fired)
    TimerHeap.schedule(second, 20)
    await wait(100)
    expect(fired).toEqual(["second"])
  })
})
