// Module hooks for the import probe. Every module that goes through the ESM loader is appended to
// the file named by IMPORT_PROBE_OUT (the hooks run on their own thread, so a synchronous append is
// the simplest way to hand the list back). The packages named in IMPORT_PROBE_DENY (comma
// separated) cannot be resolved, as if they were not installed.
import { appendFileSync } from "node:fs"

const out = process.env.IMPORT_PROBE_OUT
const denied = (process.env.IMPORT_PROBE_DENY ?? "").split(",").filter((name) => name.length > 0)

export async function resolve(specifier, context, nextResolve) {
  if (denied.some((name) => specifier === name || specifier.startsWith(`${name}/`))) {
    const error = new Error(`Cannot find package '${specifier}' (denied by the import probe)`)
    error.code = "ERR_MODULE_NOT_FOUND"
    throw error
  }
  return nextResolve(specifier, context)
}

export async function load(url, context, nextLoad) {
  if (out) appendFileSync(out, url + "\n")
  return nextLoad(url, context)
}
