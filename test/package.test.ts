import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as Api from "../src/index.js"

const modules = readdirSync(new URL("../src/", import.meta.url))
  .filter((f) => f.endsWith(".ts") && f !== "index.ts")
  .map((f) => f.slice(0, -3))
  .sort()
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))

describe("package surface", () => {
  it("the root exports every public module as a namespace", () => {
    expect(Object.keys(Api).sort()).toEqual(modules)
  })

  it("the exports map has one entry per public module plus the root", () => {
    const expected = [".", ...modules.map((m) => `./${m}`), "./package.json"].sort()
    expect(Object.keys(pkg.exports).sort()).toEqual(expected)
    for (const m of modules) {
      expect(pkg.exports[`./${m}`]).toEqual({ types: `./dist/${m}.d.ts`, import: `./dist/${m}.js` })
    }
  })

  it("every public module has at least one @example (npm run docs compiles and runs them)", () => {
    const without = modules.filter((m) =>
      !readFileSync(new URL(`../src/${m}.ts`, import.meta.url), "utf8").includes("@example")
    )
    expect(without).toEqual([])
  })

  it("every public module documents each export with @since and @category", () => {
    const missing: Array<string> = []
    for (const m of modules) {
      const source = readFileSync(new URL(`../src/${m}.ts`, import.meta.url), "utf8")
      // each top-level export statement must be preceded by a JSDoc block carrying both tags
      const pattern =
        /(\/\*\*(?:(?!\*\/)[\s\S])*\*\/\s*)?^export (?:declare )?(?:const|class|interface|type|function|namespace|abstract class) (\w+)/gm
      for (const match of source.matchAll(pattern)) {
        const doc = match[1] ?? ""
        if (!doc.includes("@since") || !doc.includes("@category")) missing.push(`${m}.${match[2]}`)
      }
    }
    expect(missing).toEqual([])
  })
})
