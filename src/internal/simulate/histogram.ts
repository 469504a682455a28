/**
 * Latency histograms with bounded relative error: 1 ms bins below 64 ms, then 16 bins per
 * doubling (about 4 % wide). Percentiles are read back as the bin's midpoint.
 */
const LINEAR = 64
const PER_DOUBLING = 16
export const BINS = LINEAR + PER_DOUBLING * 24

export const binOf = (ms: number): number => {
  if (ms < LINEAR) return ms < 0 ? 0 : Math.floor(ms)
  const bin = LINEAR + Math.floor(Math.log2(ms / LINEAR) * PER_DOUBLING)
  return bin < BINS ? bin : BINS - 1
}

const valueOf = (bin: number): number =>
  bin < LINEAR ? bin + 0.5 : LINEAR * Math.pow(2, (bin - LINEAR + 0.5) / PER_DOUBLING)

/** The `q` quantile (0–1) of the counts in `bins[offset … offset + BINS)`, NaN when empty. */
export const quantile = (bins: ArrayLike<number>, offset: number, q: number): number => {
  let total = 0
  for (let i = 0; i < BINS; i++) total += bins[offset + i]
  if (total === 0) return NaN
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (let i = 0; i < BINS; i++) {
    seen += bins[offset + i]
    if (seen >= rank) return Math.round(valueOf(i) * 10) / 10
  }
  return NaN
}
