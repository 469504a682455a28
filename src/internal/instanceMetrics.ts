/**
 * Metrics of named instances (breakers, bulkheads, …) whose series go away with the instance.
 *
 * Effect's global `Metric` registry keeps every series it ever saw, so a breaker per tenant or
 * per host leaks one series per name for the life of the process. Here an instance kind declares
 * its metric families once (`defineKind`); each instance `acquire`s the series for its name — a
 * plain array of numbers it writes with ordinary increments on the hot path — and `release`s it when
 * it is closed. The series is shared by every live instance of that kind and name (so their counts
 * add up and a counter never goes backwards while one of them lives) and dropped with the last one.
 *
 * Cardinality is bounded: once a kind holds `maxSeries` names, further names share one overflow
 * series, labelled `name="__overflow__"`, which is never dropped (its counters stay monotonic).
 * An exporter reads everything at scrape time with `collect`.
 */
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"

/** The `name` label of the series shared by the names beyond a kind's `maxSeries`. */
export const OVERFLOW = "__overflow__"

/**
 * A series' values: a plain array, not a typed array — a typed array's memory lives outside the JS
 * heap and costs far more to allocate, and names come and go at the rate instances do.
 */
export const zeros = (slots: number): Array<number> => {
  const values: Array<number> = []
  for (let i = 0; i < slots; i++) values.push(0)
  return values
}

/** Label values beyond `name`. */
export type Labels = Readonly<Record<string, string>>

/** One family of a kind: its exported name and type, and how many slots it takes in a series. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge"
  /** slots this family occupies in each series' values */
  readonly slots: number
  /** reports the family's samples for one series, read from `values[offset … offset + slots)` */
  readonly collect: (values: Array<number>, offset: number, emit: (labels: Labels, value: number) => void) => void
}

/** A family with one sample per slot, labelled by `labels[slot]`. */
export const slotted = (
  name: string,
  help: string,
  type: "counter" | "gauge",
  labels: ReadonlyArray<Labels>,
  options: {
    /** export a slot only once it is non-zero (a large, sparse label set such as state changes) */
    readonly sparse?: boolean
  } = {}
): Family => ({
  name,
  help,
  type,
  slots: labels.length,
  collect: (values, offset, emit) => {
    for (let i = 0; i < labels.length; i++) {
      const value = values[offset + i]
      if (options.sparse !== true || value !== 0) emit(labels[i], value)
    }
  }
})

/** The families of one kind of instance, with each family's offset into a series. */
export interface Kind {
  readonly id: string
  readonly families: ReadonlyArray<Family>
  readonly offsets: ReadonlyArray<number>
  readonly slots: number
}

export const defineKind = (id: string, families: ReadonlyArray<Family>): Kind => {
  const offsets: Array<number> = []
  let slots = 0
  for (const family of families) {
    offsets.push(slots)
    slots += family.slots
  }
  return { id, families, offsets, slots }
}

/** The series of one name of one kind. Writers index `values` with their kind's constants. */
export interface Series {
  readonly name: string
  readonly values: Array<number>
  /** live instances sharing it (the overflow series is never released) */
  refs: number
}

/** One sample, as `collect` reports it. */
export interface Sample {
  readonly labels: Labels
  readonly value: number
}

/** A family and its samples across every series of its kind. */
export interface Collected {
  readonly family: Family
  readonly samples: ReadonlyArray<Sample>
}

interface KindState {
  readonly kind: Kind
  readonly named: Map<string, Series>
  overflow: Series | undefined
}

/** A registry of instance series; one per process by default (see `currentRegistry`). */
export class Registry {
  private readonly kinds = new Map<string, KindState>()
  constructor(readonly maxSeries: number) {}

  private stateOf(kind: Kind): KindState {
    let state = this.kinds.get(kind.id)
    if (state === undefined) {
      state = { kind, named: new Map(), overflow: undefined }
      this.kinds.set(kind.id, state)
    }
    return state
  }

  /** The series for `name`, shared with the live instances of the same kind and name. */
  acquire(kind: Kind, name: string): Series {
    const state = this.stateOf(kind)
    const existing = state.named.get(name)
    if (existing !== undefined) {
      existing.refs++
      return existing
    }
    if (state.named.size >= this.maxSeries) {
      if (state.overflow === undefined) {
        state.overflow = { name: OVERFLOW, values: zeros(kind.slots), refs: 1 }
      }
      return state.overflow
    }
    const series: Series = { name, values: zeros(kind.slots), refs: 1 }
    state.named.set(name, series)
    return series
  }

  /** Gives `series` back; the last instance of a name drops its series. */
  release(kind: Kind, series: Series): void {
    if (series.name === OVERFLOW) return
    if (--series.refs > 0) return
    const state = this.kinds.get(kind.id)
    if (state !== undefined && state.named.get(series.name) === series) state.named.delete(series.name)
  }

  /** How many series a kind exports, the overflow series included. */
  size(kind: Kind): number {
    const state = this.kinds.get(kind.id)
    return state === undefined ? 0 : state.named.size + (state.overflow === undefined ? 0 : 1)
  }

  /** Every family of every kind with its samples, each labelled with its series' `name`. */
  collect(): ReadonlyArray<Collected> {
    const out: Array<Collected> = []
    for (const { kind, named, overflow } of this.kinds.values()) {
      const all = overflow === undefined ? named.values() : [...named.values(), overflow]
      const perFamily: Array<Array<Sample>> = kind.families.map(() => [])
      for (const series of all) {
        kind.families.forEach((family, f) =>
          family.collect(
            series.values,
            kind.offsets[f],
            (labels, value) => perFamily[f].push({ labels: { name: series.name, ...labels }, value })
          )
        )
      }
      kind.families.forEach((family, f) => out.push({ family, samples: perFamily[f] }))
    }
    return out
  }
}

/** Series per kind before further names share the overflow series. */
export const DEFAULT_MAX_SERIES = 1000

/**
 * The registry instances register with when they are built: a process-wide one by default, like
 * Effect's own metric registry; `Metrics.withInstanceRegistry` / `layerInstanceRegistry` replace it.
 */
export const currentRegistry: FiberRef.FiberRef<Registry> = globalValue(
  Symbol.for("effect-resilience/InstanceMetrics/currentRegistry"),
  () => FiberRef.unsafeMake(new Registry(DEFAULT_MAX_SERIES))
)
