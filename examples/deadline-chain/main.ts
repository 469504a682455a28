/**
 * Deadline propagation across three processes: starts services A → B → C on 127.0.0.1 (each a
 * `service.ts` process), sends A a request with a 300 ms budget (`x-request-timeout: 300`), and
 * prints what budget each hop received — the caller's 300 ms less what the hops before it spent.
 * Then C is made slow: the whole chain stops at the deadline. Exits when done.
 *
 *   npm run example:deadline-chain
 */
import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const children: Array<ChildProcess> = []

/** Starts one hop and resolves with its port once it listens. */
const service = (name: string, next?: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(here, "service.ts")], {
      env: {
        ...process.env,
        NAME: name,
        PORT: "0",
        ...(next === undefined ? {} : { NEXT: `http://127.0.0.1:${next}` })
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    let out = ""
    const onData = (chunk: Buffer) => {
      out += chunk.toString("utf8")
      const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (listening !== null) resolve(Number(listening[1]))
      const interrupted = /(\w+ interrupted after \d+ ms \(budget \d+ ms\))/.exec(chunk.toString("utf8"))
      if (interrupted !== null) console.log(`  ${interrupted[1]}`)
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code) => reject(new Error(`${name} exited with ${code}:\n${out}`)))
  })

interface Hop {
  readonly name: string
  readonly budget: number
  readonly forwardedAfter: number
  readonly downstream?: Hop
}

const call = async (path: string) => {
  const started = Date.now()
  const response = await fetch(`http://127.0.0.1:${portA}${path}`, { headers: { "x-request-timeout": "300" } })
  return { status: response.status, body: (await response.json()) as any, elapsed: Date.now() - started }
}

const portC = await service("C")
const portB = await service("B", portC)
const portA = await service("A", portB)
for (let i = 0; i < 3; i++) await fetch(`http://127.0.0.1:${portA}/chain`) // warm-up

console.log("A → B → C, 300 ms budget, each hop works 50 ms before calling on:")
let reply = await call("/chain")
for (let i = 0; i < 5 && reply.status !== 200; i++) reply = await call("/chain")
for (let hop: Hop | undefined = reply.body as Hop; hop !== undefined; hop = hop.downstream) {
  console.log(`  ${hop.name} received a budget of ${hop.budget} ms and called on after ${hop.forwardedAfter} ms`)
}

console.log("C slow (2 s of work):")
const slow = await call("/chain?slow=C")
console.log(`  the caller got ${slow.status} ${slow.body.error?.code} after ${slow.elapsed} ms`)
await new Promise((r) => setTimeout(r, 500))

for (const child of children) child.kill("SIGINT")
await Promise.all(children.map((c) => new Promise((r) => c.exitCode !== null ? r(undefined) : c.once("exit", r))))
