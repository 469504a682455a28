/**
 * `LoadShedder.makeGroup`: shedders keyed by name, built on first use with one set of options and
 * one signal.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError } from "../../Errors.js"
import type { Group, LoadShedder, Options } from "../../LoadShedder.js"
import * as ResilienceMode from "../../ResilienceMode.js"
import * as ShadowView from "../shadow.js"
import * as Shedder from "../shedder.js"
import * as Signal from "../shedderSignal.js"
import { build, reportEvery } from "./build.js"
import { decode, invalid } from "./options.js"
import { disabled } from "./stats.js"

export const makeGroup = (
  options: Omit<Options, "name"> & { readonly priority?: boolean }
): Effect.Effect<Group, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const { priority, ...shedderOptions } = options
    const decoded = yield* decode({ ...shedderOptions, name: "group" })
    const mode = yield* ResilienceMode.current
    // the signal is found (or its live sampler started) once for the whole group
    const signal = ResilienceMode.isSheddingEnabled(mode) ? yield* Signal.reader(decoded.kind) : undefined
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const tier = Shedder.tierIndex[priority === true ? "critical" : "standard"]
    const shadow = yield* ShadowView.current
    const shedders = new Map<string, LoadShedder>()
    const create = (name: string): Effect.Effect<LoadShedder, InvalidOptionsError> =>
      Effect.gen(function*() {
        if (name.length === 0) return yield* invalid("name", name, "expected a non-empty name")
        const existing = shedders.get(name)
        if (existing !== undefined) return existing
        const named = { ...decoded, name }
        if (signal === undefined) {
          const off = disabled(named)
          shedders.set(name, off)
          return off
        }
        const built = build(named, tier, signal, clock)
        const { report } = built
        const shedder = Option.isNone(shadow) ? built.shedder : ShadowView.loadShedder(built.shedder, shadow.value)
        // registered in the same synchronous step as the lookup: concurrent `get`s share it
        shedders.set(name, shedder)
        yield* Effect.forkIn(reportEvery(report), scope)
        return shedder
      })
    return { get: create }
  })
