/**
 * Route keys of the resilient server: the pattern of the router route a request will reach (so
 * `/users/1` and `/users/2` share `GET /users/:id`), the configured `routes` patterns as the
 * fallback, and a name for the rest.
 */
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Chunk from "effect/Chunk"
import * as http from "../http.js"

/** The route key of a request and the configured pattern it matched (per-route settings). */
export interface Resolved {
  readonly route: string
  readonly pattern: string | undefined
}

/** The key of requests that match no route of the router: one key, never one per URL. */
export const unmatched = "* (unmatched)"

interface Compiled {
  readonly key: string
  readonly pattern: http.RoutePattern
  /** lower is tried first: static paths, then parameters, then wildcards (find-my-way's order) */
  readonly rank: number
}

const rankOf = (path: string): number => (path.includes("*") ? 2 : path.includes(":") ? 1 : 0)

/** The patterns of a router's routes and mounts, most specific first. */
export const routerPatterns = (router: HttpRouter.HttpRouter<any, any>): ReadonlyArray<Compiled> => {
  const compiled: Array<Compiled> = []
  for (const route of Chunk.toReadonlyArray(router.routes)) {
    const key = `${route.method} ${route.path}`
    const pattern = http.compileRoute(key)
    if (typeof pattern !== "string") compiled.push({ key, pattern, rank: rankOf(route.path) })
  }
  for (const [prefix] of Chunk.toReadonlyArray(router.mounts)) {
    const key = `* ${prefix}/*`
    const pattern = http.compileRoute(key)
    if (typeof pattern !== "string") compiled.push({ key, pattern, rank: 3 })
  }
  return compiled.sort((a, b) => a.rank - b.rank)
}

/**
 * The resolver: `configured` patterns (already compiled, in the order given) decide the settings;
 * the router's patterns, when there is a router, decide the key.
 */
export const resolver = (
  router: ReadonlyArray<Compiled> | undefined,
  configured: ReadonlyArray<http.RoutePattern & { readonly key: string }>,
  fallbackName: ((request: HttpServerRequest.HttpServerRequest) => string) | undefined
): (request: HttpServerRequest.HttpServerRequest) => Resolved => {
  const cache = new Map<string, Resolved>()
  const resolve = (method: string, path: string, request: HttpServerRequest.HttpServerRequest): Resolved => {
    let pattern: string | undefined
    let configuredName: string | undefined
    for (const p of configured) {
      if (p.test(method, path)) {
        pattern = p.key
        configuredName = p.name
        break
      }
    }
    if (router !== undefined) {
      for (const r of router) {
        if (r.pattern.test(method, path) || (method === "HEAD" && r.pattern.test("GET", path))) {
          return { route: r.key, pattern }
        }
      }
    }
    if (configuredName !== undefined) return { route: configuredName, pattern }
    if (fallbackName !== undefined) return { route: fallbackName(request), pattern }
    return { route: router === undefined ? `${method} ${path}` : unmatched, pattern }
  }
  // with a router or patterns only, the result depends on method and path alone: keep the last
  // 1,000 answers (URLs with ids are many; the cache is a bound, not the correctness)
  return (request) => {
    const path = http.pathOf(request.url)
    if (fallbackName !== undefined) return resolve(request.method, path, request)
    const k = `${request.method} ${path}`
    let found = cache.get(k)
    if (found === undefined) {
      found = resolve(request.method, path, request)
      if (cache.size >= 1000) cache.clear()
      cache.set(k, found)
    }
    return found
  }
}
