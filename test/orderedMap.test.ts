import { describe, expect, it } from "@effect/vitest"
import { LearnedLimits } from "../src/internal/learnedLimits.js"
import { OrderedMap } from "../src/internal/orderedMap.js"
import { Verdict } from "../src/internal/ratelimit/core.js"
import { makeDeniedCache } from "../src/internal/ratelimit/deniedCache.js"

const cpuSeconds = (run: () => void): number => {
  const start = process.cpuUsage()
  run()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1e6
}

describe("OrderedMap", () => {
  it("gives the oldest entry in insertion order through deletions, moves and emptying", () => {
    const m = new OrderedMap<string, number>()
    expect(m.oldest()).toBeUndefined()
    for (const [i, k] of ["a", "b", "c", "d"].entries()) m.set(k, i)
    expect(m.oldest()).toEqual(["a", 0])
    m.set("a", 10) // present: keeps its place
    expect(m.oldest()).toEqual(["a", 10])
    m.moveToBack("a", 11)
    expect(m.oldest()).toEqual(["b", 1])
    m.delete("c") // not the oldest: the oldest stays
    expect(m.oldest()).toEqual(["b", 1])
    m.delete("b")
    expect(m.oldest()).toEqual(["d", 3])
    m.delete("d")
    expect(m.oldest()).toEqual(["a", 11])
    expect(m.delete("a")).toBe(true)
    expect(m.delete("a")).toBe(false)
    expect(m.oldest()).toBeUndefined()
    m.set("e", 5)
    expect(m.oldest()).toEqual(["e", 5])
  })

  it("keeps the order of a model list under a long random run of changes", () => {
    const m = new OrderedMap<number, number>()
    const model: Array<number> = []
    let x = 12345
    const random = (n: number) => {
      x = (x * 1103515245 + 12345) % 2147483648
      return x % n
    }
    for (let step = 0; step < 20_000; step++) {
      const key = random(300)
      const op = random(4)
      const at = model.indexOf(key)
      if (op === 0) {
        if (at >= 0) model.splice(at, 1)
        m.delete(key)
      } else if (op === 1) {
        if (at >= 0) model.splice(at, 1)
        model.push(key)
        m.moveToBack(key, step)
      } else if (op === 2 && model.length > 0) {
        const oldest = m.oldest()
        expect(oldest?.[0]).toBe(model[0])
        model.shift()
        m.delete(oldest![0])
      } else {
        if (at < 0) model.push(key)
        m.set(key, step)
      }
      expect(m.size).toBe(model.length)
      expect(m.oldest()?.[0]).toBe(model[0])
    }
  })

  it("a walk sees every entry once, with deletions behind and ahead of it, then starts over", () => {
    const m = new OrderedMap<number, number>()
    for (let i = 0; i < 1000; i++) m.set(i, i)
    const seen: Array<number> = []
    for (let entry = m.walk(); entry !== undefined; entry = m.walk()) {
      seen.push(entry[0])
      // deletes itself and the key ahead of it; many deletions renew the map's other iterators
      if (entry[0] % 10 === 0) {
        m.delete(entry[0])
        m.delete(entry[0] + 1)
      }
    }
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i).filter((i) => i % 10 !== 1))
    expect(m.size).toBe(800)
    expect(m.walk()?.[0]).toBe(2)
  })

  it("evicting the oldest costs the same however many entries were evicted before", () => {
    const m = new OrderedMap<string, number>()
    for (let i = 0; i < 100_000; i++) m.set(`k${i}`, i)
    const used = cpuSeconds(() => {
      for (let i = 0; i < 100_000; i++) {
        m.delete(m.oldest()![0])
        m.set(`n${i}`, i)
      }
    })
    expect(m.oldest()?.[0]).toBe("n0")
    // a few ms here; a fresh iterator per eviction steps over every slot deleted before it
    // (seconds here). CPU time grows far less than wall time on a busy machine
    expect(used).toBeLessThan(0.5)
  })

  it("the denied cache and the learned limits evict at the same flat cost", () => {
    const refused = new Verdict(false, 10, 0, 1000, 1000, 0, undefined, undefined)
    const cache = makeDeniedCache(100_000)
    for (let i = 0; i < 100_000; i++) cache.put(`k${i}`, 1, refused, 0)
    expect(cpuSeconds(() => {
      for (let i = 0; i < 100_000; i++) cache.put(`n${i}`, 1, refused, 0)
    })).toBeLessThan(0.5)
    expect(cache.get("k99999", 1, 1)).toBeUndefined()
    expect(cache.get("n0", 1, 1)?.allowed).toBe(false)

    const limits = new LearnedLimits(100_000, 1000)
    for (let i = 0; i < 100_000; i++) limits.learn(`h${i}`, 429, {}, 0)
    expect(cpuSeconds(() => {
      for (let i = 0; i < 100_000; i++) limits.learn(`n${i}`, 429, {}, 0)
    })).toBeLessThan(0.5)
    expect(limits.hosts.size).toBe(100_000)
    expect(limits.hosts.has("h99999")).toBe(false)
  })
})
