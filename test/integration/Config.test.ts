import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Config from "../../src/Config.js"
import * as ResilientHttpServer from "../../src/ResilientHttpServer.js"
import { get, serve } from "./serve.js"

const withConfig = (json: object) => Effect.withConfigProvider(ConfigProvider.fromJson(json))

describe("Config", () => {
  it.effect("reads go-zero style keys with defaults", () =>
    Effect.gen(function*() {
      const config = yield* Config.load().pipe(withConfig({ Name: "user-api" }))
      expect(config.name).toBe("user-api")
      expect(config.mode).toBe("pro")
      expect(Option.map(config.timeout, Duration.toMillis)).toEqual(Option.some(3000))
      expect(config.cpuThreshold).toEqual(Option.none())
      expect(config.maxConns).toBe(10000)
      expect(Option.isNone(config.rateLimit)).toBe(true)
      expect(config.breaker.k).toBe(1.5)
      expect(config.middlewares.shedding).toBe(true)
    }))

  it.effect("accepts milliseconds or durations and nested sections", () =>
    Effect.gen(function*() {
      const config = yield* Config.load().pipe(withConfig({
        Name: "user-api",
        Mode: "dev",
        Timeout: "30 seconds",
        MaxConns: 500,
        RateLimit: { Rate: 100, KeyBy: "header:X-User-Id" },
        Breaker: { K: 2, Window: 5000 },
        Middlewares: { Shedding: false }
      }))
      expect(Option.map(config.timeout, Duration.toMillis)).toEqual(Option.some(30000))
      expect(config.maxConns).toBe(500)
      expect(config.rateLimit).toEqual(
        Option.some({ rate: 100, burst: 100, keyBy: { _tag: "header", header: "x-user-id" } })
      )
      expect(Duration.toMillis(config.breaker.window)).toBe(5000)
      expect(config.middlewares.shedding).toBe(false)
      const options = Config.toOptions(config)
      expect(options.shedding).toBe(false)
      expect(options.maxConns).toBe(500)
    }))

  for (
    const [key, json] of [
      ["CpuThreshold", { Name: "a", CpuThreshold: 2000 }],
      ["MaxConns", { Name: "a", MaxConns: -1 }],
      ["Timeout", { Name: "a", Timeout: "soon" }],
      ["Mode", { Name: "a", Mode: "production" }],
      ["RateLimit.Rate", { Name: "a", RateLimit: { Rate: 0 } }],
      ["RateLimit.KeyBy", { Name: "a", RateLimit: { Rate: 10, KeyBy: "cookie" } }],
      ["Breaker.K", { Name: "a", Breaker: { K: 0.5 } }],
      ["Name", {}]
    ] as const
  ) {
    it.effect(`a bad ${key} fails at start-up naming the key`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Config.load().pipe(withConfig(json)))
        expect(String(error)).toContain(key)
      }))
  }

  it.effect("layerConfig fails at start-up on a bad value", () =>
    Effect.gen(function*() {
      const layer = Config.layerConfig().pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({ Name: "api", MaxConns: "many" })))
      )
      const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
      expect(String(error)).toContain("MaxConns")
    }))

  it.live("layerConfig builds the whole middleware", () =>
    Effect.scoped(Effect.gen(function*() {
      const ctx = yield* Layer.build(
        Config.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({
            Name: "api",
            Mode: "dev",
            Timeout: 100,
            RateLimit: { Rate: 1, Burst: 2 }
          })))
        )
      )
      const server = yield* ResilientHttpServer.Server.pipe(Effect.provide(ctx))
      const config = yield* Config.ServiceConfigTag.pipe(Effect.provide(ctx))
      expect(config.name).toBe("api")
      expect(Option.isNone(server.shedder)).toBe(true)
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/", HttpServerResponse.text("ok")),
        HttpRouter.get("/slow", Effect.sleep("2 seconds").pipe(Effect.as(HttpServerResponse.text("late"))))
      )
      const url = yield* serve(router, server.middleware)
      expect((yield* get(url)).headers.get("ratelimit-limit")).toBe("2")
      expect((yield* get(`${url}/slow`)).json().error.code).toBe("timeout")
      expect((yield* get(url)).status).toBe(429)
    })))
})
