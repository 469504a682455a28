import { describe, expect, it } from "@effect/vitest"
import * as Header from "../src/internal/deadlineHeader.js"

describe("deadline budget headers", () => {
  it("writes whole millis, or grpc-timeout in the finest unit that fits 8 digits", () => {
    expect(Header.format(295.7, "millis")).toBe("295")
    expect(Header.format(-3, "millis")).toBe("0")
    expect(Header.format(295.7, "grpc")).toBe("295m")
    expect(Header.format(100_000_000, "grpc")).toBe("100000S")
    expect(Header.format(1e15, "grpc")).toBe("99999999H")
  })

  it("reads millis and every grpc-timeout unit; malformed values are undefined", () => {
    expect(Header.parse("250")).toBe(250)
    expect(Header.parse(" 250 ")).toBe(250)
    expect(Header.parse("2S")).toBe(2000)
    expect(Header.parse("1M")).toBe(60_000)
    expect(Header.parse("1H")).toBe(3_600_000)
    expect(Header.parse("1500u")).toBe(1.5)
    expect(Header.parse("2000000n")).toBe(2)
    for (const bad of [undefined, "", "-5", "1.5", "123456789m", "10x", "abc", "1e3"]) {
      expect(Header.parse(bad)).toBeUndefined()
    }
  })

  it("a budget written and read back is the same whole millis", () => {
    for (const ms of [0, 1, 999, 1000, 86_400_000]) {
      expect(Header.parse(Header.format(ms, "millis"))).toBe(ms)
      expect(Header.parse(Header.format(ms, "grpc"))).toBe(ms)
    }
  })
})
