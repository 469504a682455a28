/**
 * The simulator against the demo run for real. The demo's three processes (load driver — this
 * process —, user API, flaky downstream) run its four phases over HTTP on 127.0.0.1, shortened;
 * the simulator then runs the same phases, users and policies with the machine the run measured
 * (the API's CPU share every 100 ms, its CPU per exchange and per rejection, the warm-up).
 *
 * Asserted within TOLERANCE: in the normal, outage and overload phases, the share of ok answers
 * and the share of requests a protection rejected (shed and breaker-open together). Reported
 * beside them, not asserted: how the rejections split between the shedder and the breakers, the
 * recovery phase, and rate-limited answers — on a starved machine the real route breaker stays
 * open longer than the simulated one (docs/simulator.md, "Against the demo run for real").
 * The table is printed whether the test passes or not.
 */
import { Effect } from "effect"
import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Compare from "../../examples/demo/compare.js"

/** The phases at 0.3 of their length: 2.4–3 s each, the rates unchanged. */
const SCALE = 0.3

/**
 * Absolute difference allowed between a real and a simulated share (0–1). One real run is one
 * sample: the breakers drop at random, a phase has 240–1,080 requests, and the seed alone moves a
 * simulated share by up to 0.05. On the busy shared machine the asserted shares were off by up to
 * 0.21 (the normal phase's first half-second, while the API is still cold).
 */
const TOLERANCE = 0.25

const asserted: ReadonlyArray<{ readonly phase: string; readonly outcome: Compare.Compared }> = [
  "normal",
  "outage",
  "overload"
].flatMap((phase) => [{ phase, outcome: "ok" as const }, { phase, outcome: "rejected" as const }])

/**
 * Below this share of a core the API answers hardly anything in time: the run is the load
 * driver's own 5 s aborts and requests still in the kernel's socket queues, which the simulator
 * does not model, and nothing is compared.
 */
const MIN_SHARE = 0.1

// the API's CPU share comes from Linux's scheduler statistics
const linux = existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`)

describe("the simulator against the demo run for real", () => {
  it.skipIf(!linux)(
    `normal, outage and overload: ok and rejected shares agree within ${TOLERANCE}`,
    async (context) => {
      const comparison = await Effect.runPromise(Compare.compare(SCALE))
      // what the run measured, to simulate it again: npx tsx examples/demo/compare.ts --load <file>
      const saved = Path.join(mkdtempSync(Path.join(tmpdir(), "demo-simulated-")), "measured.json")
      writeFileSync(saved, JSON.stringify(comparison.measured))
      const table = `${Compare.format(comparison)}\nmeasured: ${saved}`
      console.log(table)
      const share = Compare.meanShare(comparison.service)
      if (share < MIN_SHARE) {
        console.log(`the API got ${share.toFixed(2)} of a core (under ${MIN_SHARE}): not compared`)
        return context.skip()
      }
      const off = comparison.rows.filter((r) =>
        asserted.some((a) => a.phase === r.phase && a.outcome === r.outcome) &&
        !(Math.abs(r.simulated - r.real) <= TOLERANCE)
      )
      expect(off, table).toEqual([])
    },
    120_000
  )
})
