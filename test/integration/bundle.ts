/**
 * A server script bundled with every package it imports into one ES module file by esbuild (which
 * tsx brings), so that a child process starts in a fraction of a second on a busy machine instead
 * of compiling TypeScript and loading hundreds of package modules.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..", "..")

/**
 * The arguments that start `source` with Node: the bundle written into `dir`, or tsx running the
 * source when esbuild is not there or fails.
 */
export const bundledArgs = (source: string, dir: string): ReadonlyArray<string> => {
  const esbuild = Path.join(root, "node_modules", ".bin", "esbuild")
  const bundle = Path.join(dir, Path.basename(source).replace(/\.ts$/, ".mjs"))
  const options = [
    "--bundle",
    "--platform=node",
    "--format=esm",
    `--outfile=${bundle}`,
    "--log-level=warning",
    // CommonJS packages inside an ES module bundle still call require for Node's own modules
    "--banner:js=import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);"
  ]
  const built = existsSync(esbuild) && spawnSync(esbuild, [source, ...options], { stdio: "inherit" }).status === 0
  return built ? [bundle] : ["--import", "tsx", source]
}
