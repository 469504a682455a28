/**
 * One host timer for every timed run on the live clock: a min-heap of due times under a single
 * `setTimeout`, armed for the earliest. A run that ends first is only marked (lazy deletion), so
 * arming and removing a timeout costs a heap push and a counter, not a host timer each.
 *
 * When no run is waiting, the host timer is `unref`'d at the end of that turn of the event loop
 * rather than cleared (a process with nothing else to do exits as before), and it is `ref`'d again
 * by the next run: a caller timing one call after another touches the host timer only when it
 * fires. Where timers have no `unref` (not Node), it is cleared instead. Due times come from `performance.now()`, which never goes back.
 */

/** What the heap times: `fire` is called once at `due` unless `cancel` came first. */
export interface Entry {
  /** `performance.now()` millis at which to fire (set by `schedule`) */
  due: number
  /** in the heap and neither fired nor cancelled */
  queued: boolean
  fire(): void
}

/** The longest delay a host timer takes; longer ones never fire (as with Effect's live clock). */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

interface HostTimer {
  ref?: () => unknown
  unref?: () => unknown
}

let heap: Array<Entry> = []
/** entries queued (the heap also holds cancelled ones until they surface or are swept) */
let live = 0
let timer: HostTimer | undefined = undefined
/** when the host timer fires (`Infinity`: no host timer) */
let timerDue = Infinity
let referenced = false

/** Fires `entry` in `millis` (from now), unless `cancel(entry)` is called first. */
export const schedule = (entry: Entry, millis: number): void => {
  if (millis > MAX_TIMER_MILLIS) return
  entry.due = performance.now() + millis
  entry.queued = true
  push(entry)
  live++
  if (entry.due < timerDue) arm(entry.due)
  else if (!referenced) ref()
}

/** Takes `entry` off (it will not fire); nothing when it is not queued. */
export const cancel = (entry: Entry): void => {
  if (!entry.queued) return
  entry.queued = false
  live--
  if (live === 0) idle()
  else if (heap.length > 64 + 2 * live) sweep()
}

/** Entries queued now (for tests). */
export const size = (): number => live

const arm = (due: number): void => {
  if (timer !== undefined) clearTimeout(timer as ReturnType<typeof setTimeout>)
  timer = setTimeout(fire, Math.max(0, Math.ceil(due - performance.now()))) as HostTimer
  timerDue = due
  referenced = true
}

const ref = (): void => {
  if (timer?.ref !== undefined) timer.ref()
  referenced = true
}

/** Nothing waits: the heap holds only cancelled entries. */
const idle = (): void => {
  heap.length = 0
  // the host timer is let go at the end of this turn of the event loop, not at once: a caller
  // timing one call after another would otherwise toggle it on every call
  if (!checkPending && typeof setImmediate === "function") {
    checkPending = true
    setImmediate(releaseIfIdle)
  } else if (typeof setImmediate !== "function") {
    release()
  }
}

let checkPending = false

const releaseIfIdle = (): void => {
  checkPending = false
  if (live === 0) release()
}

/** The host timer no longer keeps the process alive (it is cleared where it cannot be unref'd). */
const release = (): void => {
  if (timer?.unref !== undefined) {
    timer.unref()
    referenced = false
  } else if (timer !== undefined) {
    clearTimeout(timer as ReturnType<typeof setTimeout>)
    timer = undefined
    timerDue = Infinity
  }
}

const fire = (): void => {
  timer = undefined
  timerDue = Infinity
  // a host timer may fire up to a millisecond before its due time
  const now = performance.now() + 1
  while (heap.length > 0 && (heap[0].due <= now || !heap[0].queued)) {
    const entry = pop()
    if (!entry.queued) continue
    entry.queued = false
    live--
    entry.fire()
  }
  if (live > 0) arm(heap[0].due)
  else heap.length = 0
}

/** Drops cancelled entries and rebuilds the heap (amortized: at most once per `live` cancels). */
const sweep = (): void => {
  heap = heap.filter((entry) => entry.queued)
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i)
}

const push = (entry: Entry): void => {
  let i = heap.push(entry) - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (heap[parent].due <= entry.due) break
    heap[i] = heap[parent]
    i = parent
  }
  heap[i] = entry
}

const pop = (): Entry => {
  const top = heap[0]
  const last = heap.pop()!
  if (heap.length > 0) {
    heap[0] = last
    down(0)
  }
  return top
}

const down = (start: number): void => {
  const entry = heap[start]
  const n = heap.length
  let i = start
  for (;;) {
    const left = 2 * i + 1
    if (left >= n) break
    const right = left + 1
    const child = right < n && heap[right].due < heap[left].due ? right : left
    if (heap[child].due >= entry.due) break
    heap[i] = heap[child]
    i = child
  }
  heap[i] = entry
}
