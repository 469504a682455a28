/**
 * golang.org/x/time/rate's reservation scenarios (its TestSimpleReserve, TestMix, TestCancel…,
 * TestReserveMax, TestReserveJumpBack… and TestLimiterJumpBackwards), as data: a limiter of 10
 * tokens per second, times in steps of d = 100 ms. Each store runs them through its own step (the
 * memory table, the Redis script) with explicit times; token bucket and GCRA (limit 10 per second
 * with the same burst) must give the same answers, except where the clock steps back: GCRA keeps
 * no time of last update, so those scenarios are the token bucket's alone.
 */
import * as Effect from "effect/Effect"
import * as RateLimiter from "../src/RateLimiter.js"

/** `reserve`: may wait without bound; `allow`: may not wait; `cancel`: gives back reservation `ref`. */
export type Step =
  | {
    readonly op: "reserve"
    readonly t: number
    readonly n: number
    readonly act?: number
    readonly ref?: string
    readonly max?: number
  }
  | { readonly op: "allow"; readonly t: number; readonly n: number; readonly ok: boolean }
  | { readonly op: "cancel"; readonly t: number; readonly ref: string }

export interface Scenario {
  readonly name: string
  readonly burst: number
  /** the clock steps back: the token bucket's semantics only */
  readonly jumpsBack?: boolean
  readonly steps: ReadonlyArray<Step>
}

const r = (t: number, n: number, act?: number, ref?: string, max?: number): Step => ({
  op: "reserve",
  t,
  n,
  ...(act === undefined ? {} : { act }),
  ...(ref === undefined ? {} : { ref }),
  ...(max === undefined ? {} : { max })
})
const a = (t: number, n: number, ok: boolean): Step => ({ op: "allow", t, n, ok })
const c = (t: number, ref: string): Step => ({ op: "cancel", t, ref })

export const scenarios: ReadonlyArray<Scenario> = [
  { name: "SimpleReserve", burst: 2, steps: [r(0, 2, 0), r(0, 2, 2), r(3, 2, 4)] },
  { name: "Mix", burst: 2, steps: [r(0, 3), r(0, 2, 0), a(1, 2, false), r(1, 2, 2), a(1, 1, false), a(3, 1, true)] },
  // a refused reservation gives nothing to cancel: the next one waits for the tokens already taken
  { name: "CancelInvalid", burst: 2, steps: [r(0, 2, 0), r(0, 3), r(0, 2, 2)] },
  { name: "CancelLast", burst: 2, steps: [r(0, 2, 0), r(0, 2, 2, "r"), c(1, "r"), r(1, 2, 2)] },
  { name: "CancelTooLate", burst: 2, steps: [r(0, 2, 0), r(0, 2, 2, "r"), c(3, "r"), r(3, 2, 4)] },
  // the later reservation counts on the cancelled one's token: nothing comes back
  { name: "Cancel0Tokens", burst: 2, steps: [r(0, 2, 0), r(0, 1, 1, "r"), r(0, 1, 2), c(0, "r"), r(0, 1, 3)] },
  { name: "Cancel1Token", burst: 2, steps: [r(0, 2, 0), r(0, 2, 2, "r"), r(0, 1, 3), c(2, "r"), r(2, 2, 4)] },
  {
    name: "CancelMulti",
    burst: 4,
    steps: [r(0, 4, 0), r(0, 3, 3, "A"), r(0, 1, 4), r(0, 1, 5, "C"), c(1, "C"), c(1, "A"), r(1, 3, 5)]
  },
  {
    name: "ReserveMax",
    burst: 2,
    steps: [r(0, 2, 0, undefined, 1), r(0, 1, 1, undefined, 1), r(0, 1, undefined, undefined, 1)]
  },
  { name: "ReserveJumpBack", burst: 2, jumpsBack: true, steps: [r(1, 2, 1), r(0, 1, 1), r(2, 2, 3)] },
  {
    name: "ReserveJumpBackCancel",
    burst: 2,
    jumpsBack: true,
    steps: [r(1, 2, 1), r(1, 2, 3, "r"), r(1, 1, 4), c(0, "r"), r(1, 2, 4)]
  },
  {
    name: "LimiterJumpBackwards",
    burst: 3,
    jumpsBack: true,
    steps: [
      a(1, 1, true),
      a(0, 1, true),
      a(0, 1, true),
      a(0, 1, false),
      a(0, 1, false),
      a(1, 1, true),
      a(1, 1, false),
      a(1, 1, false),
      a(2, 1, true),
      a(2, 1, false),
      a(2, 1, false)
    ]
  }
]

export const D = 100_000 // µs

export const algorithmsFor = (scenario: Scenario): ReadonlyArray<readonly [string, RateLimiter.Algorithm]> => [
  ["token bucket", RateLimiter.tokenBucket({ rate: 10, burst: scenario.burst })],
  ...(scenario.jumpsBack === true ? [] : [
    ["gcra", RateLimiter.gcra({ limit: 10, period: "1 second", burst: scenario.burst })] as const
  ])
]

/** What a store offers the runner: one step and one cancel at explicit times (µs). */
export interface Driver {
  readonly step: (
    t: number,
    n: number,
    maxDelay: number
  ) => Promise<{ allowed: boolean; timeToAct?: number | undefined }>
  readonly cancel: (t: number, n: number, timeToAct: number) => Promise<void>
}

/** Runs a scenario; returns a list of mismatches (empty when the store behaves as x/time/rate). */
export const play = async (scenario: Scenario, driver: Driver, base: number): Promise<ReadonlyArray<string>> => {
  const refs = new Map<string, { n: number; timeToAct: number }>()
  const wrong: Array<string> = []
  for (const [i, s] of scenario.steps.entries()) {
    const t = base + s.t * D
    if (s.op === "cancel") {
      const held = refs.get(s.ref)!
      await driver.cancel(t, held.n, held.timeToAct)
      continue
    }
    if (s.op === "allow") {
      const d = await driver.step(t, s.n, 0)
      if (d.allowed !== s.ok) wrong.push(`step ${i}: allow(t${s.t}, ${s.n}) = ${d.allowed}, want ${s.ok}`)
      continue
    }
    const d = await driver.step(t, s.n, s.max === undefined ? Infinity : s.max * D)
    const want = s.act === undefined ? "refused" : `t${s.act}`
    const got = d.allowed ? `t${(d.timeToAct! - base) / D}` : "refused"
    if (got !== want) wrong.push(`step ${i}: reserve(t${s.t}, ${s.n}) acts at ${got}, want ${want}`)
    if (d.allowed && s.ref !== undefined) refs.set(s.ref, { n: s.n, timeToAct: d.timeToAct! })
  }
  return wrong
}

export const definitionOf = (algorithm: RateLimiter.Algorithm) => Effect.runSync(RateLimiter.definition(algorithm))
