/**
 * A shedder's `Stats` snapshot, and the shedder a mode without shedding builds: it admits
 * everything and reports empty counts.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Subscribable from "effect/Subscribable"
import type { LoadShedder, Stats, Ticket } from "../../LoadShedder.js"
import * as Shedder from "../shedder.js"
import type { Decoded } from "./options.js"

const noopTicket: Ticket = { pass: Effect.void, fail: Effect.void }

const dropCounts = (dropped: ReadonlyArray<number>): Stats["droppedByPriority"] => ({
  sheddable: dropped[0],
  standard: dropped[1],
  critical: dropped[2]
})

export const disabled = (decoded: Decoded): LoadShedder => {
  const { kind, name, params } = decoded
  const stats: Stats = {
    name,
    enabled: false,
    signal: kind,
    value: 0,
    threshold: params.threshold,
    priorityThreshold: params.priorityThreshold,
    flying: 0,
    avgFlying: 0,
    maxPass: 1,
    minRt: Shedder.defaultMinRt,
    maxFlight: 1,
    overloadFactor: 1,
    hot: false,
    total: 0,
    passed: 0,
    dropped: 0,
    droppedByPriority: dropCounts([0, 0, 0])
  }
  return {
    name,
    allow: Effect.succeed(noopTicket),
    admit: () => Effect.succeed(noopTicket),
    protect: (effect) => effect,
    stats: Effect.succeed(stats),
    view: Subscribable.make({ get: Effect.succeed(stats), changes: Stream.succeed(stats) })
  }
}

export const statsOf = (decoded: Decoded, state: Shedder.State, value: number, now: number): Stats => {
  const { kind, name, params } = decoded
  const maxPass = Shedder.maxPass(state, now)
  const minRt = Shedder.minRt(state, now)
  return {
    name,
    enabled: true,
    signal: kind,
    value,
    threshold: params.threshold,
    priorityThreshold: params.priorityThreshold,
    flying: state.flying,
    avgFlying: state.avgFlying,
    maxPass,
    minRt,
    maxFlight: Shedder.maxFlightOf(maxPass, minRt, params.bucketMillis, params.allowanceMillis),
    overloadFactor: Shedder.factorOf(params.factor, value, params.threshold),
    hot: Shedder.isHot(state, now),
    total: state.total,
    passed: state.passed,
    dropped: Shedder.droppedTotal(state),
    droppedByPriority: dropCounts(state.dropped)
  }
}
