/**
 * A `Map` read from its oldest entry (insertion order), for bounded tables that evict oldest first:
 * the memory rate-limiter store, the Redis store's denied cache, the learned host limits.
 *
 * Why not `map.keys().next()`: a fresh iterator starts at the first slot of V8's hash table and
 * steps over every slot deleted since the table was last rebuilt, so under churn each such read
 * costs O(entries deleted) — tens of µs at 100,000 keys. The oldest entry is read instead through
 * one long-lived iterator that has passed only deleted or moved entries.
 *
 * A live iterator pins the table it last read, though. When V8 rebuilds a table (to grow, shrink
 * or drop deleted slots) the old one links to the new one and keeps its entries as they were; an
 * iterator moves to the new table only on its next `next()`. An iterator parked while the map grew
 * and then emptied keeps every table in between alive, and the entries in them: a store emptied by
 * eviction stayed at its full size. So the iterators are replaced when the map empties (free:
 * nothing is left to step over) and after changes amounting to half the map's size (a fresh
 * iterator then steps over at most the table's deleted slots, which those changes pay for). A
 * replaced iterator has read nothing, so its table is the map's table of the moment.
 */

export class OrderedMap<K, V> {
  /** Read it freely; change it only through the methods, which keep the iterators in step. */
  readonly map = new Map<K, V>()
  private front: MapIterator<[K, V]> = this.map.entries()
  /** the entry `front` gave last, while it stays in place */
  private head: [K, V] | undefined = undefined
  private cursor: MapIterator<[K, V]> = this.map.entries()
  /** whether `cursor` has read nothing yet (replacing it then loses no place) */
  private cursorUnread = true
  /** insertions and deletions since the iterators were last replaced */
  private changes = 0

  get size(): number {
    return this.map.size
  }

  /** Adds `key` at the back; a key already present keeps its place. */
  set(key: K, value: V): void {
    const head = this.head
    if (head !== undefined && head[0] === key) head[1] = value
    this.map.set(key, value)
    this.changed()
  }

  delete(key: K): boolean {
    const head = this.head
    if (head !== undefined && head[0] === key) this.head = undefined
    if (!this.map.delete(key)) return false
    if (this.map.size === 0) this.renew(true)
    else this.changed()
    return true
  }

  /** Puts `key` (present or not) at the back, as the newest entry. */
  moveToBack(key: K, value: V): void {
    this.delete(key)
    this.set(key, value)
  }

  /** The oldest entry, or `undefined` when the map is empty. */
  oldest(): [K, V] | undefined {
    if (this.head === undefined && this.map.size > 0) {
      let next = this.front.next()
      // not expected (every entry still in place is ahead of it): a fresh walk, at its cost
      if (next.done === true) next = (this.front = this.map.entries()).next()
      this.head = next.value
    }
    return this.head
  }

  /**
   * The next entry of a walk over the map that goes round and round, or `undefined` once the walk
   * has passed the last entry (the following call starts the next walk). Entries may be deleted
   * during a walk; entries added during it are seen by it.
   */
  walk(): [K, V] | undefined {
    this.cursorUnread = false
    const next = this.cursor.next()
    if (next.done !== true) return next.value
    this.cursor = this.map.entries()
    this.cursorUnread = true
    return undefined
  }

  private changed(): void {
    if (++this.changes > (this.map.size >>> 1) + 16) this.renew(false)
  }

  /** `all`: the walk's place may be dropped too (the map is empty, so it has no place). */
  private renew(all: boolean): void {
    this.changes = 0
    this.front = this.map.entries()
    this.head = undefined
    if (all || this.cursorUnread) {
      this.cursor = this.map.entries()
      this.cursorUnread = true
    }
  }
}
