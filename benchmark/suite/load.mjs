// Load generators: wrk (one thread) for throughput and latency, autocannon where a run
// must stop after an exact number of requests. Both run pinned with taskset.

import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import { paths } from './paths.mjs'
import { RAISE_NOFILE, track } from './servers.mjs'
import { h2loadArgs, h2loadLoopScript, parseH2load } from './tls.mjs'

export function which(command) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, command))) return join(dir, command)
  }
  return null
}

export function wrkVersion() {
  try {
    execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: 'pipe' })
  } catch (error) {
    // wrk --version prints its banner and exits non-zero.
    return `${error.stdout ?? ''}`.split('\n')[0].trim() || 'unknown'
  }
  return 'unknown'
}

function run(args, what) {
  return new Promise((resolve, reject) => {
    const child = track(spawn('sh', ['-c', RAISE_NOFILE, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${what} (${args.join(' ')}) exited with ${code ?? signal}:\n${stdout}${stderr}`))
    })
  })
}

// ---------------------------------------------------------------- wrk

const TO_MS = { us: (v) => v / 1000, ms: (v) => v, s: (v) => v * 1e3, m: (v) => v * 60e3, h: (v) => v * 3600e3 }

function parseDurationMs(text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  if (!match) throw new Error(`cannot read wrk duration "${text}"`)
  return TO_MS[match[2]](Number(match[1]))
}

// wrk prints sizes with binary prefixes (`format_binary`: 1024-based, written KB, MB, GB).
const BINARY = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 }

/** A wrk size such as `15.10MB` or `512.00KB` or `100.00B`, in bytes. */
export function parseWrkBytes(text) {
  const match = /^([\d.]+)([KMGTP]?)B$/.exec(text.trim())
  if (!match) throw new Error(`cannot read wrk size "${text}"`)
  return Number(match[1]) * BINARY[match[2]]
}

export function parseWrk(output) {
  const number = (regex) => {
    const match = regex.exec(output)
    return match ? Number(match[1]) : null
  }
  const bytes = (regex) => {
    const match = regex.exec(output)
    return match ? parseWrkBytes(match[1]) : null
  }
  const percentile = (p) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+(?:us|ms|s|m|h))\\s*$`, 'm').exec(output)
    return match ? parseDurationMs(match[1]) : null
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  const result = {
    requests: number(/^\s*(\d+) requests in /m),
    requestsPerSec: number(/^Requests\/sec:\s+([\d.]+)/m),
    p50Ms: percentile(50),
    p75Ms: percentile(75),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/) ?? 0,
    // Bytes read per second, heads and bodies (wrk's Transfer/sec, and its total read).
    transferBytesPerSec: bytes(/^Transfer\/sec:\s+([\d.]+[KMGTP]?B)\s*$/m),
    bytesRead: bytes(/^\s*\d+ requests in [\d.]+\w+, ([\d.]+[KMGTP]?B) read/m),
    socketErrors: socket
      ? { connect: +socket[1], read: +socket[2], write: +socket[3], timeout: +socket[4] }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
  }
  for (const key of ['requests', 'requestsPerSec', 'p50Ms', 'p99Ms']) {
    if (result[key] === null) throw new Error(`cannot find ${key} in wrk output:\n${output}`)
  }
  // wrk sometimes prints 0 for a percentile it cannot place (seen with pipelining): that
  // is no latency, so it is reported as missing.
  result.latencyWarnings = []
  for (const key of ['p50Ms', 'p75Ms', 'p90Ms', 'p99Ms']) {
    if (result[key] === 0) {
      result[key] = null
      result.latencyWarnings.push(`wrk gave ${key.slice(0, -2)} as 0; left out`)
    }
  }
  return result
}

/** wrk's command line (after `taskset -c cpus`); see `wrk`. */
export function wrkArgs({ port, path, connections, seconds, script = null, scriptArgs = [], tls = false, headers = [] }) {
  const args = ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency']
  for (const header of headers) args.push('-H', header)
  if (script === 'pipeline') args.push('-s', paths.pipelineScript)
  else if (script === 'post') args.push('-s', join(paths.scripts, 'post.lua'))
  else if (script) args.push('-s', script)
  args.push(`${tls ? 'https' : 'http'}://127.0.0.1:${port}${path}`)
  if (scriptArgs.length) args.push('--', ...scriptArgs.map(String))
  return args
}

/**
 * `wrk -t1 -c<connections> -d<seconds>s --latency [-H header]... [-s script] url [-- args]`
 * on `cpus`. `script` is `pipeline` (16 requests per write, ../shared/bench/pipeline.lua) or
 * `post` (benchmark/scripts/post.lua; `scriptArgs` holds the body size). `tls`: an
 * https:// URL (wrk speaks TLS with libssl's defaults, and does not check the certificate).
 */
export async function wrk({ cpus, ...load }) {
  const { stdout } = await run(['taskset', '-c', cpus, ...wrkArgs(load)], 'wrk')
  return parseWrk(stdout)
}

/**
 * h2load runs of `batch` new clients with one request each, one after the other for
 * `ms` milliseconds, the whole loop pinned to `cpus` (see h2loadLoopScript in tls.mjs):
 * the runs' output, parsed (parseH2load).
 */
export async function h2loadLoop({ port, batch, ms, cpus, path = '/' }) {
  const { stdout } = await run(['taskset', '-c', cpus, 'sh', '-c', h2loadLoopScript(), 'sh', String(Math.round(ms)), ...h2loadArgs({ port, batch, path })], 'h2load loop')
  const result = parseH2load(stdout)
  if (result.runs === 0) throw new Error(`h2load printed no result:\n${stdout.slice(0, 2000)}`)
  return result
}

// ---------------------------------------------------------------- autocannon

/** autocannon's CLI, run with this Node: `-a amount` stops after exactly that many requests. */
export async function autocannon({ port, path, connections, amount, cpus }) {
  const cli = join(paths.root, 'node_modules', 'autocannon', 'autocannon.js')
  if (!existsSync(cli)) throw new Error(`autocannon is not installed (${cli}); run \`npm install\``)
  const args = ['taskset', '-c', cpus, process.execPath, cli, '-c', String(connections), '-a', String(amount), '-t', '10', '-n', '-j']
  args.push(`http://127.0.0.1:${port}${path}`)
  const { stdout } = await run(args, 'autocannon')
  const start = stdout.indexOf('{')
  let result
  try {
    result = JSON.parse(stdout.slice(start))
  } catch {
    throw new Error(`cannot read autocannon's JSON output:\n${stdout.slice(0, 2000)}`)
  }
  return {
    requests: result.requests.total,
    requestsPerSec: result.requests.total / Math.max(1e-3, (Date.parse(result.finish) - Date.parse(result.start)) / 1000),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx ?? 0,
    errors: result.errors ?? 0,
    timeouts: result.timeouts ?? 0,
    durationSeconds: result.duration,
  }
}
