import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // CPU-bound TestClock tests take several times longer on a busy machine (scripts/under-load)
    testTimeout: 120_000,
    hookTimeout: 120_000,
    sequence: { concurrent: false }
  }
})
