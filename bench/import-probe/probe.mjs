// `node [--import ./register.mjs] probe.mjs <specifier>…`: imports the specifiers (resolved from
// this file's folder, as an application there would) and prints one JSON line: the milliseconds
// the imports took (wall clock and the process's CPU time) and, with the hooks registered, every module loaded — ESM through the loader,
// CommonJS from `require`'s cache (Node 20 does not pass a CommonJS `require` through the hooks).
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"

const specifiers = process.argv.slice(2)
const started = performance.now()
const cpuStarted = process.cpuUsage()
for (const specifier of specifiers) await import(specifier)
const ms = performance.now() - started
const cpu = process.cpuUsage(cpuStarted)
const cpuMs = (cpu.user + cpu.system) / 1000
const modules = new Set()
const out = process.env.IMPORT_PROBE_OUT
if (out) {
  for (const line of readFileSync(out, "utf8").split("\n")) {
    if (line.startsWith("file:")) modules.add(decodeURIComponent(new URL(line).pathname))
  }
}
for (const path of Object.keys(createRequire(import.meta.url).cache)) modules.add(path)
modules.delete(new URL(import.meta.url).pathname)
console.log(JSON.stringify({ specifiers, ms, cpuMs, modules: [...modules].sort() }))
