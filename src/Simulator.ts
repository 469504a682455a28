/**
 * The policy simulator: runs a policy stack — the keys of `Config` — against a modelled
 * downstream (latency distribution, error rate, outages, capacity) and a traffic profile in phases,
 * on a virtual clock. The stack is the library's own breaker, rate-limit and shedder cores, stepped
 * by a discrete-event loop instead of timers, so an hour of 1,000 requests per second takes
 * seconds, and the same seed gives the same report. The service is modelled as one event loop
 * whose work per request is given, so the shedder reads the overload signal it would read in a
 * real process: event-loop utilization (the default), event-loop delay, queue delay or the CPU.
 *
 * From a shell: `npx effect-resilience simulate scenario.json --out report.html`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "effect-resilience"
 *
 * const report = Simulator.run({
 *   name: "outage",
 *   stack: { Timeout: 1000, Breaker: { K: 1.5 } },
 *   downstream: { latency: { distribution: "lognormal", medianMs: 20, p99Ms: 80 } },
 *   phases: [
 *     { name: "normal", durationSeconds: 60, rps: 200 },
 *     { name: "outage", durationSeconds: 60, rps: 200, downstream: { down: true } }
 *   ]
 * }) // Effect<Simulator.Report, InvalidOptionsError>
 * ```
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import type { InvalidOptionsError } from "./Errors.js"
import * as Engine from "./internal/simulate/engine.js"
import * as Html from "./internal/simulate/html.js"
import * as Report_ from "./internal/simulate/report.js"
import * as Scenario_ from "./internal/simulate/scenario.js"
import * as Stack from "./internal/simulate/stack.js"

/**
 * A scenario as written in a file: `name`, `seed`, `stack` (the keys of `Config`), `shedder`,
 * `shadow`, `service`, `downstream`, `traffic` and `phases`; see docs/simulator.md.
 *
 * @since 0.2.0
 * @category models
 */
export type ScenarioInput = Scenario_.ScenarioInput

/**
 * A decoded scenario, defaults filled in.
 *
 * @since 0.2.0
 * @category models
 */
export type Scenario = Scenario_.Scenario

/**
 * What a run reports: per-phase summaries, per-second series, breaker transitions.
 *
 * @since 0.2.0
 * @category models
 */
export type Report = Report_.Report

/**
 * The summary of one phase.
 *
 * @since 0.2.0
 * @category models
 */
export type PhaseSummary = Report_.PhaseSummary

/**
 * Decodes a parsed scenario file; a bad field fails with `InvalidOptionsError` naming its path.
 *
 * @since 0.2.0
 * @category decoding
 */
export const decode: (input: unknown) => Effect.Effect<Scenario, InvalidOptionsError> = Scenario_.decode

/**
 * Runs a scenario and reports. Deterministic: the same scenario and seed give the same report.
 *
 * @since 0.2.0
 * @category running
 */
export const run = (input: unknown): Effect.Effect<Report, InvalidOptionsError> =>
  Effect.gen(function*() {
    const scenario = yield* decode(input)
    const stack = yield* Stack.build(scenario, 0)
    const downstreams = scenario.phases.map((p): Scenario_.Downstream => {
      const patch = Object.fromEntries(Object.entries(p.downstream ?? {}).filter(([, v]) => v !== undefined))
      return { ...scenario.downstream, ...patch }
    })
    const recording = Engine.run(scenario, stack, downstreams)
    return Report_.make(scenario, Stack.describe(stack), stack.signal, recording)
  })

/**
 * A scenario with `override`'s fields in place of `base`'s (a shallow merge): a compare file can
 * hold only a `name` and a `stack`.
 *
 * @since 0.2.0
 * @category combinators
 */
export const merge = (base: unknown, override: unknown): unknown =>
  typeof base === "object" && base !== null && typeof override === "object" && override !== null
    ? { ...base, ...override }
    : override

/**
 * The HTML report of one run, or of several side by side (compare mode): self-contained, charts
 * drawn as inline SVG.
 *
 * @since 0.2.0
 * @category rendering
 */
export const renderHtml: (reports: ReadonlyArray<Report>) => string = Html.render
