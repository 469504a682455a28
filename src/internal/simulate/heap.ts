/**
 * A binary min-heap of timed events, ordered by time and then by insertion, so events at the same
 * virtual time run in the order they were scheduled and a run is deterministic.
 */
export interface Timed {
  time: number
  seq: number
}

const before = (a: Timed, b: Timed): boolean => a.time < b.time || (a.time === b.time && a.seq < b.seq)

export class Heap<T extends Timed> {
  private readonly items: Array<T> = []
  private counter = 0

  get size(): number {
    return this.items.length
  }

  push(item: T): void {
    item.seq = this.counter++
    const items = this.items
    let i = items.length
    items.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(item, items[parent])) break
      items[i] = items[parent]
      i = parent
    }
    items[i] = item
  }

  pop(): T | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    let i = 0
    const n = items.length
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && before(items[right], items[left]) ? right : left
      if (!before(items[child], last)) break
      items[i] = items[child]
      i = child
    }
    items[i] = last
    return top
  }
}
