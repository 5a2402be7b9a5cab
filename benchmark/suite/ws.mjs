// The WebSocket scenarios' load generator: benchmark/ws-load (Rust, one thread, epoll),
// built with cargo on first use into benchmark/ws-load/target/. See its src/main.rs for
// what each mode does and prints.

import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'

import { which } from './load.mjs'
import { paths } from './paths.mjs'

export const wsLoad = {
  dir: join(paths.bench, 'ws-load'),
  get manifest() {
    return join(this.dir, 'Cargo.toml')
  },
  get binary() {
    return join(this.dir, 'target', 'release', 'ws-load')
  },
}

let built = false

/**
 * `cargo build --release --manifest-path benchmark/ws-load/Cargo.toml`, once per suite run
 * (cargo itself skips the work when nothing changed). Throws with cargo's output.
 */
export function buildWsLoad({ log = console.log } = {}) {
  if (built) return wsLoad.binary
  if (!which('cargo')) {
    throw new Error('cargo is not installed: the WebSocket scenarios build their load generator (benchmark/ws-load) with it')
  }
  const rel = relative(process.cwd(), wsLoad.manifest) || wsLoad.manifest
  if (!existsSync(wsLoad.binary)) log(`Building the WebSocket load generator: cargo build --release --manifest-path ${rel}`)
  try {
    execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', wsLoad.manifest], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  } catch (error) {
    throw new Error(`cargo build --release --manifest-path ${rel} failed:\n${error.stderr ?? error.message}`)
  }
  built = true
  return wsLoad.binary
}

/**
 * ws-load's command line for a scenario's `ws` settings (`mode`, `path`, `connections`,
 * `inflight`, `size`, `binary`, `deflate`) on `port`, with the run's durations.
 */
export function wsLoadArgs(ws, { port, duration, warmup, idleConnections }) {
  const args = [ws.mode, '--url', `ws://127.0.0.1:${port}${ws.path}`]
  if (ws.mode === 'idle') {
    args.push('--connections', String(idleConnections), '--size', String(ws.size ?? 32))
    if (ws.warmupMessages) args.push('--warmup-messages', String(ws.warmupMessages))
    return args
  }
  args.push('--connections', String(ws.connections), '--inflight', String(ws.inflight), '--size', String(ws.size))
  args.push(ws.binary ? '--binary' : '--text')
  if (ws.deflate) args.push('--deflate')
  args.push('--duration', String(duration), '--warmup', String(warmup))
  return args
}

/**
 * One line of ws-load's output: a JSON object. `{"error": …}` (what ws-load prints when a
 * check fails or the server misbehaves) is thrown as an Error.
 */
export function parseWsLoadLine(line) {
  let value
  try {
    value = JSON.parse(line)
  } catch {
    throw new Error(`ws-load printed something that is not JSON: ${JSON.stringify(line.slice(0, 300))}`)
  }
  if (value === null || typeof value !== 'object') throw new Error(`ws-load printed ${JSON.stringify(line.slice(0, 300))}, not an object`)
  if (typeof value.error === 'string') throw new Error(`ws-load: ${value.error}`)
  return value
}

/**
 * The figures of an echo or broadcast run, from ws-load's result line: `count` is what the
 * per-message figures divide by (echoes received, or deliveries to subscribers).
 */
export function wsFigures(result) {
  const need = (key) => {
    if (typeof result[key] !== 'number') throw new Error(`ws-load's result has no ${key}: ${JSON.stringify(result).slice(0, 300)}`)
    return result[key]
  }
  const latency = { p50Ms: result.p50Ms ?? null, p90Ms: result.p90Ms ?? null, p99Ms: result.p99Ms ?? null, maxMs: result.maxMs ?? null }
  const common = { seconds: need('seconds'), setupMs: result.setupMs ?? null, extensions: result.extensions ?? null, ...latency }
  if (result.mode === 'echo') {
    return { count: need('messages'), messages: result.messages, messagesPerSec: need('messagesPerSec'), ...common }
  }
  if (result.mode === 'broadcast') {
    return {
      count: need('deliveries'),
      deliveries: result.deliveries,
      deliveriesPerSec: need('deliveriesPerSec'),
      publishes: result.publishes ?? null,
      publishesPerSec: result.publishesPerSec ?? null,
      subscribers: result.subscribers ?? null,
      ...common,
    }
  }
  throw new Error(`ws-load's result has mode ${JSON.stringify(result.mode)}`)
}
