/**
 * The breaker's metric families in the instance registry, and the slots a breaker writes.
 */
import type { State } from "../../CircuitBreaker.js"
import * as InstanceMetrics from "../instanceMetrics.js"

export const STATES: ReadonlyArray<State> = ["Closed", "HalfOpen", "Open", "Isolated"]

/** The gauge value of each state (`resilience_breaker_state`); a higher value is a worse state. */
export const stateValue: Readonly<Record<State, number>> = { Closed: 0, HalfOpen: 1, Open: 2, Isolated: 3 }

const OUTCOMES = ["success", "failure", "ignored", "rejected"] as const

const requests = InstanceMetrics.slotted(
  "resilience_breaker_requests_total",
  "calls through the breaker by outcome: success, failure, ignored (counted as neither) or rejected",
  "counter",
  OUTCOMES.map((outcome) => ({ outcome }))
)

const changes = InstanceMetrics.slotted(
  "resilience_breaker_state_changes_total",
  "state changes of the breaker",
  "counter",
  STATES.flatMap((from) => STATES.map((to) => ({ from, to }))),
  { sparse: true }
)

// The slots count the breakers of the series in each state; the gauge shows the worst of them
// (one breaker per name in the usual case, several when names are shared or overflow).
const state: InstanceMetrics.Family = {
  name: "resilience_breaker_state",
  help:
    "breaker state: 0 Closed, 1 HalfOpen, 2 Open, 3 Isolated (the worst state when several breakers share the name)",
  type: "gauge",
  slots: STATES.length,
  collect: (values, offset, emit) => {
    let worst = 0
    for (let i = 0; i < STATES.length; i++) if (values[offset + i] > 0) worst = i
    emit({}, worst)
  }
}

export const kind = InstanceMetrics.defineKind("breaker", [requests, changes, state])

export const SUCCESS = kind.offsets[0]
export const FAILURE = kind.offsets[0] + 1
export const IGNORED = kind.offsets[0] + 2
export const REJECTED = kind.offsets[0] + 3
const CHANGES = kind.offsets[1]
const STATE = kind.offsets[2]

/** Records a change of state in `values`. */
export const changed = (values: Array<number>, from: State, to: State): void => {
  values[CHANGES + stateValue[from] * STATES.length + stateValue[to]]++
  values[STATE + stateValue[from]]--
  values[STATE + stateValue[to]]++
}

/** A breaker in `state` joins (+1) or leaves (−1) its series. */
export const member = (values: Array<number>, state: State, delta: 1 | -1): void => {
  values[STATE + stateValue[state]] += delta
}
