/**
 * `npm run bench:docs`: rewrites the generated part of docs/benchmarks.md from bench/results.json
 * (`--check` only reports whether the page is up to date).
 */
import { readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { goals } from "./goals.js"
import { renderResults, replaceGenerated, type Results } from "./report.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const pagePath = join(root, "docs", "benchmarks.md")
const results = JSON.parse(readFileSync(join(root, "bench", "results.json"), "utf8")) as Results
const page = readFileSync(pagePath, "utf8")
const next = replaceGenerated(page, renderResults(results, goals))
if (process.argv.includes("--check")) {
  if (next !== page) {
    console.error("docs/benchmarks.md is out of date: run npm run bench:docs")
    process.exit(1)
  }
} else if (next !== page) {
  writeFileSync(pagePath, next)
  console.log("docs/benchmarks.md updated")
}
