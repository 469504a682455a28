/**
 * When a simulated process is on the CPU. A process that gets a share `s` of a core runs in time
 * slices of `slice` ms within periods of `slice / s`. The share may change over time — a trace of
 * what a real process got, step by step — and the periods then restart at each step's start.
 */

/** On-CPU intervals over time: constant, or one share per step. */
export interface Host {
  /** the first time ≥ `t` the process is on the CPU */
  onAt(t: number): number
  /** when `cpuMs` of work that starts at `start` ends, preemptions included */
  finish(start: number, cpuMs: number): number
}

/** The index of the span of `length` that `t` falls in, robust to rounding on its boundary. */
const spanOf = (t: number, length: number): number => {
  const k = Math.floor(t / length)
  return (k + 1) * length <= t ? k + 1 : k
}

/**
 * The on-CPU interval `[start, end)` that holds `t`, or the first one after it, for a share
 * `shares[i]` in step `i` (steps of `stepMs`; past the last, the last share). Writes into `out`.
 */
const intervalAt = (
  t: number,
  slice: number,
  stepMs: number,
  shares: ReadonlyArray<number>,
  out: [number, number]
): void => {
  // past the trace, the last step goes on for ever
  for (let i = Math.min(spanOf(t, stepMs), shares.length - 1);; i++) {
    const base = i === 0 ? 0 : i * stepMs
    const stepEnd = i === shares.length - 1 ? Infinity : base + stepMs
    const share = shares[i]
    const from = t > base ? t : base
    if (share >= 1) {
      out[0] = from
      out[1] = stepEnd
      return
    }
    const period = slice / share
    for (let k = spanOf(from - base, period);; k++) {
      const start = base + k * period
      if (start >= stepEnd) break
      const end = Math.min(start + slice, stepEnd)
      if (end > from) {
        out[0] = start > from ? start : from
        out[1] = end
        return
      }
    }
  }
}

/** A host on which the process gets `share` of a core in slices of `slice` ms. */
export const constant = (share: number, slice: number): Host => {
  if (share >= 1) return { onAt: (t) => t, finish: (start, cpuMs) => start + cpuMs }
  return trace([share], Infinity, slice)
}

/** A host on which the process gets `shares[i]` of a core during step `i` (of `stepMs`). */
export const trace = (shares: ReadonlyArray<number>, stepMs: number, slice: number): Host => {
  const interval: [number, number] = [0, 0]
  return {
    onAt: (t) => {
      intervalAt(t, slice, stepMs, shares, interval)
      return interval[0]
    },
    finish: (start, cpuMs) => {
      let t = start
      let left = cpuMs
      for (;;) {
        intervalAt(t, slice, stepMs, shares, interval)
        const available = interval[1] - interval[0]
        if (left <= available) return interval[0] + left
        left -= available
        t = interval[1]
      }
    }
  }
}
