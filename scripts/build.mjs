// Builds the package into dist/ (or the folder given with --outDir):
// - the declarations, one .d.ts per source module, with tsc;
// - the JavaScript with esbuild, bundled by group: the public modules are split into a few groups
//   (`groups` below), each group is one esbuild entry (`chunks/<group>.js`), and the modules two
//   groups share go to chunks beside them, so each source module is still evaluated once, whichever
//   subpath imports it. `dist/X.js` for every public module, and `dist/index.js`, only re-export
//   from the group files.
// Why groups and not one entry per public module: with thirty entries esbuild made ~50 chunks for
// the root import, and Node's loader resolves every `effect/*` import again in each file that has
// it (~400 resolutions instead of ~50), which cost more than all of the toolkit's own code.
// Dependencies stay imports (`packages: "external"`), and `import()` stays lazy, so the optional
// peers are still loaded only by the modules that use them.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const at = args.indexOf("--outDir")
const outdir = at === -1 ? join(root, "dist") : resolve(args[at + 1])
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))

// A subpath import loads its whole group (and the chunks the group shares with others), so a group
// holds modules used together: `Errors` alone (its subpath never loads @effect/platform), the
// circuit breaker alone (the most common single import), the other policies, and what builds on
// @effect/platform with the Redis and SQL adapters and the simulator (their drivers load lazily).
// Fewer groups make fewer chunks for the root import; more make lighter subpaths.
const groups = {
  errors: ["Errors"],
  breaker: ["CircuitBreaker"],
  policies: [
    "AdaptiveLimiter",
    "Backoff",
    "Bulkhead",
    "CpuUsage",
    "EventLoopDelay",
    "EventLoopUtilization",
    "Fallback",
    "Hedge",
    "LoadShedder",
    "MapReduce",
    "QueueDelay",
    "RateLimiter",
    "RateLimiterStore",
    "ResilienceMode",
    "Retry",
    "TaskRunner",
    "Timeout"
  ],
  services: [
    "Chaos",
    "CircuitBreakerCluster",
    "Config",
    "Health",
    "Metrics",
    "RedisStore",
    "ResilientHttpClient",
    "ResilientHttpServer",
    "ResilientSql",
    "Simulator"
  ]
}

/** `./dist/X.js` of the package.json → `X` */
const moduleOf = (built) => built.replace(/^\.\/dist\//, "").replace(/\.js$/, "")
const publicModules = Object.entries(pkg.exports).flatMap(([subpath, target]) =>
  subpath !== "." && typeof target === "object" ? [moduleOf(target.import)] : []
)
const groupOf = new Map(Object.entries(groups).flatMap(([group, modules]) => modules.map((m) => [m, group])))
const unassigned = publicModules.filter((m) => !groupOf.has(m))
const unknown = [...groupOf.keys()].filter((m) => !publicModules.includes(m))
if (unassigned.length > 0 || unknown.length > 0 || groupOf.size !== Object.values(groups).flat().length) {
  throw new Error(
    `scripts/build.mjs: groups must list every public module once (missing: ${unassigned}; unknown: ${unknown})`
  )
}
const sourceOf = (module) => join(root, "src", `${module}.ts`)

rmSync(outdir, { recursive: true, force: true })
execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json", "--outDir", outdir],
  { cwd: root, stdio: "inherit" }
)

// the names each public module exports at run time (types are gone), for its re-exporting file
const scan = await build({
  entryPoints: publicModules.map(sourceOf),
  outdir,
  outbase: join(root, "src"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  absWorkingDir: root,
  write: false,
  metafile: true,
  logLevel: "warning"
})
const exportsOf = new Map(
  Object.values(scan.metafile.outputs).flatMap((output) =>
    output.entryPoint === undefined
      ? []
      : [[output.entryPoint.replace(/^src\//, "").replace(/\.ts$/, ""), output.exports]]
  )
)

/** The export of module `m`'s `name` from its group file. */
const flat = (m, name) => `${m}$${name}`

// each group entry exports every module of the group as a namespace (for the root) and each of its
// names flat (for the module's own subpath, which re-exports them under their own names)
const groupEntries = {
  name: "groups",
  setup(b) {
    b.onResolve({ filter: /^group:/ }, (args) => ({ path: args.path.slice("group:".length), namespace: "group" }))
    b.onLoad({ filter: /.*/, namespace: "group" }, (args) => ({
      contents: groups[args.path].map((m) => {
        const source = JSON.stringify(`./src/${m}.js`)
        const names = exportsOf.get(m).map((name) => `${name} as ${flat(m, name)}`)
        return `export * as ${m} from ${source}\nexport { ${names.join(", ")} } from ${source}\n`
      }).join(""),
      resolveDir: root,
      loader: "ts"
    }))
  }
}

await build({
  entryPoints: {
    ...Object.fromEntries(Object.keys(groups).map((group) => [`chunks/${group}`, `group:${group}`])),
    ...Object.fromEntries(Object.values(pkg.bin).map((bin) => [moduleOf(bin), sourceOf(moduleOf(bin))]))
  },
  outdir,
  chunkNames: "chunks/[name]-[hash]",
  plugins: [groupEntries],
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning"
})

const banner = "// Re-exports from the bundle of its group (see scripts/build.mjs).\n"
for (const m of publicModules) {
  const names = exportsOf.get(m).map((name) => `${flat(m, name)} as ${name}`)
  mkdirSync(dirname(join(outdir, `${m}.js`)), { recursive: true })
  writeFileSync(
    join(outdir, `${m}.js`),
    `${banner}export { ${names.join(", ")} } from "./chunks/${groupOf.get(m)}.js"\n`
  )
}
// the root: every public module as a namespace, as src/index.ts declares them
const rootModules = [...readFileSync(join(root, "src", "index.ts"), "utf8").matchAll(/^export \* as (\w+) from/gm)]
  .map((match) => match[1])
if ([...rootModules].sort().join() !== [...publicModules].sort().join()) {
  throw new Error("scripts/build.mjs: src/index.ts must re-export every public module")
}
writeFileSync(
  join(outdir, "index.js"),
  banner +
    Object.entries(groups).map(([group, modules]) => `export { ${modules.join(", ")} } from "./chunks/${group}.js"\n`)
      .join("")
)
