/**
 * Builds a breaker's engine in the current scope: the policy decoded, the breaker disposed with the
 * scope, and its recovery probe started. `CircuitBreaker.make` and `CircuitBreakerCluster.make`
 * add what they need on top (the shadow view, the cluster sync) before handing it out.
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type * as Scope from "effect/Scope"
import type { Policy } from "../../CircuitBreaker.js"
import type { InvalidOptionsError } from "../../Errors.js"
import * as InstanceMetrics from "../instanceMetrics.js"
import { Breaker } from "./engine.js"
import * as BreakerPolicy from "./policy.js"
import * as BreakerProbe from "./probe.js"

export const build = (policy: Policy): Effect.Effect<Breaker, InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    // The breaker reads time from the Clock in scope when it is built (a TestClock in tests): one
    // synchronous read per call, no service lookup on the hot path.
    const clock = yield* Effect.clock
    const metrics = yield* FiberRef.get(InstanceMetrics.currentRegistry)
    const { name, spec } = yield* BreakerPolicy.decode(policy)
    const breaker = yield* Breaker.make(name, spec, clock, metrics)
    yield* Effect.addFinalizer(() => breaker.dispose())
    if (spec.probe !== undefined) yield* BreakerProbe.start(breaker, spec.probe)
    return breaker
  })
