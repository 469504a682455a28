/**
 * `npm run bench [filter…] [--flag…]`: runs every `bench/*.bench.ts` (or those whose name contains a
 * filter) one after another, each in its own process so one suite's garbage cannot slow the next.
 * Arguments starting with `--` are passed to every suite; with `--json` the file headers go to
 * stderr, so stdout carries only what the suites print.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const filters = args.filter((a) => !a.startsWith("--"))
const flags = args.filter((a) => a.startsWith("--"))
const header = (line: string) => (flags.includes("--json") ? console.error(line) : console.log(line))
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => filters.length === 0 || filters.some((filter) => f.includes(filter)))
  .sort()

if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(", ")}`)
  process.exit(1)
}

let failed = 0
for (const file of files) {
  header(`\n# ${file}`)
  const result = spawnSync(process.execPath, ["--import", "tsx", "--expose-gc", join(here, file), ...flags], {
    stdio: "inherit",
    env: process.env
  })
  if (result.status !== 0) {
    failed++
    console.error(`${file} exited with ${result.status ?? result.signal}`)
  }
}
process.exit(failed === 0 ? 0 : 1)
