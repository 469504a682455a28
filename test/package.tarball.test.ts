/**
 * The package as a user gets it: the sources are compiled and packed with `npm pack`, the tarball
 * is installed into a fresh project next to its peers, and that project imports every subpath,
 * type-checks a program against the published declarations, and reports which modules the root
 * import loads. The optional peers are installed, so "the root import does not load them" is a
 * claim that can fail; their absence is simulated by a module hook that refuses to resolve them.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const repo = fileURLToPath(new URL("..", import.meta.url))
const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"))
const subpaths = Object.keys(pkg.exports).filter((k) => k !== "./package.json").map((k) =>
  k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`
)
const optionalPeers = Object.keys(pkg.peerDependenciesMeta ?? {}).filter((k) => pkg.peerDependenciesMeta[k].optional)
const installedVersion = (name: string): string =>
  JSON.parse(readFileSync(join(repo, "node_modules", name, "package.json"), "utf8")).version
// installed beside the tarball: the required peers, and the optional peers whose loading is checked
// (`@effect/sql` and `ioredis` are never imported by the root or by a constructor run here)
const peers = [
  "effect",
  "@effect/platform",
  ...optionalPeers.filter((name) => name !== "@effect/sql" && name !== "ioredis")
]
const probeDir = join(repo, "bench", "import-probe")
const tsc = join(repo, "node_modules", "typescript", "bin", "tsc")

/** Generous: `npm install` and `tsc` on a machine shared with other builds. */
const SLOW = 600_000

let work = ""
let app = ""

const execFileAsync = promisify(execFile)

// asynchronous, so the test worker keeps answering vitest while npm and tsc run
const run = async (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: Record<string, string> = {}
): Promise<string> => {
  const { stdout } = await execFileAsync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024
  })
  return stdout
}

interface Probe {
  readonly ms: number
  readonly modules: ReadonlyArray<string>
}

/** Imports `specifiers` in a fresh Node process inside the installed project. */
let probes = 0
const probe = async (specifiers: ReadonlyArray<string>, deny: ReadonlyArray<string> = []): Promise<Probe> => {
  const out = join(work, `probe-${++probes}.txt`)
  const line = await run(process.execPath, ["--import", "./register.mjs", "./probe.mjs", ...specifiers], app, {
    IMPORT_PROBE_OUT: out,
    IMPORT_PROBE_DENY: deny.join(",")
  })
  return JSON.parse(line.trim().split("\n").at(-1)!)
}

const fromPackage = (modules: ReadonlyArray<string>, name: string): Array<string> =>
  modules.filter((m) => m.includes(`/node_modules/${name}/`))

describe("the packed tarball in a fresh project", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "effect-resilience-pack-"))
    const stage = join(work, "stage")
    mkdirSync(stage)
    for (const file of ["package.json", "README.md"]) cpSync(join(repo, file), join(stage, file))
    cpSync(join(repo, "src"), join(stage, "src"), { recursive: true })
    // built into the staging copy, so the repository's own dist/ is never touched
    await run(process.execPath, [join(repo, "scripts", "build.mjs"), "--outDir", join(stage, "dist")], repo)
    const packed = JSON.parse(
      await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], stage)
    )
    const tarball = join(work, packed[0].filename)

    app = join(work, "app")
    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
    await run("npm", [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      // exactly the packages listed: the check decides which optional peers are present
      "--legacy-peer-deps",
      tarball,
      ...peers.map((name) => `${name}@${installedVersion(name)}`)
    ], app)
    for (const file of ["register.mjs", "hooks.mjs", "probe.mjs"]) cpSync(join(probeDir, file), join(app, file))
  }, SLOW)

  // removing an installed project takes a while on a busy machine
  afterAll(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true })
  }, SLOW)

  it("ships the compiled modules and their declarations, not the tests", () => {
    const installed = join(app, "node_modules", pkg.name)
    const files = readdirSync(join(installed, "dist"))
    for (const subpath of Object.values(pkg.exports) as Array<{ types: string; import: string } | string>) {
      if (typeof subpath === "string") continue
      expect(files).toContain(subpath.import.slice("./dist/".length))
      expect(files).toContain(subpath.types.slice("./dist/".length))
    }
    expect(readdirSync(installed)).not.toContain("test")
    expect(readdirSync(installed)).not.toContain("node_modules")
  })

  it("every subpath imports with none of the optional peers installed", async () => {
    const loaded = await probe(subpaths, optionalPeers)
    expect(loaded.modules.some((m) => m.includes(`/node_modules/${pkg.name}/dist/CircuitBreaker.js`))).toBe(true)
    for (const name of optionalPeers) expect(fromPackage(loaded.modules, name)).toEqual([])
  }, SLOW)

  it("the root import loads neither redis nor OpenTelemetry, though both are installed", async () => {
    const root = await probe([pkg.name])
    expect(root.modules.some((m) => m.includes(`/node_modules/${pkg.name}/dist/index.js`))).toBe(true)
    expect(root.modules.filter((m) => /\/node_modules\/(redis|@redis)\//.test(m))).toEqual([])
    expect(root.modules.filter((m) => /\/node_modules\/@(opentelemetry|effect\/opentelemetry)\//.test(m))).toEqual([])
    // the check can fail: the same probe sees them once the module that needs them is used
    const metrics = await probe([pkg.name, "@opentelemetry/exporter-prometheus", "redis"])
    expect(fromPackage(metrics.modules, "@opentelemetry/exporter-prometheus").length).toBeGreaterThan(0)
    expect(fromPackage(metrics.modules, "redis").length).toBeGreaterThan(0)
  }, SLOW)

  it("the root import reads a few bundles, not a file per module", async () => {
    // each file the loader reads resolves its `effect/*` imports again: the build bundles the public
    // modules by group so the root import stays near the cost of `import("effect")`
    const own = (modules: ReadonlyArray<string>) => modules.filter((m) => m.includes(`/node_modules/${pkg.name}/dist/`))
    const root = await probe([pkg.name])
    expect(own(root.modules).length).toBeLessThanOrEqual(25)
    // the count can fail: every subpath adds its own re-exporting file
    const all = await probe(subpaths)
    expect(own(all.modules).length).toBe(own(root.modules).length + subpaths.length - 1)
  }, SLOW)

  it("the root import leaves the server's request path for the first server built", async () => {
    const serverOnly = /\/node_modules\/@effect\/platform\/dist\/esm\/(HttpApp|HttpServerRequest|Multipart)\.js$/
    const root = await probe([pkg.name])
    expect(root.modules.filter((m) => serverOnly.test(m))).toEqual([])
    // the check can fail: the probe sees them once they are imported
    const server = await probe([pkg.name, "@effect/platform/HttpServerRequest", "@effect/platform/HttpApp"])
    expect(server.modules.filter((m) => serverOnly.test(m)).length).toBe(3)
  }, SLOW)

  it("the root and every subpath share one instance of each module", async () => {
    // the build bundles the entries with shared chunks: a class reached through two subpaths must
    // still be one class, or \`instanceof\` and Tags would differ silently
    writeFileSync(
      join(app, "identity.mjs"),
      `const root = await import("${pkg.name}")
const differ = []
for (const [name, namespace] of Object.entries(root)) {
  const subpath = await import("${pkg.name}/" + name)
  for (const [key, value] of Object.entries(subpath)) if (namespace[key] !== value) differ.push(name + "." + key)
}
console.log(JSON.stringify({ modules: Object.keys(root).length, differ }))
`
    )
    const out = JSON.parse((await run(process.execPath, ["identity.mjs"], app)).trim().split("\n").at(-1)!)
    expect(out.modules).toBe(subpaths.length - 1)
    expect(out.differ).toEqual([])
  }, SLOW)

  it("the error classes load without @effect/platform", async () => {
    const errors = await probe([`${pkg.name}/Errors`])
    expect(errors.modules.some((m) => m.includes(`/node_modules/${pkg.name}/dist/Errors.js`))).toBe(true)
    expect(fromPackage(errors.modules, "@effect/platform")).toEqual([])
  }, SLOW)

  it("the optional peers load when their module is used: a Prometheus scrape, a Redis connection", async () => {
    writeFileSync(
      join(app, "use-peers.mjs"),
      `import { Effect, Exit, Metric } from "effect"
import { Metrics, RedisStore } from "${pkg.name}"
const counter = Metric.counter("app_jobs_total", { incremental: true })
const scrape = await Effect.runPromise(
  Effect.scoped(Effect.flatMap(Metrics.make({ serviceName: "app" }), (p) => Metric.increment(counter).pipe(Effect.zipRight(p.scrape))))
)
// port 1 refuses at once: the store fails with the driver's error, so the driver was loaded
const exit = await Effect.runPromiseExit(
  Effect.scoped(RedisStore.connect("redis://127.0.0.1:1", { connectTimeout: "2 seconds" }))
)
const failure = Exit.isFailure(exit) ? String(exit.cause) : "connected"
console.log(JSON.stringify({ scrape, failure }))
`
    )
    const out = JSON.parse((await run(process.execPath, ["use-peers.mjs"], app)).trim().split("\n").at(-1)!)
    expect(out.scrape).toMatch(/^# TYPE app_jobs_total counter$/m)
    expect(out.failure).toMatch(/StoreError/)
    expect(out.failure).not.toMatch(/optional peer/)
  }, SLOW)

  it("the published declarations type-check a program using every subpath", async () => {
    const names = subpaths.map((s, i) => ({ specifier: s, alias: `M${i}` }))
    writeFileSync(
      join(app, "check.ts"),
      [
        `import { Effect } from "effect"`,
        `import { CircuitBreaker, Retry, Timeout } from "${pkg.name}"`,
        ...names.map(({ alias, specifier }) => `import * as ${alias} from "${specifier}"`),
        `export const modules = [${names.map(({ alias }) => alias).join(", ")}]`,
        `export const program: Effect.Effect<string, unknown, never> = Effect.scoped(Effect.gen(function*() {`,
        `  const breaker = yield* CircuitBreaker.make(CircuitBreaker.sre({ name: "payments" }))`,
        `  return yield* breaker.protect(Effect.succeed("ok").pipe(Timeout.within("1 second")))`,
        `}))`,
        `export const transient: boolean = Retry.isTransient(new Error("x"))`,
        `// @ts-expect-error a boolean is not a string: the types are real, not any`,
        `export const wrong: string = Retry.isTransient(new Error("x"))`
      ].join("\n") + "\n"
    )
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          exactOptionalPropertyTypes: true,
          noEmit: true,
          // the declarations of the modules built on an optional peer name that peer's types
          skipLibCheck: true,
          types: []
        },
        files: ["check.ts"]
      })
    )
    let output = ""
    try {
      await run(process.execPath, [tsc, "-p", "tsconfig.json"], app)
    } catch (e) {
      output = String((e as { stdout?: string }).stdout ?? e)
    }
    expect(output).toBe("")
  }, SLOW)
})
