#!/usr/bin/env node
// harrier's benchmark suite: harrier against node:http, Fastify, Deno.serve, Bun.serve,
// a floor responder, (for static files) nginx and (for WebSockets) node:http + ws,
// scenario by scenario, in interleaved rounds. See benchmark/README.md.
//
//   npm run bench -- [--scenario NAME,...] [--server NAME,...] [--runs N] [--quick] ...
//
// Linux only (taskset, /proc). Needs wrk (`apt-get install wrk`) and `npm install`.

import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

import { autocannon, h2loadLoop, which, wrk, wrkArgs, wrkVersion } from './suite/load.mjs'
import { paths, setShared } from './suite/paths.mjs'
import { childrenCpuSeconds, clockTicksPerSecond, coreBusySeconds, delta, parseCpuList, memoryKiB, rssSummary, sampleRss, snapshot, threadCount } from './suite/proc.mjs'
import { headerMarkdown, scenarioMarkdown, summarise, summaryMarkdown, tlsOverPlain, tlsOverPlainMarkdown } from './suite/report.mjs'
import { DEFAULT_SCENARIOS, SCENARIOS, SCENARIO_GROUPS, applies, formatMs, probe, skipReason } from './suite/scenarios.mjs'
import { bodyMiBps, cleanupStatic, staticFiles } from './suite/static.mjs'
import {
  RAISE_NOFILE,
  SERVERS,
  bunBinary,
  buildFloor,
  cleanupFloor,
  denoBinary,
  harrierBuilt,
  killAll,
  nginxBinary,
  parseServerSpec,
  runtimeVersion,
  startServer,
  stopServer,
  track,
} from './suite/servers.mjs'
import { H2LOAD_MEASURE_END, H2LOAD_MEASURE_START, expectedProtocol, h2Targets, h2TargetsMarkdown, h2loadProblem, h2loadRunArgs, parseH2loadRun } from './suite/h2.mjs'
import { OBSERVED_CONNECTIONS, cleanupTls, helloObserver, negotiated, resumesReconnections, resumption, tlsCert } from './suite/tls.mjs'
import { PACKAGES, ensureCommands, findCommand } from './suite/tools.mjs'
import { buildWsLoad, parseWsLoadLine, wsFigures, wsLoad, wsLoadArgs } from './suite/ws.mjs'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------- options

const DEFAULTS = { runs: 3, duration: 10, warmup: 2, connections: 64, idle: 10_000, rss: [100_000, 1_000_000] }
const QUICK = { runs: 1, duration: 2, warmup: 1, connections: 64, idle: 2_000, rss: [20_000, 200_000] }

function usage() {
  return `usage: npm run bench -- [options]        (or: node benchmark/run.mjs [options])

  --scenario LIST      scenarios to run, comma-separated or repeated (default: all but the WebSocket ones)
                       ${DEFAULT_SCENARIOS.map((s) => s.name).join(', ')}
                       WebSocket (not in the default set; \`ws\` stands for all of them):
                       ${SCENARIO_GROUPS.ws.join(', ')}
                       TLS (not in the default set; \`tls\` stands for all of them):
                       ${SCENARIO_GROUPS.tls.join(', ')}
                       HTTP/2 (not in the default set; \`h2\` stands for all of them):
                       ${SCENARIO_GROUPS.h2.join(', ')}
  --server LIST        servers, comma-separated or repeated (default: all)
                       ${Object.keys(SERVERS).join(', ')}
                       NAME:VAR=value[:VAR=value] runs a server with extra environment,
                       e.g. harrier:HARRIER_IO_THREADS=1 (a variant, side by side)
  --runs N             rounds per scenario; servers interleaved in each (default ${DEFAULTS.runs})
  --interleave         scenarios interleaved too: each round runs every scenario, so that
                       figures compared across scenarios (h2-hello against h1-pipelined-16)
                       are paired by round, minutes apart at most, as servers are
  --duration S         seconds of each measured wrk run (default ${DEFAULTS.duration})
  --warmup S           seconds of unmeasured load before each run (default ${DEFAULTS.warmup})
  --connections C      connections for scenarios that do not set their own (default ${DEFAULTS.connections})
  --idle-connections N idle keep-alive connections in idle-10k, idle WebSockets in ws-idle-10k (default ${DEFAULTS.idle})
  --rss-requests A,B   rss-growth: RSS after A requests against after B (default ${DEFAULTS.rss.join(',')})
  --quick              short runs: ${QUICK.runs} round, ${QUICK.duration} s runs, ${QUICK.warmup} s warm-up, ` +
    `${QUICK.idle} idle connections, rss-growth ${QUICK.rss.join(',')}
                       (flags given explicitly still win)
  --server-cpu LIST    taskset CPU list for the servers (default 0)
  --client-cpu LIST    taskset CPU list for the load generator (default 1)
  --shared DIR         the shared folder with bench/pipeline.lua and bench/floor.c (default ../shared)
  --out NAME           results/NAME.json and results/NAME.md (default latest)
  --list               list scenarios and servers, then exit
  --help               this text`
}

function fail(message) {
  console.error(`bench: ${message}`)
  process.exit(1)
}

function parseOptions(argv) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        scenario: { type: 'string', multiple: true },
        server: { type: 'string', multiple: true },
        runs: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        'idle-connections': { type: 'string' },
        'rss-requests': { type: 'string' },
        quick: { type: 'boolean', default: false },
        interleave: { type: 'boolean', default: false },
        'server-cpu': { type: 'string', default: '0' },
        'client-cpu': { type: 'string', default: '1' },
        shared: { type: 'string' },
        out: { type: 'string', default: 'latest' },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    fail(`${error.message}\n\n${usage()}`)
  }
  if (values.help) {
    console.log(usage())
    process.exit(0)
  }
  if (values.list) {
    for (const s of SCENARIOS) console.log(`scenario ${s.name.padEnd(20)} ${s.title}${s.default === false ? ' (not in the default set)' : ''}`)
    for (const name of Object.keys(SERVERS)) {
      const server = parseServerSpec(name)
      const runs = SCENARIOS.filter((scenario) => applies(scenario, server)).map((scenario) => scenario.name)
      const not = SCENARIOS.filter((scenario) => !applies(scenario, server)).map((scenario) => scenario.name)
      const where = not.length === 0 ? '' : runs.length <= not.length ? ` (only ${runs.join(', ')})` : ` (not ${not.join(', ')})`
      console.log(`server   ${name.padEnd(20)} ${server.label}${where}`)
    }
    process.exit(0)
  }
  const base = values.quick ? QUICK : DEFAULTS
  const integer = (name, fallback, min) => {
    if (values[name] === undefined) return fallback
    const value = Number(values[name])
    if (!Number.isInteger(value) || value < min) fail(`--${name} must be an integer >= ${min}, got ${values[name]}`)
    return value
  }
  const list = (entries) => (entries ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean)

  const scenarioNames = list(values.scenario).flatMap((name) => SCENARIO_GROUPS[name] ?? [name])
  for (const name of scenarioNames) {
    if (!SCENARIOS.some((s) => s.name === name)) {
      fail(`unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(', ')}; ${Object.keys(SCENARIO_GROUPS).join(', ')} for groups)`)
    }
  }
  const scenarios = scenarioNames.length ? SCENARIOS.filter((s) => scenarioNames.includes(s.name)) : DEFAULT_SCENARIOS

  const servers = []
  for (const spec of list(values.server).length ? list(values.server) : Object.keys(SERVERS)) {
    let server
    try {
      server = parseServerSpec(spec)
    } catch (error) {
      fail(error.message)
    }
    if (!server) fail(`unknown server "${spec}" (known: ${Object.keys(SERVERS).join(', ')})`)
    if (!servers.some((s) => s.id === server.id)) servers.push(server)
  }

  let rss = base.rss
  if (values['rss-requests'] !== undefined) {
    rss = values['rss-requests'].split(',').map(Number)
    if (rss.length !== 2 || !rss.every((n) => Number.isInteger(n) && n > 0) || rss[0] >= rss[1]) {
      fail(`--rss-requests must be two integers A,B with 0 < A < B, got ${values['rss-requests']}`)
    }
  }
  if (values.shared) setShared(values.shared)
  if (!/^[\w.-]+$/.test(values.out)) fail(`--out must be a plain file name, got ${values.out}`)

  return {
    scenarios,
    servers,
    // Servers named on the command line; without --server, those that take part in none of
    // the scenarios asked for are left out without a word (node-ws, in a run without ws scenarios).
    serversGiven: list(values.server).length > 0,
    quick: values.quick,
    interleave: values.interleave,
    runs: integer('runs', base.runs, 1),
    duration: integer('duration', base.duration, 1),
    warmup: integer('warmup', base.warmup, 0),
    connections: integer('connections', base.connections, 1),
    idleConnections: integer('idle-connections', base.idle, 1),
    rssRequests: rss,
    serverCpu: values['server-cpu'],
    clientCpu: values['client-cpu'],
    allCpus: `0-${os.cpus().length - 1}`,
    out: values.out,
  }
}

// ---------------------------------------------------------------- environment

function need(command, pkg) {
  if (which(command)) return
  // The tools the suite knows a Debian package for are installed when they can be.
  if (PACKAGES[command]) {
    try {
      ensureCommands([command])
      return
    } catch (error) {
      fail(error.message)
    }
  }
  fail(`${command} is not installed. Install it with:\n\n    apt-get install ${pkg}\n`)
}

/** Checks tools; drops servers that cannot run here, saying why. */
function checkEnvironment(options) {
  if (process.platform !== 'linux' || !existsSync('/proc/self/stat')) fail('the suite needs Linux (taskset and /proc)')
  need('taskset', 'util-linux')
  need('getconf', 'libc-bin')
  if (options.scenarios.some((s) => s.kind === 'wrk')) need('wrk', 'wrk')
  if (options.scenarios.some((s) => s.kind === 'h2load')) need('h2load', 'nghttp2-client')
  if (options.scenarios.some((s) => s.tls)) {
    // openssl makes the certificate and checks what each server negotiates (and resumes);
    // h2load makes the full handshakes.
    const tools = ['openssl', ...(options.scenarios.some((s) => s.tls && s.kind === 'wrk') ? ['wrk'] : []), ...(options.scenarios.some((s) => s.kind === 'handshake') ? ['h2load'] : [])]
    try {
      ensureCommands(tools)
      tlsCert()
    } catch (error) {
      fail(`the TLS scenarios: ${error.message}`)
    }
  }
  if (options.scenarios.some((s) => s.script === 'pipeline') && !existsSync(paths.pipelineScript)) {
    fail(`${paths.pipelineScript} not found: the pipelined scenarios need the shared folder (--shared DIR)`)
  }
  if (os.cpus().length < 2) console.warn('bench: warning: fewer than 2 CPUs; the server and the load generator share one')
  if (options.scenarios.some((s) => s.ws)) {
    try {
      buildWsLoad()
    } catch (error) {
      fail(error.message)
    }
  }
  if (!options.serversGiven) options.servers = options.servers.filter((server) => options.scenarios.some((scenario) => applies(scenario, server)))

  const unavailable = []
  options.servers = options.servers.filter((server) => {
    try {
      if (server.name === 'harrier' && !harrierBuilt()) {
        throw new Error('not built (need dist/index.js and harrier.<platform>.node): run `npm run build`')
      }
      if (server.runtime === 'deno') denoBinary()
      if (server.runtime === 'bun') bunBinary()
      if (server.runtime === 'floor') {
        need('cc', 'gcc libc6-dev')
        buildFloor()
      }
      if (server.runtime === 'nginx') {
        if (!findCommand('nginx') && options.scenarios.some((scenario) => applies(scenario, server))) ensureCommands(['nginx'])
        nginxBinary()
      }
      if (!options.scenarios.some((scenario) => applies(scenario, server))) {
        console.warn(`bench: warning: ${server.label} takes part in none of the scenarios asked for`)
      }
      return true
    } catch (error) {
      unavailable.push({ server: server.id, reason: error.message })
      console.error(`bench: skipping ${server.label}: ${error.message}`)
      return false
    }
  })
  if (options.servers.length === 0) fail('no server can run')
  return unavailable
}

function gitDescription() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: paths.root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'crates', 'lib', 'index.js', 'index.mjs'], {
      cwd: paths.root,
      encoding: 'utf8',
    }).trim()
    return dirty ? `${commit} with uncommitted changes in crates/ or lib/` : commit
  } catch {
    return 'unknown'
  }
}

function packageVersion(name) {
  try {
    return JSON.parse(readFileSync(join(paths.root, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return 'not installed'
  }
}

function toolVersion(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: 'pipe' }).split('\n')[0].trim()
  } catch {
    return 'not installed'
  }
}

function describe(options) {
  const cpus = os.cpus()
  const runtimes = new Set(options.servers.map((s) => s.runtime))
  return {
    machine: {
      cpu: cpus[0]?.model?.trim() ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      kernel: os.release(),
      clockTicksPerSecond: clockTicksPerSecond(),
    },
    versions: {
      node: process.version,
      deno: runtimes.has('deno') ? runtimeVersion('deno') : 'not run',
      bun: runtimes.has('bun') ? runtimeVersion('bun') : 'not run',
      floorCompiler: runtimes.has('floor') ? runtimeVersion('floor') : 'not run',
      nginx: runtimes.has('nginx') ? runtimeVersion('nginx') : 'not run',
      wrk: which('wrk') ? wrkVersion() : 'not installed',
      ...(options.scenarios.some((s) => s.tls || s.h2) ? { openssl: toolVersion('openssl', ['version']), h2load: toolVersion('h2load', ['--version']) } : {}),
      autocannon: packageVersion('autocannon'),
      fastify: packageVersion('fastify'),
      ws: packageVersion('ws'),
      harrier: gitDescription(),
    },
  }
}

// ---------------------------------------------------------------- measurements

function serverCpus(scenario, options) {
  return scenario.serverCpus === 'all' ? options.allCpus : options.serverCpu
}

function loadWarnings(scenario, server, result) {
  const warnings = []
  const expect404 = scenario.expectStatus === 404 && server.name !== 'floor'
  const wrong = expect404 ? result.requests - result.non2xx : result.non2xx
  if (wrong) warnings.push(`${wrong} of ${result.requests} answers had an unexpected status (expected ${expect404 ? 404 : '2xx'})`)
  const socket = result.socketErrors ? Object.values(result.socketErrors).reduce((a, b) => a + b, 0) : 0
  if (socket) warnings.push(`socket errors ${JSON.stringify(result.socketErrors)}`)
  if (result.errors) warnings.push(`${result.errors} errors, ${result.timeouts ?? 0} timeouts`)
  warnings.push(...(result.latencyWarnings ?? []))
  return warnings
}

function aliveOrThrow(handle) {
  const exited = handle.exited()
  if (exited) throw new Error(`${handle.server.label} exited during the run (code ${exited.code}, signal ${exited.signal}):\n${handle.output()}`)
}

/**
 * The server's counters after a run. When its /proc entry is gone the server died during
 * the run: say so with its exit status and output (once its exit is seen), not as ENOENT.
 */
async function serverSnapshot(handle) {
  try {
    return snapshot(handle.pid)
  } catch (error) {
    await Promise.race([handle.exit, sleep(2000)])
    aliveOrThrow(handle)
    throw new Error(`cannot read ${handle.server.label}'s counters (pid ${handle.pid}): ${error.message}`)
  }
}

/** A fixed-time wrk run: requests/s, latency, CPU and context switches per request, RSS. */
async function measureLoad(scenario, server, options, handle) {
  const load = {
    port: handle.port,
    path: scenario.path,
    connections: scenario.connections ?? options.connections,
    cpus: options.clientCpu,
    script: scenario.script,
    scriptArgs: scenario.scriptArgs,
    tls: Boolean(scenario.tls),
    headers: scenario.headers ?? [],
  }
  const rssBeforeWarmup = memoryKiB(handle.pid).rss
  if (options.warmup > 0) await wrk({ ...load, seconds: options.warmup })
  // RSS at the start of the measured run, every 0.5 s during it, and at its end.
  const sampler = sampleRss(handle.pid, 500)
  const before = snapshot(handle.pid)
  const clientBefore = childrenCpuSeconds()
  const coresBefore = coreReadings(scenario, options)
  let result
  let samples
  try {
    result = await wrk({ ...load, seconds: options.duration })
  } finally {
    samples = sampler.stop()
  }
  const after = await serverSnapshot(handle)
  const client = clientFigures(clientBefore, before, after)
  const others = otherCpu(coresBefore, coreReadings(scenario, options), before, after, client.clientCpuSeconds, sharedCores(scenario, options))
  aliveOrThrow(handle)
  const memory = memoryKiB(handle.pid)
  const perRequest = delta(before, after, result.requests)
  return {
    ...result,
    ...perRequest,
    ...(scenario.tls ? client : {}),
    ...others,
    // tls-resume: every request is a connection of its own, so a request is a handshake.
    ...(scenario.tls?.perHandshake
      ? { handshakesPerSec: result.requestsPerSec, handshakes: result.requests, cpuUsPerHandshake: perRequest.cpuUsPerRequest, ctxPerHandshake: perRequest.ctxPerRequest }
      : {}),
    ...(scenario.static
      ? {
          transferMiBps: bodyMiBps(result.requestsPerSec, scenario.static.size),
          wrkTransferMiBps: result.transferBytesPerSec === null ? null : result.transferBytesPerSec / 2 ** 20,
        }
      : {}),
    ...rssSummary(samples),
    rssSamplesMiB: samples.map((kib) => (kib === null ? null : Math.round((kib / 1024) * 10) / 10)),
    rssBeforeWarmupMiB: rssBeforeWarmup / 1024,
    rssMiB: memory.rss / 1024,
    peakRssMiB: memory.hwm / 1024,
    threads: threadCount(handle.pid),
    warnings: loadWarnings(scenario, server, result),
  }
}

/**
 * The load generator's CPU over a measured run: the utime + stime of this process's
 * children that exited meanwhile (the generator, and the h2load runs of a loop), ÷ the
 * run's wall time between the server's two snapshots.
 */
function clientFigures(clientBefore, before, after) {
  const seconds = childrenCpuSeconds() - clientBefore
  const wall = Number(after.at - before.at) / 1e9
  return { clientCpuSeconds: seconds, clientCpuPct: wall > 0 ? (seconds / wall) * 100 : null }
}

function sharedCores(scenario, options) {
  const client = new Set(parseCpuList(options.clientCpu))
  return parseCpuList(serverCpus(scenario, options)).some((cpu) => client.has(cpu))
}

/**
 * The load generator of a handshake scenario sent for a moment through a relay that reads
 * each ServerHello (helloObserver in tls.mjs): how many of its handshakes the server made
 * full, how many resumed. tls-resume: wrk with 8 connections for 1 s; tls-handshake: one
 * h2load run of 64 clients.
 */
async function observeHandshakes(scenario, options, handle) {
  const observer = await helloObserver(handle.port)
  try {
    if (scenario.kind === 'handshake') {
      await h2loadLoop({ port: observer.port, batch: 64, ms: 1, cpus: options.clientCpu, path: scenario.path })
    } else {
      await wrk({ port: observer.port, path: scenario.path, connections: OBSERVED_CONNECTIONS, seconds: 1, cpus: options.clientCpu, tls: true, headers: scenario.headers ?? [] })
    }
  } finally {
    await observer.close()
  }
  return { ...observer.counts }
}

/** Busy seconds of the server's CPUs and of the client's, for otherCpu. */
function coreReadings(scenario, options) {
  return { server: coreBusySeconds(parseCpuList(serverCpus(scenario, options))), client: coreBusySeconds(parseCpuList(options.clientCpu)) }
}

/**
 * How much of the server's and the client's CPUs went to other processes during a measured
 * run (builds, tests: this machine is shared), in % of one CPU: the CPUs' busy time less
 * the server's (the client's) own, ÷ wall time. When the client runs on its own core and
 * the server on its own, this is the machine's noise in that measurement. Unknown (null)
 * for the client when its own CPU was not measured.
 */
function otherCpu(coresBefore, coresAfter, before, after, clientCpuSeconds, shared) {
  const wall = Number(after.at - before.at) / 1e9
  if (!(wall > 0)) return {}
  const pct = (v) => Math.max(0, (v / wall) * 100)
  // hello-unpinned: the server's CPUs include the client's, whose own CPU is then no noise.
  const ownOnServerCores = after.cpu - before.cpu + (shared ? clientCpuSeconds : 0)
  return {
    serverCoreOtherPct: pct(coresAfter.server - coresBefore.server - ownOnServerCores),
    clientCoreOtherPct: clientCpuSeconds === undefined ? null : pct(coresAfter.client - coresBefore.client - clientCpuSeconds),
  }
}

/** Past this the load generator's core is taken to be its limit (a warning says so). */
const CLIENT_SATURATED_PCT = 90
/** Past this much of the server's CPU taken by other processes, a warning says the figures are noisy. */
const OTHER_CPU_WARN_PCT = 15

/**
 * Full TLS handshakes (tls-handshake): h2load runs of `batch` new clients, one request
 * each, one after the other (see h2loadLoop), for the warm-up and then the measured
 * time. Handshakes/s are those of h2load's own clock (the sum of its runs' times, without
 * the few ms each run takes to start); CPU per handshake is the server's over the whole
 * measured loop ÷ handshakes.
 */
async function measureHandshakes(scenario, server, options, handle) {
  const load = { port: handle.port, batch: scenario.tls.batch, cpus: options.clientCpu, path: scenario.path }
  if (options.warmup > 0) await h2loadLoop({ ...load, ms: options.warmup * 1000 })
  const sampler = sampleRss(handle.pid, 500)
  const before = snapshot(handle.pid)
  const clientBefore = childrenCpuSeconds()
  const coresBefore = coreReadings(scenario, options)
  let result
  try {
    result = await h2loadLoop({ ...load, ms: options.duration * 1000 })
  } finally {
    sampler.stop()
  }
  const after = snapshot(handle.pid)
  const client = clientFigures(clientBefore, before, after)
  const others = otherCpu(coresBefore, coreReadings(scenario, options), before, after, client.clientCpuSeconds, sharedCores(scenario, options))
  aliveOrThrow(handle)
  const memory = memoryKiB(handle.pid)
  const d = delta(before, after, result.succeeded)
  const wall = Number(after.at - before.at) / 1e9
  const warnings = []
  const bad = result.requests - result.succeeded + result.errored + result.timeout
  if (bad > 0) warnings.push(`h2load: ${result.failed} failed, ${result.errored} errored, ${result.timeout} timed out of ${result.requests + result.errored} requests`)
  if (result.status2xx !== result.succeeded) warnings.push(`h2load: ${result.succeeded - result.status2xx} of ${result.succeeded} answers were not 2xx`)
  return {
    handshakes: result.succeeded,
    h2loadRuns: result.runs,
    h2loadSeconds: result.seconds,
    handshakesPerSec: result.seconds > 0 ? result.succeeded / result.seconds : null,
    // The rate over the whole loop, h2load's start-ups included.
    handshakesPerWallSec: wall > 0 ? result.succeeded / wall : null,
    cpuUsPerHandshake: d.cpuUsPerRequest,
    ctxPerHandshake: d.ctxPerRequest,
    cpuSeconds: d.cpuSeconds,
    ctxSwitches: d.ctxSwitches,
    serverCpuUtilisation: d.serverCpuUtilisation,
    ...client,
    ...others,
    h2loadTls: { protocol: result.protocol, cipher: result.cipher, group: result.group },
    rssMiB: memory.rss / 1024,
    peakRssMiB: memory.hwm / 1024,
    threads: threadCount(handle.pid),
    warnings,
  }
}

/**
 * Reads a child's output line by line: `next(timeoutMs, what)` is the next line, or a
 * rejection when none comes in time or the output ends first (the child exited).
 */
function lineReader(stream, name) {
  const queue = []
  const waiters = []
  let ended = false
  const lines = createInterface({ input: stream })
  lines.on('line', (line) => {
    if (waiters.length) waiters.shift().resolve(line)
    else queue.push(line)
  })
  lines.on('close', () => {
    ended = true
    for (const waiter of waiters.splice(0)) waiter.reject()
  })
  return (timeoutMs, what) =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise((resolve, reject) => {
          const gone = () => new Error(`${name}: its output ended before the ${what}`)
          if (ended) return reject(gone())
          const timer = setTimeout(() => reject(new Error(`${name}: no ${what} within ${timeoutMs / 1000} s`)), timeoutMs)
          waiters.push({
            resolve: (line) => {
              clearTimeout(timer)
              resolve(line)
            },
            reject: () => {
              clearTimeout(timer)
              reject(gone())
            },
          })
        })
}

/** A few requests before the idle measurement: code paths paged in, handlers compiled. */
const IDLE_WARMUP_REQUESTS = 2000
/* A user looks at RSS some time after the clients went quiet, without forcing a GC. */
const IDLE_SETTLE_MS = 6000

/**
 * RSS before and with N idle keep-alive connections open (each answered once), per
 * connection, as a user sees it: the server has served a little (not a load test, whose
 * garbage and grown heaps would hide what the connections cost), the connections arrive,
 * and RSS is read 6 s after the last answer, the answers' garbage included if the runtime
 * has not collected it by then (no GC is forced).
 */
async function measureIdle(scenario, server, options, handle) {
  await autocannon({ port: handle.port, path: '/', connections: 4, amount: IDLE_WARMUP_REQUESTS, cpus: options.clientCpu })
  await sleep(1000)
  const before = memoryKiB(handle.pid)
  const client = track(
    spawn(
      'sh',
      ['-c', RAISE_NOFILE, 'sh', 'taskset', '-c', options.clientCpu, process.execPath, join(paths.bench, 'suite', 'idle-client.mjs'), String(handle.port), String(options.idleConnections)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    ),
  )
  let stderr = ''
  client.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => client.on('exit', resolve))
  const next = lineReader(client.stdout, 'idle client')
  try {
    return await holdIdle({ client, next, exited, handle, before, options, what: 'connections', parse: JSON.parse })
  } catch (error) {
    error.message += stderr ? `\n${stderr}` : ''
    throw error
  } finally {
    client.kill('SIGKILL')
  }
}

/**
 * The idle measurement once `client` (idle-client.mjs, or ws-load idle) is opening its
 * connections: waits for them all, then 6 s, reads RSS between two `count`s, closes them,
 * and reads RSS again 1 s later. `before`: RSS before the connections.
 */
async function holdIdle({ client, next, exited, handle, before, options, what, parse }) {
  const ready = parse(await next(300_000, what))
  if (!ready.ready) throw new Error(`expected the ready line, got ${JSON.stringify(ready)}`)
  await sleep(IDLE_SETTLE_MS)
  client.stdin.write('count\n')
  const openBefore = parse(await next(10_000, 'count')).open
  const withIdle = memoryKiB(handle.pid)
  client.stdin.write('count\n')
  const openAfter = parse(await next(10_000, 'count')).open
  aliveOrThrow(handle)
  const open = Math.min(openBefore, openAfter)
  client.stdin.write('close\n')
  await exited
  await sleep(1000)
  const closed = memoryKiB(handle.pid)
  const warnings = []
  if (ready.failed) warnings.push(`${ready.failed} of ${options.idleConnections} ${what} failed (first: ${ready.firstError})`)
  if (open < ready.open) warnings.push(`${ready.open - open} ${what} were closed by the server while idle`)
  return {
    connections: open,
    opened: ready.open,
    failed: ready.failed,
    openMs: ready.ms,
    rssBeforeMiB: before.rss / 1024,
    rssAfterMiB: withIdle.rss / 1024,
    kibPerConnection: open > 0 ? (withIdle.rss - before.rss) / open : null,
    rssAfterCloseMiB: closed.rss / 1024,
    peakRssMiB: closed.hwm / 1024,
    threads: threadCount(handle.pid),
    warnings,
  }
}

/** ws-load, pinned to the client CPU under a raised open-file limit, with its output read line by line. */
function spawnWsLoad(args, options) {
  const child = track(
    spawn('sh', ['-c', RAISE_NOFILE, 'sh', 'taskset', '-c', options.clientCpu, wsLoad.binary, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }),
  )
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000)
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return { child, exited, next: lineReader(child.stdout, 'ws-load'), stderr: () => stderr }
}

/**
 * A WebSocket load run (ws-load echo or broadcast): ws-load opens its connections, warms
 * up and says when the measured window starts; the server's /proc counters are read then
 * and when its results come (a few ms off the window's edges, against seconds of load).
 */
async function measureWs(scenario, server, options, handle) {
  const args = wsLoadArgs(scenario.ws, { port: handle.port, duration: options.duration, warmup: options.warmup })
  const rssBeforeWarmup = memoryKiB(handle.pid).rss
  const load = spawnWsLoad(args, options)
  try {
    const start = parseWsLoadLine(await load.next(90_000 + options.warmup * 1000, 'start of the measured run'))
    if (start.event !== 'measure') throw new Error(`ws-load: expected {"event":"measure"}, got ${JSON.stringify(start)}`)
    const sampler = sampleRss(handle.pid, 500)
    const before = snapshot(handle.pid)
    let line
    try {
      line = await load.next((options.duration + 30) * 1000, 'results')
    } finally {
      sampler.stop()
    }
    const after = snapshot(handle.pid)
    const figures = wsFigures(parseWsLoadLine(line))
    aliveOrThrow(handle)
    const { code, signal } = await load.exited
    if (code !== 0) throw new Error(`ws-load exited with ${code ?? signal}`)
    const d = delta(before, after, figures.count)
    const memory = memoryKiB(handle.pid)
    const perMessage =
      scenario.ws.mode === 'broadcast'
        ? { cpuUsPerDelivery: d.cpuUsPerRequest, ctxPerDelivery: d.ctxPerRequest }
        : { cpuUsPerMessage: d.cpuUsPerRequest, ctxPerMessage: d.ctxPerRequest }
    return {
      ...figures,
      ...perMessage,
      cpuSeconds: d.cpuSeconds,
      ctxSwitches: d.ctxSwitches,
      serverCpuUtilisation: d.serverCpuUtilisation,
      rssBeforeWarmupMiB: rssBeforeWarmup / 1024,
      rssMiB: memory.rss / 1024,
      peakRssMiB: memory.hwm / 1024,
      threads: threadCount(handle.pid),
      command: `ws-load ${args.join(' ')}`,
      warnings: [],
    }
  } catch (error) {
    const stderr = load.stderr().trim()
    if (stderr && !error.message.includes(stderr)) error.message += `\n${stderr}`
    throw error
  } finally {
    load.child.kill('SIGKILL')
  }
}

/**
 * RSS per idle WebSocket, as idle-10k does for keep-alive connections: ws-load idle warms
 * the server up with 2,000 echoes on 4 WebSockets (then closed), RSS is read 1 s later,
 * then N WebSockets open, each has one echo, and they stay idle (see holdIdle).
 */
async function measureWsIdle(scenario, server, options, handle) {
  const args = wsLoadArgs(scenario.ws, { port: handle.port, idleConnections: options.idleConnections })
  const load = spawnWsLoad(args, options)
  try {
    const warm = parseWsLoadLine(await load.next(60_000, 'end of the warm-up'))
    if (warm.event !== 'warm') throw new Error(`ws-load: expected {"event":"warm"}, got ${JSON.stringify(warm)}`)
    await sleep(1000)
    const before = memoryKiB(handle.pid)
    load.child.stdin.write('open\n')
    const result = await holdIdle({ client: load.child, next: load.next, exited: load.exited, handle, before, options, what: 'WebSockets', parse: parseWsLoadLine })
    return { ...result, warmupMessages: warm.messages, command: `ws-load ${args.join(' ')}` }
  } catch (error) {
    const stderr = load.stderr().trim()
    if (stderr && !error.message.includes(stderr)) error.message += `\n${stderr}`
    throw error
  } finally {
    load.child.kill('SIGKILL')
  }
}

/** RSS after the first A requests, then after B in all (autocannon -a counts exactly). */
async function measureGrowth(scenario, server, options, handle) {
  const [first, last] = options.rssRequests
  const load = { port: handle.port, path: scenario.path, connections: options.connections, cpus: options.clientCpu }
  const a = await autocannon({ ...load, amount: first })
  const rssFirst = memoryKiB(handle.pid).rss
  const before = snapshot(handle.pid)
  const b = await autocannon({ ...load, amount: last - first })
  const after = snapshot(handle.pid)
  aliveOrThrow(handle)
  const memory = memoryKiB(handle.pid)
  return {
    requests: a.requests + b.requests,
    firstRequests: a.requests,
    rssFirstMiB: rssFirst / 1024,
    rssLastMiB: memory.rss / 1024,
    growthMiB: (memory.rss - rssFirst) / 1024,
    growthPct: ((memory.rss - rssFirst) / rssFirst) * 100,
    peakRssMiB: memory.hwm / 1024,
    // Throughput, latency, CPU and switches of the second, longer phase.
    requestsPerSec: b.requestsPerSec,
    p50Ms: b.p50Ms,
    p99Ms: b.p99Ms,
    ...delta(before, after, b.requests),
    threads: threadCount(handle.pid),
    warnings: [...loadWarnings(scenario, server, a), ...loadWarnings(scenario, server, b)],
  }
}

/**
 * A fixed-time h2load run (the h2 scenarios): one h2load process, its warm-up, then its
 * main duration; the server's counters are read at the two lines h2load prints as that
 * duration starts and ends (a few ms off its edges). Any request that failed, errored, timed out or
 * was answered other than 2xx, or another protocol than the scenario's, fails the measurement.
 */
async function measureH2load(scenario, server, options, handle) {
  const h1 = Boolean(scenario.h2.h1)
  const tls = Boolean(scenario.tls)
  const args = h2loadRunArgs({ port: handle.port, path: scenario.path, connections: scenario.h2.connections, streams: scenario.h2.streams, seconds: options.duration, warmup: options.warmup, tls, h1 })
  const rssBeforeWarmup = memoryKiB(handle.pid).rss
  const clientStart = { at: process.hrtime.bigint(), cpu: childrenCpuSeconds() }
  const client = track(spawn('sh', ['-c', RAISE_NOFILE, 'sh', 'taskset', '-c', options.clientCpu, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  client.stdout.on('data', (chunk) => (stdout += chunk))
  client.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => client.on('exit', (code, signal) => resolve({ code, signal })))
  const next = lineReader(client.stdout, 'h2load')
  const until = async (pattern, timeoutMs, what) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = await next(Math.max(1, deadline - Date.now()), what)
      if (pattern.test(line)) return
    }
  }
  try {
    await until(H2LOAD_MEASURE_START, (options.warmup + 30) * 1000, 'start of the main duration')
    // The counters first: a server that died in the warm-up must not leave a sampler running.
    const before = await serverSnapshot(handle)
    const sampler = sampleRss(handle.pid, 500)
    const coresBefore = coreReadings(scenario, options)
    let samples
    try {
      await until(H2LOAD_MEASURE_END, (options.duration + 30) * 1000, 'end of the main duration')
    } finally {
      samples = sampler.stop()
    }
    const after = await serverSnapshot(handle)
    const coresAfter = coreReadings(scenario, options)
    const { code, signal } = await exited
    if (code !== 0) throw new Error(`h2load exited with ${code ?? signal}`)
    aliveOrThrow(handle)
    const result = parseH2loadRun(stdout)
    const problem = h2loadProblem(result, expectedProtocol({ tls, h1 }))
    if (problem) throw new Error(problem)
    // h2load's CPU over its whole life (it may be gone by the time its last line is read),
    // as a share of its wall time: the warm-up is the same load, so the share is the window's.
    const clientWall = Number(process.hrtime.bigint() - clientStart.at) / 1e9
    const clientPct = clientWall > 0 ? ((childrenCpuSeconds() - clientStart.cpu) / clientWall) * 100 : null
    const wall = Number(after.at - before.at) / 1e9
    const clientCpuSeconds = clientPct === null ? undefined : (clientPct / 100) * wall
    const memory = memoryKiB(handle.pid)
    return {
      requests: result.succeeded,
      requestsPerSec: result.requestsPerSec,
      meanMs: result.meanMs,
      ...delta(before, after, result.succeeded),
      clientCpuSeconds,
      clientCpuPct: clientPct,
      ...otherCpu(coresBefore, coresAfter, before, after, clientCpuSeconds, sharedCores(scenario, options)),
      ...(scenario.static ? { transferMiBps: bodyMiBps(result.requestsPerSec, scenario.static.size) } : {}),
      ...rssSummary(samples),
      h2loadTls: tls ? { protocol: result.protocol, cipher: result.cipher, group: result.group, alpn: result.application } : null,
      protocol: result.application,
      trafficBytes: result.trafficBytes,
      rssBeforeWarmupMiB: rssBeforeWarmup / 1024,
      rssMiB: memory.rss / 1024,
      peakRssMiB: memory.hwm / 1024,
      threads: threadCount(handle.pid),
      command: args.join(' '),
      warnings: [],
    }
  } catch (error) {
    const tail = `${stdout.slice(-1500)}${stderr.slice(-1500)}`.trim()
    if (tail) error.message += `\n${tail}`
    throw error
  } finally {
    client.kill('SIGKILL')
  }
}

const MEASURE = { wrk: measureLoad, idle: measureIdle, growth: measureGrowth, ws: measureWs, 'ws-idle': measureWsIdle, handshake: measureHandshakes, h2load: measureH2load }

async function measure(scenario, server, options) {
  let handle
  try {
    const context = { connections: scenario.connections ?? options.connections }
    if (scenario.static) context.staticDir = staticFiles().dir
    if (scenario.ws?.env) context.env = scenario.ws.env
    if (scenario.tls) context.tls = true
    if (scenario.h2 && !scenario.h2.h1) context.h2 = true
    handle = await startServer(server, serverCpus(scenario, options), context)
    const problem = await probe(scenario, server, handle.port)
    if (problem) throw new Error(problem)
    // The h2 scenarios take what was negotiated from h2load itself (ALPN h2 among it).
    const tls = scenario.tls && !scenario.h2 ? { tls: await negotiated(handle.port) } : {}
    if (scenario.tls?.resume) {
      // Whether the server resumes at all: if not, wrk would measure full handshakes under this name.
      tls.resumption = await resumption(handle.port, { seconds: 1, cpus: options.clientCpu })
      tls.observed = await observeHandshakes(scenario, options, handle)
      const r = tls.resumption
      const o = tls.observed
      if (!r.resumes || !resumesReconnections(o)) {
        return {
          unsupported: `does not resume wrk's sessions: ${o.resumed} of wrk's ${o.full + o.resumed - OBSERVED_CONNECTIONS} reconnections resumed (s_time -reuse: ${r.reused} of ${r.reused + r.full})`,
          ...tls,
          banner: handle.output().split('\n')[0].trim(),
          warnings: [],
        }
      }
    }
    if (scenario.kind === 'handshake') {
      // Every handshake h2load makes must be a full one.
      tls.observed = await observeHandshakes(scenario, options, handle)
      if (tls.observed.resumed > 0) throw new Error(`h2load resumed ${tls.observed.resumed} of ${tls.observed.full + tls.observed.resumed} handshakes: not a full-handshake load`)
    }
    const result = await MEASURE[scenario.kind](scenario, server, options, handle)
    Object.assign(result, tls)
    result.warnings.unshift(...handle.warnings)
    if (result.serverCoreOtherPct >= OTHER_CPU_WARN_PCT) {
      result.warnings.push(`other processes used ${Math.round(result.serverCoreOtherPct)}% of the server's CPU during the run (the machine is shared): its figures are noisy`)
    }
    if ((scenario.tls || scenario.h2) && result.clientCpuPct >= CLIENT_SATURATED_PCT) {
      result.warnings.push(`the load generator used ${Math.round(result.clientCpuPct)}% of its CPU: the rate is likely its limit, not the server's (CPU per request still compares)`)
    }
    result.banner = handle.output().split('\n')[0].trim()
    return result
  } catch (error) {
    return { error: error.message }
  } finally {
    if (handle) await stopServer(handle)
  }
}

function loadDescription(scenario, options) {
  const cpus = `server on CPU ${serverCpus(scenario, options)}, client on CPU ${options.clientCpu}`
  switch (scenario.kind) {
    case 'wrk': {
      if (scenario.tls) {
        const args = wrkArgs({ port: 'PORT', path: scenario.path, connections: scenario.connections ?? options.connections, seconds: options.duration, tls: true, headers: scenario.headers ?? [] })
        const shown = args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')
        return `\`${shown}\`${scenario.tls.resume ? " after the resumption checks (`openssl s_time -connect 127.0.0.1:PORT -reuse -time 1 -www /`, then the same wrk with -c8 for 1 s through the suite's relay that reads each ServerHello)" : ''}, ${cpus}`
      }
      const script = scenario.script === 'pipeline' ? ' -s ../shared/bench/pipeline.lua' : scenario.script === 'post' ? ` -s benchmark/scripts/post.lua -- ${scenario.scriptArgs[0]}` : ''
      return `\`wrk -t1 -c${scenario.connections ?? options.connections} -d${options.duration}s --latency${script}\`, ${cpus}`
    }
    case 'handshake':
      return `\`h2load --h1 -t1 -c${scenario.tls.batch} -n${scenario.tls.batch} https://127.0.0.1:PORT${scenario.path}\` run after run for ${options.duration} s (after ${options.warmup} s of the same), the loop pinned with taskset, after one run of 64 clients through the suite's relay that reads each ServerHello (every handshake must be full); handshakes/s by h2load's own clock (without its start-ups), ${cpus}`
    case 'h2load': {
      const args = h2loadRunArgs({ port: 'PORT', path: scenario.path, connections: scenario.h2.connections, streams: scenario.h2.streams, seconds: options.duration, warmup: options.warmup, tls: Boolean(scenario.tls), h1: Boolean(scenario.h2.h1) })
      const proto = expectedProtocol({ tls: Boolean(scenario.tls), h1: Boolean(scenario.h2.h1) })
      return `\`${args.join(' ')}\` (${proto}; the server's counters read between h2load's start and end of its main duration), ${cpus}`
    }
    case 'idle':
      return `${IDLE_WARMUP_REQUESTS.toLocaleString('en-US')} requests (autocannon -c4), then ${options.idleConnections.toLocaleString('en-US')} connections opened by benchmark/suite/idle-client.mjs (one GET / each, then idle), RSS ${IDLE_SETTLE_MS / 1000} s after the last answer, no forced GC, ${cpus}`
    case 'growth':
      return `\`autocannon -c${options.connections} -a\` ${options.rssRequests[0].toLocaleString('en-US')} requests, then up to ${options.rssRequests[1].toLocaleString('en-US')} in all; throughput, latency, CPU and switches are of the second phase; ${cpus}`
    case 'ws':
      return `\`benchmark/ws-load ${wsLoadArgs(scenario.ws, { port: 'PORT', duration: options.duration, warmup: options.warmup }).join(' ')}\`${scenario.ws.env?.BENCH_WS_DEFLATE ? ' (servers started with BENCH_WS_DEFLATE=1)' : ''}, ${cpus}`
    case 'ws-idle':
      return `\`benchmark/ws-load ${wsLoadArgs(scenario.ws, { port: 'PORT', idleConnections: options.idleConnections }).join(' ')}\`: ${scenario.ws.warmupMessages.toLocaleString('en-US')} echoes on 4 WebSockets, then ${options.idleConnections.toLocaleString('en-US')} WebSockets opened (one echo each, then idle), RSS ${IDLE_SETTLE_MS / 1000} s after the last echo, no forced GC, ${cpus}`
  }
}

function progressLine(scenario, round, options, server, result) {
  const head = `  ${scenario.name} ${round}/${options.runs} ${server.label.padEnd(10)}`
  if (result.error) return `${head} FAILED: ${result.error.split('\n')[0]}`
  if (result.unsupported) return `${head} ${result.unsupported}`
  const fmt = (v, f) => (v === null || v === undefined ? 'n/a' : f(v))
  let body
  if (scenario.kind === 'idle' || scenario.kind === 'ws-idle') {
    body = `${result.connections} open, RSS ${result.rssBeforeMiB.toFixed(1)} → ${result.rssAfterMiB.toFixed(1)} MiB, ${fmt(result.kibPerConnection, (v) => v.toFixed(2))} KiB/conn`
  } else if (scenario.kind === 'ws') {
    const broadcast = scenario.ws.mode === 'broadcast'
    const rate = broadcast ? result.deliveriesPerSec : result.messagesPerSec
    const cpu = broadcast ? result.cpuUsPerDelivery : result.cpuUsPerMessage
    const ctx = broadcast ? result.ctxPerDelivery : result.ctxPerMessage
    const unit = broadcast ? 'delivery' : 'msg'
    body =
      `${Math.round(rate).toLocaleString('en-US').padStart(9)} ${broadcast ? 'deliveries' : 'msg'}/s  ` +
      `p50 ${fmt(result.p50Ms, formatMs)}  p99 ${fmt(result.p99Ms, formatMs)}  ` +
      `cpu ${fmt(cpu, (v) => v.toFixed(3))} µs/${unit}  ctx ${fmt(ctx, (v) => v.toFixed(4))}/${unit}  ` +
      `rss ${result.rssMiB.toFixed(1)} MiB  threads ${result.threads}`
  } else if (scenario.kind === 'handshake' || scenario.tls?.perHandshake) {
    body =
      `${Math.round(result.handshakesPerSec).toLocaleString('en-US').padStart(9)} handshakes/s  ` +
      `cpu ${fmt(result.cpuUsPerHandshake, (v) => v.toFixed(1))} µs/handshake  ctx ${fmt(result.ctxPerHandshake, (v) => v.toFixed(3))}/handshake  ` +
      `client cpu ${fmt(result.clientCpuPct, (v) => Math.round(v))}%  rss ${result.rssMiB.toFixed(1)} MiB  threads ${result.threads}`
  } else if (scenario.kind === 'h2load') {
    body =
      `${Math.round(result.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s  ` +
      (scenario.static ? `${fmt(result.transferMiBps, (v) => v.toFixed(1))} MiB/s  ` : '') +
      `mean ${fmt(result.meanMs, formatMs)}  cpu ${fmt(result.cpuUsPerRequest, (v) => v.toFixed(2))} µs/req  ctx ${fmt(result.ctxPerRequest, (v) => v.toFixed(3))}/req  ` +
      `rss ${result.rssMiB.toFixed(1)} MiB  client cpu ${fmt(result.clientCpuPct, (v) => Math.round(v))}%  threads ${result.threads}`
  } else if (scenario.kind === 'growth') {
    body = `RSS ${result.rssFirstMiB.toFixed(1)} → ${result.rssLastMiB.toFixed(1)} MiB (${result.growthPct.toFixed(1)}%), ${Math.round(result.requestsPerSec)} req/s, cpu ${fmt(result.cpuUsPerRequest, (v) => v.toFixed(2))} µs/req`
  } else {
    const mib = (v) => v.toFixed(1)
    body =
      `${Math.round(result.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s  ` +
      (scenario.static ? `${fmt(result.transferMiBps, mib)} MiB/s  ` : '') +
      `p50 ${fmt(result.p50Ms, formatMs)}  p99 ${fmt(result.p99Ms, formatMs)}  ` +
      `cpu ${fmt(result.cpuUsPerRequest, (v) => v.toFixed(2))} µs/req  ctx ${fmt(result.ctxPerRequest, (v) => v.toFixed(3))}/req  ` +
      (scenario.static
        ? `rss ${fmt(result.rssStartMiB, mib)} → max ${fmt(result.rssMaxMiB, mib)} → ${fmt(result.rssEndMiB, mib)} MiB (${result.rssSamples} samples)`
        : `rss ${result.rssMiB.toFixed(1)} MiB`) +
      (scenario.tls ? `  client cpu ${fmt(result.clientCpuPct, (v) => Math.round(v))}%` : '') +
      `  threads ${result.threads}`
  }
  const warn = result.warnings?.length ? `  [${result.warnings.join('; ')}]` : ''
  return `${head} ${body}${warn}`
}

function estimateSeconds(options) {
  let total = 0
  for (const scenario of options.scenarios) {
    const count = options.servers.filter((s) => applies(scenario, s)).length * options.runs
    const per =
      scenario.kind === 'wrk' || scenario.kind === 'ws' || scenario.kind === 'handshake' || scenario.kind === 'h2load'
        ? options.warmup + options.duration + 1.5 + (scenario.tls?.resume ? 1 : 0)
        : scenario.kind === 'idle' || scenario.kind === 'ws-idle'
          ? options.warmup + 8 + options.idleConnections / 2000
          : options.rssRequests[1] / 25_000 + 2
    total += count * per
  }
  return total
}

// ---------------------------------------------------------------- main

function commandLine() {
  const args = process.argv.slice(2).map((a) => (/^[\w,.:=/@+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`))
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`
  return `node benchmark/run.mjs${args.length ? ` ${args.join(' ')}` : ''}`
}

async function main() {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      killAll()
      cleanupFloor()
      cleanupStatic()
      cleanupTls()
      process.exit(130)
    })
  }
  const options = parseOptions(process.argv.slice(2))
  const unavailable = checkEnvironment(options)
  const meta = {
    date: new Date().toISOString(),
    command: commandLine(),
    // How busy the machine was (1, 5, 15 min), at the start; `loadAverageEnd` at the end.
    loadAverageStart: os.loadavg(),
    ...describe(options),
    config: {
      quick: options.quick,
      interleave: options.interleave,
      runs: options.runs,
      duration: options.duration,
      warmup: options.warmup,
      connections: options.connections,
      idleConnections: options.idleConnections,
      rssRequests: options.rssRequests,
      serverCpu: options.serverCpu,
      clientCpu: options.clientCpu,
      servers: options.servers.map((s) => ({ id: s.id, label: s.label, env: s.env })),
      scenarios: options.scenarios.map((s) => s.name),
    },
  }
  const header = headerMarkdown(meta)
  const estimate = estimateSeconds(options)
  console.log(
    `Benchmarking ${options.servers.map((s) => s.label).join(', ')} in ${options.scenarios.length} scenario(s), ` +
      `${options.runs} round(s) each: about ${estimate < 120 ? `${Math.round(estimate)} s` : `${Math.round(estimate / 60)} min`}\n`,
  )

  mkdirSync(paths.results, { recursive: true })
  const document = { ...meta, unavailable, scenarios: {}, warnings: [] }
  const sections = []
  const write = () => {
    writeFileSync(join(paths.results, `${options.out}.json`), JSON.stringify(document, null, 2) + '\n')
    const summary = summaryMarkdown(document.scenarios, options.servers)
    document.tlsOverPlain = tlsOverPlain(document.scenarios, options.servers)
    const overPlain = tlsOverPlainMarkdown(document.tlsOverPlain)
    document.h2Targets = h2Targets(document.scenarios, options.servers, { interleaved: options.interleave })
    const targets = h2TargetsMarkdown(document.h2Targets, { interleaved: options.interleave })
    const load = (l) => l.map((v) => v.toFixed(2)).join(', ')
    const busy = `Load average (1, 5, 15 min): ${load(meta.loadAverageStart)} at the start${document.loadAverageEnd ? `, ${load(document.loadAverageEnd)} at the end` : ''} (${meta.machine.cores} CPUs).`
    const md = [
      header,
      '',
      busy,
      ...(unavailable.length ? ['', ...unavailable.map((u) => `Not run: ${u.server}: ${u.reason}`)] : []),
      ...(summary ? ['', summary] : []),
      ...(overPlain ? ['', overPlain] : []),
      ...(targets ? ['', targets] : []),
      ...sections.map((s) => `\n${s}`),
    ]
    if (document.warnings.length) md.push('', '## Warnings', '', ...document.warnings.map((w) => `- ${w}`))
    writeFileSync(join(paths.results, `${options.out}.md`), md.join('\n') + '\n')
  }

  if (options.scenarios.some((s) => s.tls)) console.log(`TLS certificate (ECDSA P-256, self-signed, 2 days) in ${tlsCert().dir}\n`)
  if (options.scenarios.some((s) => s.static)) {
    const { dir, files } = staticFiles()
    console.log(`Static files in ${dir}: ${Object.entries(files).map(([name, f]) => `${name} (${f.size} bytes)`).join(', ')}\n`)
  }

  const plan = options.scenarios.map((scenario) => {
    const servers = options.servers.filter((s) => applies(scenario, s))
    const skipped = options.servers.filter((s) => !applies(scenario, s)).map((s) => ({ server: s.id, label: s.label, reason: skipReason(scenario, s) }))
    if (servers.length === 0) {
      console.log(`  ${scenario.name}: no server asked for takes part (${skipped.map((s) => `${s.label}: ${s.reason}`).join('; ')})\n`)
    }
    return { scenario, servers, skipped, rounds: [] }
  })
  const runRound = async ({ scenario, servers, rounds }, round) => {
    const results = {}
    // Rotate the order each round so that no server always runs first or last.
    const order = servers.map((_, i) => servers[(i + round) % servers.length])
    for (const server of order) {
      const result = await measure(scenario, server, options)
      results[server.id] = result
      console.log(progressLine(scenario, round + 1, options, server, result))
      const where = `${scenario.name} round ${round + 1} ${server.label}`
      if (result.error) document.warnings.push(`${where} failed: ${result.error}`)
      if (result.unsupported) document.warnings.push(`${where}: ${result.unsupported}; no figures`)
      for (const w of result.warnings ?? []) document.warnings.push(`${where}: ${w}`)
    }
    rounds.push(results)
  }
  const finish = ({ scenario, servers, skipped, rounds }) => {
    const load = loadDescription(scenario, options)
    const summary = summarise(scenario, servers, rounds)
    document.scenarios[scenario.name] = {
      kind: scenario.kind,
      title: scenario.title,
      about: scenario.about,
      load,
      metrics: scenario.metrics,
      skipped,
      ...summary,
    }
    const section = scenarioMarkdown(scenario, load, servers, summary, skipped)
    sections.push(section)
    write()
    console.log(`\n${section}\n`)
  }
  if (options.interleave) {
    // Round by round through every scenario: a scenario's round k and another's are
    // measured within minutes of each other, and their ratios are paired by round.
    for (let round = 0; round < options.runs; round++) for (const entry of plan) await runRound(entry, round)
    for (const entry of plan) finish(entry)
  } else {
    for (const entry of plan) {
      for (let round = 0; round < options.runs; round++) await runRound(entry, round)
      finish(entry)
    }
  }

  cleanupFloor()
  cleanupStatic()
  cleanupTls()
  document.loadAverageEnd = os.loadavg()
  write()
  const overPlain = tlsOverPlainMarkdown(document.tlsOverPlain)
  const targets = h2TargetsMarkdown(document.h2Targets, { interleaved: options.interleave })
  console.log(`${header}\n\n${summaryMarkdown(document.scenarios, options.servers)}\n${overPlain ? `\n${overPlain}\n` : ''}${targets ? `\n${targets}\n` : ''}`)
  if (document.warnings.length) console.log(`Warnings:\n${document.warnings.map((w) => `- ${w.split('\n')[0]}`).join('\n')}\n`)
  const rel = (f) => relative(process.cwd(), join(paths.results, f)) || f
  console.log(`Wrote ${rel(`${options.out}.md`)} and ${rel(`${options.out}.json`)}`)
}

main().catch((error) => {
  killAll()
  cleanupFloor()
  cleanupStatic()
  cleanupTls()
  console.error(error?.stack ?? error)
  process.exit(1)
})
