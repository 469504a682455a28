import { describe, expect, it } from "@effect/vitest"
import * as Cpu from "../src/internal/cpu.js"
import * as CpuSource from "../src/internal/cpuSource.js"

const procStat = (user: number, system: number, idle: number) =>
  [
    `cpu  ${user} 0 ${system} ${idle} 10 0 5 0 7 0`,
    `cpu0 ${user / 2} 0 ${system / 2} ${idle / 2} 5 0 2 0 3 0`,
    `cpu1 ${user / 2} 0 ${system / 2} ${idle / 2} 5 0 3 0 4 0`,
    "intr 123 4 5",
    "ctxt 1055853",
    "btime 1795523556"
  ].join("\n")

const hybridMountInfo = [
  "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
  "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"
].join("\n")

const hybridCgroup = ["4:memory:/process_api/d17486af", "3:cpuset:/", "2:cpuacct:/", "1:cpu:/", "0::/"].join("\n")

const dockerV1MountInfo = [
  "700 690 0:35 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:17 - cgroup cgroup rw,cpu,cpuacct",
  "701 690 0:36 /docker/abc /sys/fs/cgroup/cpuset ro,nosuid master:18 - cgroup cgroup rw,cpuset"
].join("\n")

const dockerV1Cgroup = ["12:cpuset:/docker/abc", "3:cpu,cpuacct:/docker/abc"].join("\n")

const v2MountInfo =
  "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate"

describe("CPU file parsing", () => {
  it("parses /proc/self/cgroup", () => {
    expect(Cpu.parseProcCgroup(hybridCgroup + "\n")).toStrictEqual([
      { id: "4", controllers: ["memory"], path: "/process_api/d17486af" },
      { id: "3", controllers: ["cpuset"], path: "/" },
      { id: "2", controllers: ["cpuacct"], path: "/" },
      { id: "1", controllers: ["cpu"], path: "/" },
      { id: "0", controllers: [], path: "/" }
    ])
    expect(Cpu.parseProcCgroup("3:cpu,cpuacct:/a:b")[0]).toStrictEqual({
      id: "3",
      controllers: ["cpu", "cpuacct"],
      path: "/a:b"
    })
  })

  it("parses mountinfo, optional fields and escapes included", () => {
    const mounts = Cpu.parseMountInfo(dockerV1MountInfo + "\n36 1 0:1 / /mnt/with\\040space rw - ext4 /dev/x rw")
    expect(mounts[0]).toStrictEqual({
      root: "/docker/abc",
      mountPoint: "/sys/fs/cgroup/cpu,cpuacct",
      fsType: "cgroup",
      superOptions: ["rw", "cpu", "cpuacct"]
    })
    expect(mounts[2].mountPoint).toBe("/mnt/with space")
    expect(Cpu.parseMountInfo("garbage\n")).toStrictEqual([])
  })

  it("resolves cgroup directories on a hybrid host, in a v1 container and on v2", () => {
    const hybrid = Cpu.parseMountInfo(hybridMountInfo)
    const cgroups = Cpu.parseProcCgroup(hybridCgroup)
    expect(Cpu.cgroupDirs(hybrid, cgroups, "cpuacct")).toStrictEqual(["/sys/fs/cgroup/cpuacct"])
    expect(Cpu.cgroupDirs(hybrid, cgroups, "cpu")).toStrictEqual(["/sys/fs/cgroup/cpu"])
    expect(Cpu.cgroupDirs(hybrid, cgroups, "unified")).toStrictEqual(["/sys/fs/cgroup/unified"])
    // the container sees its own cgroup at the mount root
    expect(Cpu.cgroupDirs(Cpu.parseMountInfo(dockerV1MountInfo), Cpu.parseProcCgroup(dockerV1Cgroup), "cpuacct"))
      .toStrictEqual(["/sys/fs/cgroup/cpu,cpuacct"])
    // a cgroup path below the mount root
    expect(
      Cpu.cgroupDirs(
        Cpu.parseMountInfo(v2MountInfo),
        Cpu.parseProcCgroup("0::/system.slice/app.service"),
        "unified"
      )
    ).toStrictEqual(["/sys/fs/cgroup/system.slice/app.service", "/sys/fs/cgroup"])
    expect(Cpu.cgroupDirs(Cpu.parseMountInfo(v2MountInfo), cgroups, "cpuacct")).toStrictEqual([])
  })

  it("parses cgroup v2 cpu.max and cpu.stat", () => {
    expect(Cpu.parseCpuMax("max 100000\n")).toBeUndefined()
    expect(Cpu.parseCpuMax("150000 100000\n")).toBe(1.5)
    expect(Cpu.parseCpuMax("50000\n")).toBe(0.5)
    expect(Cpu.parseCpuStatUsage("usage_usec 95410032\nuser_usec 64418393\nsystem_usec 30991639\n")).toBe(
      95_410_032_000
    )
    expect(Cpu.parseCpuStatUsage("user_usec 1\n")).toBeUndefined()
  })

  it("parses cgroup v1 cpuacct.usage and the CFS quota", () => {
    expect(Cpu.parseCpuacctUsage("98320925027\n")).toBe(98_320_925_027)
    expect(Cpu.parseCpuacctUsage("\n")).toBeUndefined()
    expect(Cpu.parseCfsQuota("-1\n", "100000\n")).toBeUndefined()
    expect(Cpu.parseCfsQuota("250000\n", "100000\n")).toBe(2.5)
  })

  it("counts cpuset lists", () => {
    expect(Cpu.parseCpuList("0-1\n")).toBe(2)
    expect(Cpu.parseCpuList("0-3,6,8-9")).toBe(7)
    expect(Cpu.parseCpuList("")).toBeUndefined()
    expect(Cpu.parseCpuList("3-1")).toBeUndefined()
  })

  it("parses /proc/stat into nanoseconds and counts CPUs", () => {
    // user 6309, nice 0, system 2868, idle 78470, iowait 216, irq 0, softirq 69, steal 12; guest 0 left out
    const text = "cpu  6309 0 2868 78470 216 0 69 12 5 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\n"
    expect(Cpu.parseProcStat(text)).toStrictEqual({ total: (6309 + 2868 + 78470 + 216 + 69 + 12) * 1e7, cpus: 2 })
    expect(Cpu.parseProcStat("intr 1 2 3")).toBeUndefined()
  })

  it("takes the smallest of host CPUs, cpuset and quota", () => {
    expect(Cpu.allowedCores(8, undefined, undefined)).toBe(8)
    expect(Cpu.allowedCores(8, 4, undefined)).toBe(4)
    expect(Cpu.allowedCores(8, 4, 1.5)).toBe(1.5)
    expect(Cpu.allowedCores(2, 4, 3)).toBe(2)
  })

  it("computes per-mille usage between readings, capped at 1000", () => {
    expect(Cpu.usageBetween({ busy: 0, capacity: 0 }, { busy: 250, capacity: 1000 })).toBe(250)
    expect(Cpu.usageBetween({ busy: 0, capacity: 0 }, { busy: 2000, capacity: 1000 })).toBe(1000)
    expect(Cpu.usageBetween({ busy: 10, capacity: 10 }, { busy: 10, capacity: 10 })).toBe(0)
    expect(Cpu.usageBetween({ busy: 10, capacity: 0 }, { busy: 5, capacity: 100 })).toBe(0)
  })

  it("a cgroup using one of two host CPUs with a quota of one core reads 1000", () => {
    const host1 = Cpu.parseProcStat(procStat(1000, 0, 1000))!
    const host2 = Cpu.parseProcStat(procStat(1100, 0, 1100))! // 200 ticks over 2 CPUs: 1 s of wall time
    const before = Cpu.cgroupReading(0, host1, 1)
    const after = Cpu.cgroupReading(1e9, host2, 1)
    expect(Cpu.usageBetween(before, after)).toBeCloseTo(1000, 6)
    // without a quota (2 cores) the same work is half the CPU
    expect(Cpu.usageBetween(Cpu.cgroupReading(0, host1, 2), Cpu.cgroupReading(1e9, host2, 2))).toBeCloseTo(500, 6)
  })

  it("smooths with 0.95 · previous + 0.05 · current", () => {
    expect(Cpu.smooth(0, 1000)).toBeCloseTo(50, 10)
    let usage = 0
    for (let i = 0; i < 44; i++) usage = Cpu.smooth(usage, 1000)
    // from 0, full load needs 45 samples (11.25 s at 250 ms) to cross 900
    expect(usage).toBeLessThan(900)
    usage = Cpu.smooth(usage, 1000)
    expect(usage).toBeGreaterThan(900)
    expect(usage).toBeLessThan(1000)
  })
})

const fakeHost = (files: Record<string, string>, cpu = { user: 0, system: 0 }, nanos = 0): CpuSource.Host => ({
  readFile: (path) => files[path],
  processCpu: () => cpu,
  monotonicNanos: () => nanos,
  availableCpus: 4,
  eventLoop: () => ({ idle: 30, active: 70 })
})

describe("CPU source detection", () => {
  it("picks cgroup v1 on a hybrid host, with cpuset and quota", () => {
    const sampler = CpuSource.detect(
      fakeHost({
        "/proc/self/mountinfo": hybridMountInfo,
        "/proc/self/cgroup": hybridCgroup,
        "/proc/stat": procStat(1000, 0, 1000),
        "/sys/fs/cgroup/cpuacct/cpuacct.usage": "5000\n",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
        "/sys/fs/cgroup/cpuset/cpuset.cpus": "0-1\n",
        "/sys/fs/cgroup/unified/cpu.stat": "usage_usec 1\n"
      }),
      "auto"
    )
    expect(sampler?.source).toBe("cgroup1")
    expect(sampler?.cores).toBe(1.5)
    expect(sampler?.read()).toStrictEqual({ busy: 5000, capacity: (2000 + 10 + 5) * 1e7 / 2 * 1.5 })
  })

  it("picks cgroup v2 on a unified host", () => {
    const sampler = CpuSource.detect(
      fakeHost({
        "/proc/self/mountinfo": v2MountInfo,
        "/proc/self/cgroup": "0::/app",
        "/proc/stat": procStat(1000, 0, 1000),
        "/sys/fs/cgroup/app/cpu.stat": "usage_usec 7\n",
        "/sys/fs/cgroup/app/cpu.max": "100000 100000\n"
      }),
      "auto"
    )
    expect(sampler?.source).toBe("cgroup2")
    expect(sampler?.cores).toBe(1)
    expect(sampler?.read()?.busy).toBe(7000)
  })

  it("falls back to the process when no cgroup can be read", () => {
    const host = fakeHost({}, { user: 300, system: 200 }, 10_000)
    const sampler = CpuSource.detect(host, "auto")
    expect(sampler?.source).toBe("process")
    expect(sampler?.cores).toBe(4)
    expect(sampler?.read()).toStrictEqual({ busy: 500_000, capacity: 40_000 })
    expect(CpuSource.detect(host, "cgroup")).toBeUndefined()
    expect(CpuSource.detect(host, "process", 1)?.cores).toBe(1)
  })

  it("reads the event loop's utilization on request", () => {
    const sampler = CpuSource.detect(fakeHost({ "/proc/stat": procStat(1, 1, 1) }), "event-loop")
    expect(sampler?.source).toBe("event-loop")
    expect(sampler?.read()).toStrictEqual({ busy: 70e6, capacity: 100e6 })
  })

  it("a cgroup source without /proc/stat is not usable", () => {
    const sampler = CpuSource.detect(
      fakeHost({
        "/proc/self/mountinfo": v2MountInfo,
        "/proc/self/cgroup": "0::/",
        "/sys/fs/cgroup/cpu.stat": "usage_usec 7\n"
      }),
      "auto"
    )
    expect(sampler?.source).toBe("process")
  })
})
