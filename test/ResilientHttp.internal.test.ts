import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as http from "../src/internal/http.js"

describe("HTTP helpers", () => {
  it("route patterns match parameters, wildcards and any method", () => {
    const users = http.compileRoute("GET /users/:id")
    if (typeof users === "string") return expect.fail(users)
    expect(users.name).toBe("GET /users/:id")
    expect(users.test("GET", "/users/42")).toBe(true)
    expect(users.test("GET", "/users/42/")).toBe(true)
    expect(users.test("POST", "/users/42")).toBe(false)
    expect(users.test("GET", "/users/42/orders")).toBe(false)
    expect(users.test("GET", "/users")).toBe(false)

    const admin = http.compileRoute("* /admin/*")
    if (typeof admin === "string") return expect.fail(admin)
    expect(admin.test("DELETE", "/admin/users/1")).toBe(true)
    expect(admin.test("GET", "/administrator")).toBe(false)

    const health = http.compileRoute("/health")
    if (typeof health === "string") return expect.fail(health)
    expect(health.name).toBe("* /health")
    expect(health.test("HEAD", "/health")).toBe(true)

    const dotted = http.compileRoute("GET /v1.0/items")
    if (typeof dotted === "string") return expect.fail(dotted)
    expect(dotted.test("GET", "/v1x0/items")).toBe(false)

    expect(typeof http.compileRoute("GET users")).toBe("string")
    expect(typeof http.compileRoute("G3T /users")).toBe("string")
  })

  it("pathOf drops the query and the fragment", () => {
    expect(http.pathOf("/a/b?x=1#y")).toBe("/a/b")
    expect(http.pathOf("/a#y?x")).toBe("/a")
    expect(http.pathOf("http://host:1/p/q?x")).toBe("/p/q")
    expect(http.pathOf("")).toBe("/")
  })

  it("rate-limit headers are whole seconds, rounded up, never negative", () => {
    expect(http.rateLimitHeaders({ limit: 10, remaining: 2.7, resetAfter: Duration.millis(1200) })).toEqual({
      "ratelimit-limit": "10",
      "ratelimit-remaining": "2",
      "ratelimit-reset": "2"
    })
    expect(http.rateLimitHeaders({ limit: 1, remaining: -3, resetAfter: Duration.zero })["ratelimit-remaining"]).toBe(
      "0"
    )
  })

  it("the rejection body carries retryAfterSeconds only when known", () => {
    expect(http.rejectionBody("timeout", 503, "late", "GET /", Option.none())).toEqual({
      error: { code: "timeout", status: 503, message: "late", route: "GET /" }
    })
    expect(http.rejectionBody("rate_limited", 429, "slow down", "GET /", Option.some(Duration.millis(300))).error)
      .toMatchObject({ retryAfterSeconds: 1 })
  })

  it("Retry-After is read as seconds or as an HTTP date", () => {
    expect(Option.map(http.parseRetryAfter("3", 0), Duration.toMillis)).toEqual(Option.some(3000))
    const now = Date.parse("Tue, 24 Nov 2026 12:00:00 GMT")
    expect(Option.map(http.parseRetryAfter("Tue, 24 Nov 2026 12:00:05 GMT", now), Duration.toMillis)).toEqual(
      Option.some(5000)
    )
    expect(Option.map(http.parseRetryAfter("Tue, 24 Nov 2026 11:00:00 GMT", now), Duration.toMillis)).toEqual(
      Option.some(0)
    )
    expect(http.parseRetryAfter("soon", now)).toEqual(Option.none())
    expect(http.parseRetryAfter("-1", now)).toEqual(Option.none())
    expect(http.parseRetryAfter(undefined, now)).toEqual(Option.none())
  })
})
