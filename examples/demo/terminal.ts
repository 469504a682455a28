/**
 * Live progress in the terminal. On a TTY it redraws a small block in place (a progress bar for the
 * phase, live counts, the latest latency percentiles and breaker states); otherwise it prints one
 * plain line per second, with no escape codes.
 */
import type { BreakerState, Outcome, PhaseWindow } from "./model.js"
import type { Counts } from "./stats.js"

export interface LiveSnapshot {
  readonly phase: PhaseWindow
  readonly index: number
  readonly phaseCount: number
  /** Milliseconds since the start of the run. */
  readonly now: number
  /** requests of the phase sent so far (the summary's "sent"); `counts` holds those answered */
  readonly sent: number
  readonly counts: Counts
  readonly inFlight: number
  /** Percentiles over the last second, ms. */
  readonly p50: number | null
  readonly p99: number | null
  readonly breakers: ReadonlyArray<{ readonly name: string; readonly state: BreakerState }>
}

export interface View {
  readonly update: (s: LiveSnapshot) => void
  /** Ends the current phase's block (prints its final state). */
  readonly endPhase: (s: LiveSnapshot) => void
  readonly log: (line: string) => void
}

const colors = {
  reset: "\x1b[0m",
  bold: "\x1b[1m",
  dim: "\x1b[2m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  red: "\x1b[31m",
  magenta: "\x1b[35m",
  blue: "\x1b[34m",
  cyan: "\x1b[36m"
}

const stateColor = (s: BreakerState) => s === "Closed" ? colors.green : s === "HalfOpen" ? colors.yellow : colors.red

const label: Record<Outcome, string> = {
  ok: "ok",
  rateLimited: "429",
  shed: "shed",
  breakerOpen: "brk-open",
  timeout: "timeout",
  failed: "failed",
  clientError: "4xx",
  skipped: "skipped"
}

const outcomeColor: Record<Outcome, string> = {
  ok: colors.green,
  rateLimited: colors.yellow,
  shed: colors.magenta,
  breakerOpen: colors.magenta,
  timeout: colors.blue,
  failed: colors.red,
  clientError: colors.red,
  skipped: colors.dim
}

const ms = (n: number | null) => (n === null ? "-" : `${n.toFixed(1)}ms`)

const progress = (s: LiveSnapshot) => Math.min(1, Math.max(0, (s.now - s.phase.startMs) / s.phase.durationMs))

export const make = (out: NodeJS.WriteStream | { write: (s: string) => boolean; isTTY?: boolean }): View => {
  const tty = out.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb"
  let drawn = 0
  let lastPlainSecond = -1

  const c = (code: string, text: string) => (tty ? code + text + colors.reset : text)

  const lines = (s: LiveSnapshot): Array<string> => {
    const width = 30
    const p = progress(s)
    const filled = Math.round(p * width)
    const bar = c(colors.cyan, "█".repeat(filled)) + c(colors.dim, "░".repeat(width - filled))
    const elapsed = ((s.now - s.phase.startMs) / 1000).toFixed(1)
    const head = `${c(colors.bold, `[${s.index + 1}/${s.phaseCount}] ${s.phase.title.padEnd(18)}`)} ${bar} ${
      elapsed.padStart(5)
    }s / ${(s.phase.durationMs / 1000).toFixed(1)}s  ${s.phase.rps} req/s offered`
    const counts = (Object.keys(label) as Array<Outcome>)
      .filter((o) => o === "ok" || s.counts[o] > 0)
      .map((o) => `${label[o]} ${c(outcomeColor[o], String(s.counts[o]))}`)
      .join("  ")
    const lat = `sent ${s.sent}  in flight ${s.inFlight}  p50 ${ms(s.p50)}  p99 ${ms(s.p99)} (last second)`
    const brk = s.breakers.map((b) => `${b.name}: ${c(stateColor(b.state), b.state)}`).join("  ")
    return [head, `    ${counts}`, `    ${lat}`, `    ${brk === "" ? "breakers: -" : brk}`]
  }

  const redraw = (s: LiveSnapshot) => {
    const ls = lines(s)
    let text = drawn > 0 ? `\x1b[${drawn}A` : ""
    for (const l of ls) text += `\x1b[2K${l}\n`
    out.write(text)
    drawn = ls.length
  }

  const plain = (s: LiveSnapshot) => {
    const parts = (Object.keys(label) as Array<Outcome>).filter((o) => s.counts[o] > 0).map((o) =>
      `${label[o]}=${s.counts[o]}`
    )
    const brk = s.breakers.map((b) => `${b.name}=${b.state}`).join(" ")
    return `[${s.phase.name} ${Math.round(progress(s) * 100)}%] sent=${s.sent} ${
      parts.join(" ")
    } in-flight=${s.inFlight} p50=${ms(s.p50)} p99=${ms(s.p99)} ${brk}`
  }

  return {
    update: (s) => {
      if (tty) {
        redraw(s)
      } else {
        const second = Math.floor(s.now / 1000)
        if (second !== lastPlainSecond) {
          lastPlainSecond = second
          out.write(plain(s) + "\n")
        }
      }
    },
    endPhase: (s) => {
      if (tty) {
        redraw(s)
        drawn = 0
      } else {
        out.write(plain(s) + " (phase done)\n")
      }
    },
    log: (line) => {
      if (tty && drawn > 0) {
        out.write(`\x1b[${drawn}A\x1b[J${line}\n`)
        drawn = 0
      } else {
        out.write(line + "\n")
      }
    }
  }
}
