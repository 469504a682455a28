/**
 * `node:crypto` for the Redis-backed modules, loaded when one of them starts instead of with the
 * toolkit: its loading costs an import of the root a few milliseconds that most users never need.
 */
import * as Effect from "effect/Effect"

/** The hex SHA-1 of a script, the name `EVALSHA` runs it by. */
export type Sha1 = (text: string) => string

/** Loads `node:crypto` (once per process; later runs find it cached) and returns the SHA-1 function. */
export const sha1: Effect.Effect<Sha1> = Effect.map(
  Effect.promise(() => import("node:crypto")),
  ({ createHash }) => (text) => createHash("sha1").update(text).digest("hex")
)
