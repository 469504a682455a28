/**
 * CPU usage arithmetic and the parsing of the Linux files it is read from, as pure functions over
 * file contents. The live sampler in `CpuUsage.ts` reads the files; everything here is testable
 * on sample text.
 *
 * A reading is a pair of cumulative counters in nanoseconds: `busy` (CPU time the process or its
 * cgroup has used) and `capacity` (CPU time it was allowed to use: elapsed wall time times the
 * cores it may use). Usage between two readings is `Δbusy / Δcapacity`, in per-mille.
 */

/** Cumulative CPU counters, nanoseconds. */
export interface Reading {
  readonly busy: number
  readonly capacity: number
}

/** Weight of the previous value in the moving average of CPU usage (go-zero's β). */
export const cpuBeta = 0.95

/** `/proc/stat` counts in USER_HZ ticks, fixed at 100 per second by the Linux ABI. */
export const userHz = 100

/** Usage between two readings in per-mille of the allowed CPU, clamped to [0, 1000]. */
export const usageBetween = (previous: Reading, next: Reading): number => {
  const busy = next.busy - previous.busy
  const capacity = next.capacity - previous.capacity
  if (!(busy > 0) || !(capacity > 0)) return 0
  const usage = (busy * 1000) / capacity
  return usage >= 1000 ? 1000 : usage
}

/** One step of the moving average: `previous · 0.95 + current · 0.05`. */
export const smooth = (previous: number, current: number): number => previous * cpuBeta + current * (1 - cpuBeta)

// ---------------------------------------------------------------------------------------------
// /proc/self/cgroup and /proc/self/mountinfo
// ---------------------------------------------------------------------------------------------

/** One line of `/proc/self/cgroup`: `id:controllers:path`. */
export interface CgroupEntry {
  readonly id: string
  readonly controllers: ReadonlyArray<string>
  readonly path: string
}

export const parseProcCgroup = (text: string): ReadonlyArray<CgroupEntry> => {
  const entries: Array<CgroupEntry> = []
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue
    const first = line.indexOf(":")
    const second = line.indexOf(":", first + 1)
    if (first < 0 || second < 0) continue
    const controllers = line.slice(first + 1, second)
    entries.push({
      id: line.slice(0, first),
      controllers: controllers === "" ? [] : controllers.split(","),
      path: line.slice(second + 1)
    })
  }
  return entries
}

/** The fields of a `/proc/self/mountinfo` line this module needs. */
export interface Mount {
  readonly root: string
  readonly mountPoint: string
  readonly fsType: string
  readonly superOptions: ReadonlyArray<string>
}

const unescapeMount = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))

export const parseMountInfo = (text: string): ReadonlyArray<Mount> => {
  const mounts: Array<Mount> = []
  for (const line of text.split("\n")) {
    const fields = line.trim().split(" ")
    const separator = fields.indexOf("-")
    if (fields.length < 7 || separator < 6 || fields.length < separator + 4) continue
    mounts.push({
      root: unescapeMount(fields[3]),
      mountPoint: unescapeMount(fields[4]),
      fsType: fields[separator + 1],
      superOptions: fields[separator + 3].split(",")
    })
  }
  return mounts
}

const joinPath = (base: string, rest: string): string => {
  const trimmed = rest.replace(/^\/+/, "")
  if (trimmed === "") return base
  return base.endsWith("/") ? base + trimmed : `${base}/${trimmed}`
}

const relativeTo = (root: string, path: string): string =>
  root === "/" ? path : path === root ? "/" : path.startsWith(root + "/") ? path.slice(root.length) : path

/**
 * Candidate directories of the process's cgroup for a v1 `controller` (or, with `"unified"`, the
 * v2 hierarchy), most specific first. The mount point alone comes last: inside a container the
 * cgroup path seen in `/proc/self/cgroup` is often the host's, while the mount already shows the
 * container's own cgroup.
 */
export const cgroupDirs = (
  mounts: ReadonlyArray<Mount>,
  cgroups: ReadonlyArray<CgroupEntry>,
  controller: string
): ReadonlyArray<string> => {
  const unified = controller === "unified"
  const entry = cgroups.find((e) =>
    unified ? e.id === "0" && e.controllers.length === 0 : e.controllers.includes(controller)
  )
  const mount = mounts.find((m) =>
    unified ? m.fsType === "cgroup2" : m.fsType === "cgroup" && m.superOptions.includes(controller)
  )
  if (entry === undefined || mount === undefined) return []
  const specific = joinPath(mount.mountPoint, relativeTo(mount.root, entry.path))
  return specific === mount.mountPoint ? [specific] : [specific, mount.mountPoint]
}

// ---------------------------------------------------------------------------------------------
// cgroup files
// ---------------------------------------------------------------------------------------------

/** cgroup v2 `cpu.max`: `"max 100000"` (no quota) or `"150000 100000"`; the quota in cores, if any. */
export const parseCpuMax = (text: string): number | undefined => {
  const [quota, period] = text.trim().split(/\s+/)
  if (quota === undefined || quota === "max") return undefined
  const q = Number(quota)
  const p = Number(period ?? "100000")
  return Number.isFinite(q) && q > 0 && Number.isFinite(p) && p > 0 ? q / p : undefined
}

/** cgroup v2 `cpu.stat`: `usage_usec` in nanoseconds. */
export const parseCpuStatUsage = (text: string): number | undefined => {
  const match = /^usage_usec\s+(\d+)\s*$/m.exec(text)
  return match === null ? undefined : Number(match[1]) * 1000
}

/** cgroup v1 `cpuacct.usage`: nanoseconds. */
export const parseCpuacctUsage = (text: string): number | undefined => {
  const value = Number(text.trim())
  return text.trim() !== "" && Number.isFinite(value) && value >= 0 ? value : undefined
}

/** cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: the quota in cores, if any (−1 means none). */
export const parseCfsQuota = (quotaText: string, periodText: string): number | undefined => {
  const quota = Number(quotaText.trim())
  const period = Number(periodText.trim())
  return Number.isFinite(quota) && quota > 0 && Number.isFinite(period) && period > 0 ? quota / period : undefined
}

/** A cpuset list such as `"0-3,6,8-9"`: how many CPUs it names. */
export const parseCpuList = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  let count = 0
  for (const part of trimmed.split(",")) {
    const [from, to] = part.split("-")
    const a = Number(from)
    const b = to === undefined ? a : Number(to)
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b < a) return undefined
    count += b - a + 1
  }
  return count
}

/** `/proc/stat`: total host CPU time (nanoseconds, all CPUs) and the number of CPUs listed. */
export interface HostTimes {
  readonly total: number
  readonly cpus: number
}

export const parseProcStat = (text: string): HostTimes | undefined => {
  let total: number | undefined
  let cpus = 0
  for (const line of text.split("\n")) {
    if (line.startsWith("cpu ")) {
      // user nice system idle iowait irq softirq steal; guest and guest_nice are already in user and nice
      const fields = line.slice(4).trim().split(/\s+/).slice(0, 8).map(Number)
      if (fields.length < 4 || fields.some((n) => !Number.isFinite(n))) return undefined
      total = (fields.reduce((a, b) => a + b, 0) * 1e9) / userHz
    } else if (/^cpu\d+\s/.test(line)) {
      cpus++
    }
  }
  return total === undefined || cpus === 0 ? undefined : { total, cpus }
}

/**
 * The cores a cgroup may use: the smallest of the host's CPUs, its cpuset and its quota.
 */
export const allowedCores = (hostCpus: number, cpuset: number | undefined, quota: number | undefined): number => {
  let cores = hostCpus
  if (cpuset !== undefined && cpuset > 0 && cpuset < cores) cores = cpuset
  if (quota !== undefined && quota > 0 && quota < cores) cores = quota
  return cores
}

/**
 * A reading for a cgroup: its usage, and as capacity the host time per CPU (elapsed wall time,
 * as the kernel counts it) times the cores the cgroup may use.
 */
export const cgroupReading = (usage: number, host: HostTimes, cores: number): Reading => ({
  busy: usage,
  capacity: (host.total / host.cpus) * cores
})
