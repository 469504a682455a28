#!/usr/bin/env node
/**
 * The `effect-resilience` command: `effect-resilience simulate scenario.json`.
 */
import { main } from "../internal/simulate/cli.js"

process.exitCode = main(process.argv.slice(2))
