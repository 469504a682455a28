import { describe, expect, it } from "@effect/vitest"
import * as RollingWindow from "../src/internal/rollingWindow.js"

describe("RollingWindow", () => {
  it("counts into the bucket of the current time", () => {
    const w = RollingWindow.make(4, 100, 2, 0)
    RollingWindow.add(w, 10, 0, 1)
    RollingWindow.add(w, 99, 0, 2)
    RollingWindow.add(w, 150, 1, 5)
    expect(RollingWindow.get(w, 0, 1)).toBe(5)
    expect(RollingWindow.get(w, 1, 0)).toBe(3)
    expect(RollingWindow.sum(w, 0)).toBe(3)
    expect(RollingWindow.sum(w, 1, false)).toBe(0)
  })

  it("forgets buckets older than the window", () => {
    const w = RollingWindow.make(4, 100, 1, 0)
    for (let t = 0; t < 400; t += 100) RollingWindow.add(w, t, 0, 1)
    expect(RollingWindow.sum(w, 0)).toBe(4)
    RollingWindow.advance(w, 450)
    expect(RollingWindow.sum(w, 0)).toBe(3)
    RollingWindow.advance(w, 650)
    expect(RollingWindow.sum(w, 0)).toBe(1)
    RollingWindow.advance(w, 10_000)
    expect(RollingWindow.sum(w, 0)).toBe(0)
  })

  it("never moves backwards", () => {
    const w = RollingWindow.make(3, 10, 1, 100)
    RollingWindow.add(w, 100, 0, 1)
    RollingWindow.add(w, 50, 0, 1)
    expect(RollingWindow.get(w, 0, 0)).toBe(2)
  })
})
