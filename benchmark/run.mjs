#!/usr/bin/env node
// Quick HTTP benchmark: harrier against node:http on one plain-text route.
//
//   npm run bench -- [--server harrier|node] [--duration S] [--runs N]
//                    [--connections C] [--warmup S]
//
// Each measured run starts the server afresh, pinned to CPU 0 with taskset,
// waits until it answers, warms it up with a short unmeasured wrk run, then
// drives it with `wrk -t1 -c<C> -d<S>s --latency` pinned to CPU 1. The
// server's CPU time (utime + stime of the whole process, every thread
// included) is read from /proc before and after the measured run, and its
// resident set size (VmRSS) just after it. Runs are interleaved between the
// servers (A, B, A, B, ...) and the median of each figure is reported.
// Results: a markdown table on stdout and benchmark/results/latest.json.
//
// Linux only (taskset, /proc). Needs wrk: `apt-get install wrk`.

import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const resultsDir = join(here, 'results')

const SERVERS = {
  harrier: { label: 'harrier', file: join(here, 'servers', 'harrier.mjs') },
  node: { label: 'node:http', file: join(here, 'servers', 'node-http.mjs') },
}
const BASELINE = 'node'
const EXPECTED_BODY = 'Hello, World!'
const EXPECTED_CONTENT_TYPE = 'text/plain; charset=utf-8'

// ---------------------------------------------------------------- arguments

function usage() {
  return `usage: node benchmark/run.mjs [options]

  --server NAME      harrier or node; repeat or comma-separate for several
                     (default: harrier,node)
  --duration S       seconds of each measured wrk run (default 10)
  --runs N           measured runs per server, interleaved (default 3)
  --connections C    open connections held by wrk (default 64)
  --warmup S         seconds of unmeasured load before each run (default 2, 0 = none)
  --server-cpu LIST  taskset CPU list for the server (default 0)
  --client-cpu LIST  taskset CPU list for wrk (default 1)
  --help             this text`
}

function fail(message) {
  console.error(`bench: ${message}`)
  process.exit(1)
}

function parseOptions(argv) {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        server: { type: 'string', multiple: true },
        duration: { type: 'string', default: '10' },
        runs: { type: 'string', default: '3' },
        connections: { type: 'string', default: '64' },
        warmup: { type: 'string', default: '2' },
        'server-cpu': { type: 'string', default: '0' },
        'client-cpu': { type: 'string', default: '1' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    })
  } catch (error) {
    fail(`${error.message}\n\n${usage()}`)
  }
  const { values } = parsed
  if (values.help) {
    console.log(usage())
    process.exit(0)
  }
  const integer = (name, min) => {
    const value = Number(values[name])
    if (!Number.isInteger(value) || value < min) fail(`--${name} must be an integer >= ${min}, got ${values[name]}`)
    return value
  }
  const servers = (values.server ?? ['harrier,node'])
    .flatMap((value) => value.split(','))
    .map((name) => name.trim())
    .filter(Boolean)
    .map((name) => (name === 'node:http' || name === 'node-http' ? 'node' : name))
  for (const name of servers) {
    if (!SERVERS[name]) fail(`unknown server "${name}" (expected harrier or node)`)
  }
  return {
    servers: [...new Set(servers)],
    duration: integer('duration', 1),
    runs: integer('runs', 1),
    connections: integer('connections', 1),
    warmup: integer('warmup', 0),
    serverCpu: values['server-cpu'],
    clientCpu: values['client-cpu'],
  }
}

// ---------------------------------------------------------------- environment

function which(command) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, command))) return join(dir, command)
  }
  return null
}

function checkEnvironment(options) {
  if (process.platform !== 'linux' || !existsSync('/proc/self/stat')) {
    fail('this benchmark needs Linux (taskset and /proc)')
  }
  if (!which('wrk')) {
    console.error('bench: wrk is not installed. Install it with:\n\n    apt-get install wrk\n')
    process.exit(1)
  }
  if (!which('taskset')) {
    console.error('bench: taskset is not installed. Install it with:\n\n    apt-get install util-linux\n')
    process.exit(1)
  }
  if (options.servers.includes('harrier')) {
    const hasDist = existsSync(join(root, 'dist', 'index.js'))
    const hasAddon = readdirSync(root).some((name) => /^harrier\..+\.node$/.test(name))
    if (!hasDist || !hasAddon) {
      fail(
        'harrier is not built (need dist/index.js and harrier.<platform>.node): run `npm run build` first, ' +
          'or benchmark only node:http with `--server node`',
      )
    }
  }
}

function clockTicksPerSecond() {
  const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
  if (!Number.isFinite(value) || value <= 0) fail('getconf CLK_TCK returned no usable value')
  return value
}

function machineInfo() {
  const cpus = os.cpus()
  let wrkVersion = 'unknown'
  try {
    execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: 'pipe' })
  } catch (error) {
    // wrk --version prints its banner and exits non-zero.
    wrkVersion = `${error.stdout ?? ''}`.split('\n')[0].trim() || wrkVersion
  }
  return {
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    wrk: wrkVersion,
  }
}

// ---------------------------------------------------------------- /proc

// utime + stime of the whole process in clock ticks. /proc/<pid>/stat counts
// every thread of the process, including threads that have already exited,
// so it already covers the engine's worker threads.
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12])
}

function memoryKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const read = (key) => {
    const match = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))
    return match ? Number(match[1]) : null
  }
  return { rss: read('VmRSS'), hwm: read('VmHWM') }
}

function threadCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).length
  } catch {
    return null
  }
}

// ---------------------------------------------------------------- servers

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function get(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Servers still running, so that an interrupted benchmark leaves none behind.
const live = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of live) child.kill('SIGKILL')
    process.exit(130)
  })
}

async function startServer(name, options) {
  const server = SERVERS[name]
  const port = await freePort()
  // taskset execs the command, so the child's pid is the server's own pid.
  const child = spawn('taskset', ['-c', options.serverCpu, process.execPath, server.file], {
    cwd: root,
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  let exited = null
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child)
      exited = { code, signal }
      resolve(exited)
    })
  })

  const deadline = Date.now() + 20_000
  let lastError
  while (Date.now() < deadline) {
    if (exited) {
      fail(`${server.label} exited before answering (code ${exited.code}, signal ${exited.signal}):\n${output}`)
    }
    try {
      const response = await get(port)
      if (response.status !== 200 || response.body !== EXPECTED_BODY) {
        await stopServer({ child, exit })
        fail(`${server.label} answered ${response.status} ${JSON.stringify(response.body)}, expected 200 ${JSON.stringify(EXPECTED_BODY)}`)
      }
      return { name, port, pid: child.pid, child, exit, contentType: response.headers['content-type'] }
    } catch (error) {
      lastError = error
      await sleep(50)
    }
  }
  await stopServer({ child, exit })
  fail(`${server.label} did not answer on port ${port} within 20 s (${lastError?.message}):\n${output}`)
}

async function stopServer({ child, exit }) {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exit
  clearTimeout(timer)
}

// ---------------------------------------------------------------- wrk

const TIME_UNITS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }

function parseDurationMs(text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  if (!match) throw new Error(`cannot read wrk duration "${text}"`)
  return Number(match[1]) * TIME_UNITS[match[2]]
}

function parseWrk(output) {
  const number = (regex) => {
    const match = regex.exec(output)
    return match ? Number(match[1]) : null
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
    socketErrors: socket
      ? { connect: +socket[1], read: +socket[2], write: +socket[3], timeout: +socket[4] }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
  }
  for (const key of ['requests', 'requestsPerSec', 'p50Ms', 'p99Ms']) {
    if (result[key] === null) throw new Error(`cannot find ${key} in wrk output:\n${output}`)
  }
  return result
}

function runWrk(port, seconds, options) {
  const args = [
    '-c', options.clientCpu,
    'wrk', '-t1', `-c${options.connections}`, `-d${seconds}s`, '--latency',
    `http://127.0.0.1:${port}/`,
  ]
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code === 0) resolve(stdout)
      else reject(new Error(`taskset ${args.join(' ')} exited with ${code}:\n${stdout}${stderr}`))
    })
  })
}

// ---------------------------------------------------------------- one run

async function measure(name, options, ticksPerSecond) {
  const server = await startServer(name, options)
  try {
    if (options.warmup > 0) await runWrk(server.port, options.warmup, options)
    const ticksBefore = cpuTicks(server.pid)
    const output = await runWrk(server.port, options.duration, options)
    const ticksAfter = cpuTicks(server.pid)
    const memory = memoryKiB(server.pid)
    const threads = threadCount(server.pid)
    const wrk = parseWrk(output)
    const cpuSeconds = (ticksAfter - ticksBefore) / ticksPerSecond
    return {
      ...wrk,
      cpuSeconds,
      cpuUsPerRequest: wrk.requests > 0 ? (cpuSeconds * 1e6) / wrk.requests : null,
      serverCpuUtilisation: cpuSeconds / options.duration,
      rssMiB: memory.rss === null ? null : memory.rss / 1024,
      peakRssMiB: memory.hwm === null ? null : memory.hwm / 1024,
      threads,
      contentType: server.contentType,
    }
  } finally {
    await stopServer(server)
  }
}

// ---------------------------------------------------------------- report

const METRICS = [
  { key: 'requestsPerSec', title: 'requests/s', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US') },
  { key: 'p50Ms', title: 'p50 latency', better: 'lower', format: (v) => formatMs(v) },
  { key: 'p99Ms', title: 'p99 latency', better: 'lower', format: (v) => formatMs(v) },
  { key: 'cpuUsPerRequest', title: 'server CPU µs/req', better: 'lower', format: (v) => v.toFixed(2) },
  { key: 'rssMiB', title: 'RSS MiB', better: 'lower', format: (v) => v.toFixed(1) },
]

function formatMs(ms) {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`
}

function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function markdownTable(header, rows) {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i].length)))
  const line = (cells) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

function report(options, results, machine) {
  const medians = {}
  for (const name of options.servers) {
    medians[name] = {}
    for (const metric of METRICS) medians[name][metric.key] = median(results[name].map((run) => run[metric.key]))
  }

  console.log(
    `\n## harrier quick benchmark\n\n` +
      `GET / -> 200 "${EXPECTED_BODY}" (text/plain); wrk -t1 -c${options.connections} -d${options.duration}s, ` +
      `median of ${options.runs} interleaved run(s), ${options.warmup}s warm-up each; ` +
      `server on CPU ${options.serverCpu}, wrk on CPU ${options.clientCpu}.\n` +
      `${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}.\n`,
  )
  const header = ['server', ...METRICS.map((m) => m.title)]
  const rows = options.servers.map((name) => [
    SERVERS[name].label,
    ...METRICS.map((m) => (medians[name][m.key] === null ? 'n/a' : m.format(medians[name][m.key]))),
  ])
  console.log(markdownTable(header, rows))

  let ratios = null
  if (medians[BASELINE]) {
    ratios = {}
    for (const name of options.servers) {
      ratios[name] = {}
      for (const metric of METRICS) {
        const value = medians[name][metric.key]
        const base = medians[BASELINE][metric.key]
        ratios[name][metric.key] = value !== null && base ? value / base : null
      }
    }
    console.log(`\nRatio to node:http (requests/s: higher is better; latency, CPU and RSS: lower is better):\n`)
    console.log(
      markdownTable(
        header,
        options.servers.map((name) => [
          SERVERS[name].label,
          ...METRICS.map((m) => (ratios[name][m.key] === null ? 'n/a' : `${ratios[name][m.key].toFixed(2)}x`)),
        ]),
      ),
    )
  }

  const problems = []
  for (const name of options.servers) {
    for (const [i, run] of results[name].entries()) {
      if (run.contentType !== EXPECTED_CONTENT_TYPE) {
        problems.push(`${SERVERS[name].label} run ${i + 1}: content-type ${JSON.stringify(run.contentType)}, expected ${JSON.stringify(EXPECTED_CONTENT_TYPE)}`)
      }
      const socket = Object.values(run.socketErrors).reduce((a, b) => a + b, 0)
      if (run.non2xx || socket) {
        problems.push(`${SERVERS[name].label} run ${i + 1}: ${run.non2xx} non-2xx responses, socket errors ${JSON.stringify(run.socketErrors)}`)
      }
    }
  }
  if (problems.length) console.log(`\nWarnings:\n${problems.map((p) => `- ${p}`).join('\n')}`)

  const document = {
    date: new Date().toISOString(),
    machine,
    config: {
      route: 'GET /',
      body: EXPECTED_BODY,
      tool: 'wrk',
      threads: 1,
      connections: options.connections,
      durationSeconds: options.duration,
      warmupSeconds: options.warmup,
      runs: options.runs,
      serverCpu: options.serverCpu,
      clientCpu: options.clientCpu,
    },
    servers: Object.fromEntries(
      options.servers.map((name) => [name, { label: SERVERS[name].label, median: medians[name], runs: results[name] }]),
    ),
    ratioToNodeHttp: ratios,
    warnings: problems,
  }
  mkdirSync(resultsDir, { recursive: true })
  const file = join(resultsDir, 'latest.json')
  writeFileSync(file, JSON.stringify(document, null, 2) + '\n')
  console.log(`\nWrote ${relative(process.cwd(), file) || file}`)
}

// ---------------------------------------------------------------- main

async function main() {
  const options = parseOptions(process.argv.slice(2))
  checkEnvironment(options)
  const ticksPerSecond = clockTicksPerSecond()
  const machine = machineInfo()
  const results = Object.fromEntries(options.servers.map((name) => [name, []]))

  const total = options.runs * options.servers.length
  const perRun = options.duration + options.warmup
  const estimate = total * (perRun + 1)
  console.log(
    `Benchmarking ${options.servers.map((n) => SERVERS[n].label).join(', ')}: ${total} run(s) of ` +
      `${perRun}s (about ${estimate < 120 ? `${estimate} s` : `${Math.ceil(estimate / 60)} min`})`,
  )
  for (let run = 1; run <= options.runs; run++) {
    for (const name of options.servers) {
      const result = await measure(name, options, ticksPerSecond)
      results[name].push(result)
      console.log(
        `  run ${run}/${options.runs} ${SERVERS[name].label.padEnd(9)} ` +
          `${Math.round(result.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s  ` +
          `p50 ${formatMs(result.p50Ms)}  p99 ${formatMs(result.p99Ms)}  ` +
          `cpu ${result.cpuUsPerRequest?.toFixed(2) ?? 'n/a'} µs/req  ` +
          `rss ${result.rssMiB?.toFixed(1) ?? 'n/a'} MiB  threads ${result.threads ?? 'n/a'}`,
      )
    }
  }
  report(options, results, machine)
}

main().catch((error) => {
  console.error(error?.stack ?? error)
  process.exit(1)
})
