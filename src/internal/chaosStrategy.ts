/**
 * The shell shared by every chaos strategy — one synchronous decision on the calling fiber, the
 * injection counter, the injected effect only for an injected call — and the pieces the
 * strategies are made of: option decoding, the latency wait, the HTTP status answer.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import type { Injector, StatusOptions } from "../Chaos.js"
import { InvalidOptionsError } from "../Errors.js"
import { decodeOptionsEither, parseDurationInput, PositiveDuration } from "./options.js"

export const injectionsTotal: Metric.Metric.Counter<number> = Metric.counter("resilience_chaos_injections_total", {
  description: "calls into which chaos was injected",
  incremental: true
})

/** Decodes like the other constructors, but an unknown key is an error too (a typo must not pass silently). */
export const strictDecoder = <A, I>(module: string, schema: Schema.Schema<A, I>) =>
  decodeOptionsEither(module, schema, { exact: true })

export type Kind = "fault" | "latency" | "outcome" | "behavior" | "http-status" | "client-status" | "client-fault"

/** The tagged counters of each injector, made once per injector and kind. */
const counters = new WeakMap<Injector, Map<Kind, Metric.Metric.Counter<number>>>()

const counterOf = (injector: Injector, kind: Kind): Metric.Metric.Counter<number> => {
  let byKind = counters.get(injector)
  if (byKind === undefined) {
    byKind = new Map()
    counters.set(injector, byKind)
  }
  let counter = byKind.get(kind)
  if (counter === undefined) {
    counter = Metric.tagged(Metric.tagged(injectionsTotal, "name", injector.name), "kind", kind)
    byKind.set(kind, counter)
  }
  return counter
}

export type AnyEffect = Effect.Effect<any, any, any>

/**
 * The shell every strategy shares: one synchronous decision on the calling fiber, the counter,
 * and `inject` only for an injected call. Off, it returns `self` untouched.
 */
export const strategy = <Args extends ReadonlyArray<unknown>>(
  injector: Injector,
  kind: Kind,
  inject: (self: AnyEffect, ...args: Args) => AnyEffect
) => {
  const increment = Metric.increment(counterOf(injector, kind))
  return (self: AnyEffect, ...args: Args): AnyEffect =>
    Effect.withFiberRuntime((fiber) => {
      const decision = injector.unsafeDecide(fiber)
      if (decision === false) return self
      if (decision === true) return Effect.zipRight(increment, inject(self, ...args))
      return Effect.flatMap(decision, (yes) => (yes ? Effect.zipRight(increment, inject(self, ...args)) : self))
    })
}

/** A strategy whose options were invalid: every call dies with the error, injected or not. */
export const invalid = (error: InvalidOptionsError) => (_self: AnyEffect) => Effect.die(error)

/**
 * Both calling styles of a strategy: `make(injector, x)` is the combinator (built once), and
 * `(self, injector, x)` applies it at once.
 */
export const dualStrategy = <X>(make: (injector: Injector, x: X) => (self: AnyEffect) => AnyEffect): any =>
(
  ...args: ReadonlyArray<any>
) => Effect.isEffect(args[0]) ? make(args[1], args[2])(args[0]) : make(args[0], args[1])

/**
 * The latency strategy: a static delay is checked once, a delay chosen per call on each call.
 * The wait is made interruptible even inside an uninterruptible region (an `HttpMiddleware` runs
 * in one), so a caller that gives up never waits it out.
 */
export const latency = (
  injector: Injector,
  delay: Duration.DurationInput | Effect.Effect<Duration.DurationInput, never, unknown>
) => {
  const invalidDelay = (value: unknown, reason: string) =>
    new InvalidOptionsError({ module: "Chaos.latency", option: "delay", value, reason })
  if (!Effect.isEffect(delay)) {
    const parsed = parseDurationInput(delay)
    if (Either.isLeft(parsed)) return invalid(invalidDelay(delay, parsed.left))
    const wait = Effect.interruptible(Effect.sleep(parsed.right))
    return strategy(injector, "latency", (self) => Effect.zipRight(wait, self))
  }
  return strategy(injector, "latency", (self) =>
    Effect.flatMap(delay, (chosen) => {
      const parsed = parseDurationInput(chosen)
      return Either.isLeft(parsed)
        ? Effect.die(invalidDelay(chosen, parsed.left))
        : Effect.zipRight(Effect.interruptible(Effect.sleep(parsed.right)), self)
    }))
}

const StatusOptionsSchema = Schema.Struct({
  status: Schema.Number.pipe(
    Schema.filter((n) => (Number.isInteger(n) && n >= 200 && n <= 599) || "expected an HTTP status from 200 to 599")
  ),
  retryAfter: Schema.optional(PositiveDuration),
  message: Schema.optional(Schema.String)
})
const decodeStatus = (module: string) => strictDecoder(module, StatusOptionsSchema)

/** What an injected HTTP answer is made of: status, headers, and the JSON body. */
export interface PreparedStatus {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: {
    readonly error: { readonly code: "chaos_injected"; readonly status: number; readonly message: string }
  }
}

export const prepareStatus = (
  module: string,
  status: number,
  options: StatusOptions
): PreparedStatus | InvalidOptionsError => {
  const decoded = decodeStatus(module)({ ...options, status })
  if (Either.isLeft(decoded)) return decoded.left
  const { message = "injected by chaos", retryAfter } = decoded.right
  const headers: Record<string, string> = { "cache-control": "no-store" }
  if (retryAfter !== undefined) headers["retry-after"] = String(Math.ceil(Duration.toMillis(retryAfter) / 1000))
  return { status, headers, body: { error: { code: "chaos_injected", status, message } } }
}
