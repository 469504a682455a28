/**
 * Picking where CPU usage is read from: cgroup v1 (`cpuacct`), cgroup v2 (`cpu.stat`), or the
 * process's own `process.cpuUsage()`. The file system and the process counters are passed in,
 * so the choice is testable on sample files.
 */
import * as Cpu from "./cpu.js"

/** Where readings come from. */
export type Source = "cgroup1" | "cgroup2" | "process" | "event-loop"

/** What the sampler needs from the outside world. */
export interface Host {
  /** the file's text, or `undefined` when it cannot be read */
  readonly readFile: (path: string) => string | undefined
  /** `process.cpuUsage()` in microseconds */
  readonly processCpu: () => { readonly user: number; readonly system: number }
  /** a monotonic clock in nanoseconds */
  readonly monotonicNanos: () => number
  /** CPUs available to the process (`os.availableParallelism()`) */
  readonly availableCpus: number
  /** `performance.eventLoopUtilization()`: cumulative idle and active milliseconds */
  readonly eventLoop: () => { readonly idle: number; readonly active: number }
}

export interface Sampler {
  readonly source: Source
  /** cores the readings are relative to (1000 per-mille = all of them busy) */
  readonly cores: number
  /** the files read, for the log line */
  readonly files: ReadonlyArray<string>
  /** a cumulative reading, `undefined` if a file could not be read this time */
  readonly read: () => Cpu.Reading | undefined
}

const firstReadable = (host: Host, dirs: ReadonlyArray<string>, file: string): string | undefined => {
  for (const dir of dirs) {
    const path = `${dir}/${file}`
    if (host.readFile(path) !== undefined) return path
  }
  return undefined
}

const readWith = <A>(host: Host, path: string | undefined, parse: (text: string) => A | undefined): A | undefined => {
  if (path === undefined) return undefined
  const text = host.readFile(path)
  return text === undefined ? undefined : parse(text)
}

const hostTimes = (host: Host) => readWith(host, "/proc/stat", Cpu.parseProcStat)

const cgroupSampler = (
  host: Host,
  source: "cgroup1" | "cgroup2",
  usagePath: string,
  parseUsage: (text: string) => number | undefined,
  quota: number | undefined,
  cpuset: number | undefined
): Sampler | undefined => {
  const first = hostTimes(host)
  if (first === undefined || readWith(host, usagePath, parseUsage) === undefined) return undefined
  const cores = Cpu.allowedCores(first.cpus, cpuset, quota)
  return {
    source,
    cores,
    files: [usagePath, "/proc/stat"],
    read: () => {
      const usage = readWith(host, usagePath, parseUsage)
      const times = hostTimes(host)
      return usage === undefined || times === undefined ? undefined : Cpu.cgroupReading(usage, times, cores)
    }
  }
}

const cgroup1 = (host: Host, mounts: ReadonlyArray<Cpu.Mount>, cgroups: ReadonlyArray<Cpu.CgroupEntry>) => {
  const usagePath = firstReadable(host, Cpu.cgroupDirs(mounts, cgroups, "cpuacct"), "cpuacct.usage")
  if (usagePath === undefined) return undefined
  const cpuDirs = Cpu.cgroupDirs(mounts, cgroups, "cpu")
  const quotaPath = firstReadable(host, cpuDirs, "cpu.cfs_quota_us")
  const periodPath = firstReadable(host, cpuDirs, "cpu.cfs_period_us")
  const quota = quotaPath !== undefined && periodPath !== undefined
    ? Cpu.parseCfsQuota(host.readFile(quotaPath) ?? "", host.readFile(periodPath) ?? "")
    : undefined
  const cpusetDirs = Cpu.cgroupDirs(mounts, cgroups, "cpuset")
  const cpuset = readWith(host, firstReadable(host, cpusetDirs, "cpuset.effective_cpus"), Cpu.parseCpuList) ??
    readWith(host, firstReadable(host, cpusetDirs, "cpuset.cpus"), Cpu.parseCpuList)
  return cgroupSampler(host, "cgroup1", usagePath, Cpu.parseCpuacctUsage, quota, cpuset)
}

const cgroup2 = (host: Host, mounts: ReadonlyArray<Cpu.Mount>, cgroups: ReadonlyArray<Cpu.CgroupEntry>) => {
  const dirs = Cpu.cgroupDirs(mounts, cgroups, "unified")
  const usagePath = firstReadable(host, dirs, "cpu.stat")
  if (usagePath === undefined) return undefined
  const dir = usagePath.slice(0, -"/cpu.stat".length)
  const quota = readWith(host, `${dir}/cpu.max`, Cpu.parseCpuMax)
  const cpuset = readWith(host, `${dir}/cpuset.cpus.effective`, Cpu.parseCpuList)
  return cgroupSampler(host, "cgroup2", usagePath, Cpu.parseCpuStatUsage, quota, cpuset)
}

/** Readings of this process alone: `process.cpuUsage()` against wall time times `cores`. */
export const processSampler = (host: Host, cores: number): Sampler => ({
  source: "process",
  cores,
  files: [],
  read: () => {
    const { system, user } = host.processCpu()
    return { busy: (user + system) * 1000, capacity: host.monotonicNanos() * cores }
  }
})

/**
 * Readings of the main thread's event loop: active time against active plus idle time. A busy
 * event loop reads 1000 even when the host's scheduler gives the process less than a core.
 */
export const eventLoopSampler = (host: Host): Sampler => ({
  source: "event-loop",
  cores: 1,
  files: [],
  read: () => {
    const { active, idle } = host.eventLoop()
    return { busy: active * 1e6, capacity: (active + idle) * 1e6 }
  }
})

/**
 * The sampler for `preference`: `"auto"` tries cgroup v1 (the CPU controllers of a hybrid
 * hierarchy live there), then cgroup v2, then the process; `"cgroup"` the same without the last
 * step (`undefined` when neither cgroup can be read); `"process"` the process only.
 */
export const detect = (
  host: Host,
  preference: "auto" | "cgroup" | "process" | "event-loop",
  processCores?: number
): Sampler | undefined => {
  if (preference === "event-loop") return eventLoopSampler(host)
  if (preference !== "process") {
    const mounts = Cpu.parseMountInfo(host.readFile("/proc/self/mountinfo") ?? "")
    const cgroups = Cpu.parseProcCgroup(host.readFile("/proc/self/cgroup") ?? "")
    const found = cgroup1(host, mounts, cgroups) ?? cgroup2(host, mounts, cgroups)
    if (found !== undefined || preference === "cgroup") return found
  }
  return processSampler(host, processCores ?? host.availableCpus)
}
