/**
 * A seeded pseudo-random source for the simulator (sfc32, seeded through splitmix32): the same
 * seed gives the same stream on every platform, and a draw is a few integer operations — the
 * simulator draws several numbers per request, millions of times.
 */

export interface Rng {
  /** uniform in [0, 1) */
  next(): number
}

const splitmix32 = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x9e3779b9) | 0
    let z = a
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
    return (z ^ (z >>> 15)) >>> 0
  }
}

class Sfc32 implements Rng {
  private a: number
  private b: number
  private c: number
  private d = 1
  constructor(seed: number) {
    const init = splitmix32(seed)
    this.a = init()
    this.b = init()
    this.c = init()
    for (let i = 0; i < 12; i++) this.next()
  }
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return (t >>> 0) / 4294967296
  }
}

/** A stream for `seed`; `stream` separates independent streams of one seed (arrivals, latency, …). */
export const make = (seed: number, stream = 0): Rng => new Sfc32((seed * 0x9e3779b1 + stream * 0x85ebca6b) | 0)

/** A standard normal draw (Box–Muller; one of the pair is discarded to keep the stream simple). */
export const normal = (rng: Rng): number => {
  const u = 1 - rng.next()
  const v = rng.next()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}

/** Standard normal draws, both of each Box–Muller pair used. */
export const normals = (rng: Rng): () => number => {
  let spare = NaN
  return () => {
    if (!Number.isNaN(spare)) {
      const value = spare
      spare = NaN
      return value
    }
    const radius = Math.sqrt(-2 * Math.log(1 - rng.next()))
    const angle = 2 * Math.PI * rng.next()
    spare = radius * Math.sin(angle)
    return radius * Math.cos(angle)
  }
}

/** An exponential draw with mean `mean`. */
export const exponential = (rng: Rng, mean: number): number => -Math.log(1 - rng.next()) * mean
