// Builds the package into dist/ (or the folder given with --outDir):
// - the declarations, one .d.ts per source module, with tsc;
// - the JavaScript with esbuild: one file per public entry (the package's exports and its bin) and
//   shared chunks beside them, so each source module is still evaluated once, whichever subpath
//   imports it. Loading a handful of chunks instead of ~110 files is what keeps the root import
//   cheap: Node's ESM loader spends about half a millisecond on every file it reads.
// Dependencies stay imports (`packages: "external"`), and `import()` stays lazy, so the optional
// peers are still loaded only by the modules that use them.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const at = args.indexOf("--outDir")
const outdir = at === -1 ? join(root, "dist") : resolve(args[at + 1])
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))

/** `./dist/X.js` of the package.json → `src/X.ts` */
const sourceOf = (built) => join(root, "src", built.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts"))
const entryPoints = [
  ...Object.values(pkg.exports).flatMap((target) => typeof target === "object" ? [target.import] : []),
  ...Object.values(pkg.bin)
].map(sourceOf)

rmSync(outdir, { recursive: true, force: true })
execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json", "--outDir", outdir],
  { cwd: root, stdio: "inherit" }
)
await build({
  entryPoints,
  outdir,
  outbase: join(root, "src"),
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning"
})
