// The streaming scenarios of issue 16, against peers, server on core 0 and client on core 1:
//   sse-fanout   1,000 open event streams, one event per stream per 100 ms from one timer;
//                server CPU per event delivered (the client counts events)
//   download-64m a 64 MiB body written from JS in 64 KiB chunks with backpressure; wrk with
//                4 connections; MiB/s and server CPU per MiB
// Usage: node benchmark/streaming.mjs [--server harrier,node,bun,deno] [--seconds 10] [--streams 1000]
// Writes benchmark/results/streaming.md and .json. Needs `npm run build`, wrk, taskset.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { paths } from './suite/paths.mjs'
import { cpuSeconds, memoryKiB } from './suite/proc.mjs'
import { bunBinary, denoBinary, freePort } from './suite/servers.mjs'

const { values } = parseArgs({
  options: {
    server: { type: 'string', default: 'harrier,harrier:uring,harrier:threads,node,bun,deno' },
    seconds: { type: 'string', default: '10' },
    streams: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '1' },
  },
})
const seconds = Number(values.seconds)
const streams = Number(values.streams)
const here = join(paths.root, 'benchmark', 'streaming')

const SERVERS = {
  harrier: { label: 'harrier', cmd: () => [process.execPath, [join(here, 'harrier.mjs')]], env: { HARRIER_DRIVER: 'inline' } },
  'harrier:threads': { label: 'harrier (threads)', cmd: () => [process.execPath, [join(here, 'harrier.mjs')]], env: { HARRIER_DRIVER: 'threads' } },
  'harrier:uring': { label: 'harrier (io_uring)', cmd: () => [process.execPath, [join(here, 'harrier.mjs')]], env: { HARRIER_DRIVER: 'inline', HARRIER_IO: 'uring' } },
  node: { label: 'node:http', cmd: () => [process.execPath, [join(here, 'node.mjs')]] },
  bun: { label: 'bun', cmd: () => [bunBinary(), [join(here, 'web.mjs')]] },
  deno: { label: 'deno', cmd: () => [denoBinary(), ['run', '--allow-net', '--allow-env', join(here, 'web.mjs')]] },
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function start(name) {
  const spec = SERVERS[name]
  if (!spec) throw new Error(`unknown server ${name} (${Object.keys(SERVERS).join(', ')})`)
  const port = await freePort()
  const [bin, args] = spec.cmd()
  const child = spawn('taskset', ['-c', '0', bin, ...args], { env: { ...process.env, ...spec.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`)
      if ((await r.text()) === 'Hello, World!') return { child, port, pid: child.pid }
    } catch {}
    await sleep(50)
  }
  child.kill('SIGKILL')
  throw new Error(`${name} did not answer on port ${port}`)
}

function stop(server) {
  server.child.kill('SIGKILL')
}

async function sse(server) {
  const client = spawn('taskset', ['-c', '1', process.execPath, join(here, 'sse-client.mjs'), String(server.port), String(streams), '3', String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  let before = null
  client.stdout.on('data', (d) => {
    out += d
    if (before === null && out.includes('measuring')) before = cpuSeconds(server.pid)
  })
  await new Promise((r) => client.on('exit', r))
  const after = cpuSeconds(server.pid)
  const result = JSON.parse(out.trim().split('\n').pop())
  const rss = memoryKiB(server.pid).rss / 1024
  return { eventsPerSec: result.events / result.seconds, cpuUsPerEvent: ((after - before) * 1e6) / result.events, rssMiB: rss }
}

async function download(server) {
  const wrk = (s) =>
    new Promise((resolve) => {
      const p = spawn('taskset', ['-c', '1', 'wrk', '-t1', '-c4', `-d${s}s`, `http://127.0.0.1:${server.port}/download`], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      p.stdout.on('data', (d) => (out += d))
      p.on('exit', () => resolve(out))
    })
  await wrk(2)
  const before = cpuSeconds(server.pid)
  const t0 = process.hrtime.bigint()
  const out = await wrk(seconds)
  const took = Number(process.hrtime.bigint() - t0) / 1e9
  const after = cpuSeconds(server.pid)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const mib = requests * 64
  return { mibPerSec: mib / took, cpuMsPerMiB: ((after - before) * 1e3) / mib, rssMiB: memoryKiB(server.pid).rss / 1024 }
}

const names = values.server.split(',').filter(Boolean)
const results = {}
for (let run = 0; run < Number(values.runs); run++) {
  for (const name of names) {
    const server = await start(name)
    try {
      const s = await sse(server)
      const d = await download(server)
      ;(results[name] ??= []).push({ ...s, ...d, downloadRssMiB: d.rssMiB, rssMiB: s.rssMiB })
      console.error(`${name}: ${JSON.stringify(results[name].at(-1))}`)
    } finally {
      stop(server)
    }
    await sleep(300)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const row = (name, key) => median(results[name].map((r) => r[key]))
const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—')
const lines = [
  `# Streaming scenarios`,
  '',
  `\`node benchmark/streaming.mjs --server ${names.join(',')} --seconds ${seconds} --streams ${streams} --runs ${values.runs}\` (server on core 0, client on core 1; medians of ${values.runs} run(s))`,
  '',
  `## sse-fanout: ${streams} streams, one event each per 100 ms`,
  '',
  '| server | events/s | CPU µs/event | RSS MiB | CPU/event ÷ harrier |',
  '| --- | --- | --- | --- | --- |',
  ...names.map((n) => `| ${SERVERS[n].label} | ${Math.round(row(n, 'eventsPerSec'))} | ${fmt(row(n, 'cpuUsPerEvent'))} | ${fmt(row(n, 'rssMiB'), 1)} | ${fmt(row(n, 'cpuUsPerEvent') / row('harrier', 'cpuUsPerEvent'))}x |`),
  '',
  '## download-64m: 64 MiB from JS chunks with backpressure, wrk -c4',
  '',
  '| server | MiB/s | CPU ms/MiB | RSS MiB | MiB/s ÷ harrier |',
  '| --- | --- | --- | --- | --- |',
  ...names.map((n) => `| ${SERVERS[n].label} | ${fmt(row(n, 'mibPerSec'), 0)} | ${fmt(row(n, 'cpuMsPerMiB'))} | ${fmt(row(n, 'downloadRssMiB'), 1)} | ${fmt(row(n, 'mibPerSec') / row('harrier', 'mibPerSec'))}x |`),
  '',
]
writeFileSync(join(paths.root, 'benchmark', 'results', 'streaming.md'), lines.join('\n'))
writeFileSync(join(paths.root, 'benchmark', 'results', 'streaming.json'), JSON.stringify({ seconds, streams, results }, null, 2))
console.log(lines.join('\n'))
