/**
 * The performance goals docs/benchmarks.md reports against, each read from one suite's CPU times.
 */
import type { Goal } from "./report.js"

export const goals: ReadonlyArray<Goal> = [
  {
    label: "breaker around a promise (consecutive.tryPromise) ≤ 1.0× cockatiel's Consecutive breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "consecutive.tryPromise(resolved)",
    reference: "cockatiel Consecutive in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "adaptive (sre) breaker around a promise (sre.tryPromise) ≤ 1.0× cockatiel's Sampling breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "sre.tryPromise(resolved)",
    reference: "cockatiel Sampling in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "adaptive (sre) breaker around a promise (sre.tryPromise) ≤ 1.0× cockatiel's Consecutive breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "sre.tryPromise(resolved)",
    reference: "cockatiel Consecutive in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "breaker around any effect (consecutive.protect(Effect.tryPromise)) ≤ 1.0× cockatiel's Consecutive breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "consecutive.protect(tryPromise)",
    reference: "cockatiel Consecutive in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "adaptive (sre) breaker around any effect (sre.protect) ≤ 1.0× cockatiel's Sampling breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "sre.protect(tryPromise)",
    reference: "cockatiel Sampling in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "adaptive (sre) breaker around any effect (sre.protect) ≤ 1.0× cockatiel's Consecutive breaker",
    suite: "circuit-breaker happy path (promise)",
    subject: "sre.protect(tryPromise)",
    reference: "cockatiel Consecutive in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "breaker around sync work ≤ Effect.succeed + 200 ns",
    suite: "circuit-breaker happy path (sync effect)",
    subject: "consecutive.protect(succeed)",
    reference: "bare Effect.succeed",
    kind: "plus",
    limit: 200
  },
  {
    label: "adaptive (sre) breaker around sync work ≤ Effect.succeed + 200 ns",
    suite: "circuit-breaker happy path (sync effect)",
    subject: "sre.protect(succeed)",
    reference: "bare Effect.succeed",
    kind: "plus",
    limit: 200
  },
  {
    label: "bulkhead around a promise (bulkhead.tryPromise) ≤ 1.0× cockatiel's bulkhead",
    suite: "bulkhead around async work",
    subject: "bulkhead.tryPromise(resolved)",
    reference: "cockatiel bulkhead(10) in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "bulkhead around any effect (Bulkhead.protect(Effect.tryPromise)) ≤ 1.0× cockatiel's bulkhead",
    suite: "bulkhead around async work",
    subject: "Bulkhead.protect(tryPromise)",
    reference: "cockatiel bulkhead(10) in tryPromise",
    kind: "ratio",
    limit: 1
  },
  {
    label: "Timeout.within around sync work ≤ 2 µs",
    suite: "timeout",
    subject: "Timeout.within(1 s)",
    kind: "absolute",
    limit: 2000
  },
  {
    label: "Timeout.within around async work ≤ bare + 1.5 µs",
    suite: "timeout",
    subject: "async work, Timeout.within(1 s)",
    reference: "async work, bare",
    kind: "plus",
    limit: 1500
  },
  {
    label: "retry + breaker + timeout + bulkhead ≤ 0.5× cockatiel's wrap (async work on both sides)",
    suite: "retry-breaker-timeout-bulkhead",
    subject: "effect-resilience retry(breaker(timeout(bulkhead(tryPromise))))",
    reference: "cockatiel wrap(retry, breaker, timeout, bulkhead) in tryPromise",
    kind: "ratio",
    limit: 0.5
  },
  {
    label: "import(\"effect-resilience\") ≤ 1.2× import(\"effect\") alone",
    suite: "import cost",
    subject: "import(\"effect-resilience\")",
    reference: "import(\"effect\")",
    kind: "ratio",
    limit: 1.2
  },
  {
    label: "memory limiter at 1,000,000 keys ≤ 1 µs per decision",
    suite: "rate-limiter: memory decisions, 1,000,000 keys",
    subject: "effect-resilience fixedWindow (1,000,000 keys)",
    kind: "absolute",
    limit: 1000
  },
  {
    label: "memory limiter at 1,000 keys ≤ 1.0× rate-limiter-flexible's RateLimiterMemory",
    suite: "rate-limiter: memory decisions, 1,000 keys",
    subject: "effect-resilience fixedWindow (1,000 keys)",
    reference: "rate-limiter-flexible RateLimiterMemory (1,000 keys)",
    kind: "ratio",
    limit: 1
  },
  {
    label: "memory limiter at 100,000 keys ≤ 1.0× rate-limiter-flexible's RateLimiterMemory",
    suite: "rate-limiter: memory decisions, 100,000 keys",
    subject: "effect-resilience fixedWindow (100,000 keys)",
    reference: "rate-limiter-flexible RateLimiterMemory (100,000 keys)",
    kind: "ratio",
    limit: 1
  },
  {
    label: "memory limiter at 1,000,000 keys ≤ 1.0× rate-limiter-flexible's RateLimiterMemory",
    suite: "rate-limiter: memory decisions, 1,000,000 keys",
    subject: "effect-resilience fixedWindow (1,000,000 keys)",
    reference: "rate-limiter-flexible RateLimiterMemory (1,000,000 keys)",
    kind: "ratio",
    limit: 1
  }
]
