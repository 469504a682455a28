/**
 * A breaker policy read from `effect/Config`: the kind under `policy`, the options by name.
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import type { CommonOptions, Policy } from "../../CircuitBreaker.js"
import { PolicyTypeId } from "./policy.js"

const optional = <A>(config: Config.Config<A>) => Config.option(config)

const tags = { sre: "Sre", consecutive: "Consecutive", countWindow: "CountWindow", timeWindow: "TimeWindow" } as const

export const policyConfig: Config.Config<Policy> = Config.all({
  policy: Config.literal("sre", "consecutive", "countWindow", "timeWindow")("policy").pipe(Config.withDefault("sre")),
  name: Config.string("name"),
  k: optional(Config.number("k")),
  minK: optional(Config.number("minK")),
  protection: optional(Config.number("protection")),
  window: optional(Config.duration("window")),
  buckets: optional(Config.integer("buckets")),
  forcePassAfter: optional(Config.duration("forcePassAfter")),
  threshold: optional(Config.integer("threshold")),
  openFor: optional(Config.duration("openFor")),
  halfOpenMaxCalls: optional(Config.integer("halfOpenMaxCalls")),
  size: optional(Config.integer("size")),
  minimumCalls: optional(Config.integer("minimumCalls")),
  failureRateThreshold: optional(Config.number("failureRateThreshold")),
  slowCallDuration: optional(Config.duration("slowCallDuration")),
  slowCallRateThreshold: optional(Config.number("slowCallRateThreshold"))
}).pipe(Config.map(({ policy: kind, ...rest }): Policy => {
  // only the options that were set, so the policy's own defaults apply to the rest
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(rest)) {
    if (typeof value === "string") options[key] = value
    else if (Option.isOption(value)) {
      const v = value as Option.Option<unknown>
      if (Option.isSome(v)) options[key] = v.value
    }
  }
  return { [PolicyTypeId]: PolicyTypeId, _tag: tags[kind], options: options as unknown as CommonOptions }
}))
