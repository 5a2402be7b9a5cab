// JavaScript on every core (issue 19): a route that burns about 100 µs of CPU per request (a
// fixed hash loop, benchmark/workers/burn.mjs), loaded by `wrk -t1 -c64`, nothing pinned:
//   harrier   serve({ module, workers: N }): N worker threads of one process, SO_REUSEPORT
//   harrier:handoff  the same with balance: 'handoff' (one accept point hands connections out)
//   node      node:http under node:cluster, N processes (and the primary)
//   bun       Bun.serve({ reusePort: true }), N processes
// for N = 1 and 2, interleaved, in the same run. Requests/s and the resident memory of the
// whole server (every process of it, summed) at the end of the load, and the server's CPU
// time per request (all its processes and threads), which the machine's other load moves less.
// Usage: node benchmark/workers.mjs [--seconds 10] [--runs 3] [--server harrier,node,bun] [--workers 1,2]
// Writes benchmark/results/workers.md and .json. Needs `npm run build` and wrk.
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { paths } from './suite/paths.mjs'
import { bunBinary, freePort } from './suite/servers.mjs'

const { values } = parseArgs({
  options: {
    server: { type: 'string', default: 'harrier,node,bun' },
    workers: { type: 'string', default: '1,2' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
  },
})
const seconds = Number(values.seconds)
const here = join(paths.root, 'benchmark', 'workers')

const SERVERS = {
  harrier: { label: 'harrier serve({ workers })', unit: 'worker threads', start: (port, n) => [spawnServer(process.execPath, [join(here, 'harrier.mjs')], port, n)] },
  // One accept point handing connections out, as on platforms whose SO_REUSEPORT does not balance.
  'harrier:handoff': { label: "harrier serve({ workers, balance: 'handoff' })", unit: 'worker threads', start: (port, n) => [spawnServer(process.execPath, [join(here, 'harrier.mjs'), 'handoff'], port, n)] },
  node: { label: 'node:http + cluster', unit: 'processes', start: (port, n) => [spawnServer(process.execPath, [join(here, 'node-cluster.mjs')], port, n)] },
  // One process per worker, each with reusePort: Bun has no cluster of its own.
  // (one shell starting them, so that they are one session, as the others are)
  bun: {
    label: 'Bun.serve reusePort',
    unit: 'processes',
    start: (port, n) => [spawnServer('sh', ['-c', `for i in $(seq ${n}); do "$0" "$1" & done; wait`, bunBinary(), join(here, 'bun.mjs')], port, n)],
  },
}

// Each server is a session of its own, and so is wrk: the kernel's autogroups share the CPU
// between sessions, so on a machine that other work keeps busy each gets a share of its own
// instead of the two splitting the share of this script's session.
function spawnServer(bin, args, port, n) {
  return spawn(bin, args, { env: { ...process.env, PORT: String(port), WORKERS: String(n) }, stdio: ['ignore', 'ignore', 'inherit'], detached: true })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The processes under `roots` (children, grandchildren), roots included. */
function tree(roots) {
  const parent = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {}
  }
  const all = new Set(roots)
  let grew = true
  while (grew) {
    grew = false
    for (const [pid, ppid] of parent) if (all.has(ppid) && !all.has(pid)) all.add(pid), (grew = true)
  }
  return [...all]
}

function rssMiB(pids) {
  let kib = 0
  for (const pid of tree(pids)) {
    try {
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    } catch {}
  }
  return kib / 1024
}

/** CPU seconds (user + system) of the processes under `pids`. */
function cpuSeconds(pids) {
  let ticks = 0
  for (const pid of tree(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12])
    } catch {}
  }
  return ticks / 100
}

async function start(name, n) {
  const port = await freePort()
  const children = SERVERS[name].start(port, n)
  for (let i = 0; i < 400; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/burn`)
      if (/^\d+$/.test(await r.text())) {
        // Every worker up: a few new connections each (the kernel spreads them).
        for (let j = 0; j < 20; j++) await (await fetch(`http://127.0.0.1:${port}/burn`, { headers: { connection: 'close' } })).text()
        return { children, port }
      }
    } catch {}
    await sleep(50)
  }
  for (const c of children) process.kill(-c.pid, 'SIGKILL')
  throw new Error(`${name} x${n} did not answer on port ${port}`)
}

function wrk(port, s) {
  return new Promise((resolve) => {
    const p = spawn('wrk', ['-t1', '-c64', `-d${s}s`, `http://127.0.0.1:${port}/burn`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.on('exit', () => resolve(out))
  })
}

async function measure(name, n) {
  const server = await start(name, n)
  try {
    await wrk(server.port, 2)
    const pids = server.children.map((c) => c.pid)
    const before = cpuSeconds(pids)
    const out = await wrk(server.port, seconds)
    const cpu = cpuSeconds(pids) - before
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
    const errors = /Non-2xx|Socket errors/.test(out) ? out.split('\n').filter((l) => /Non-2xx|Socket errors/.test(l)).join('; ') : ''
    const p99 = /99%\s+([\d.]+\w+)/.exec(out)?.[1]
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
    // harrier: connections accepted per worker (wrk's 64, the warm-up's and the checks').
    const spread = name.startsWith('harrier') ? await (await fetch(`http://127.0.0.1:${server.port}/spread`, { headers: { connection: 'close' } })).json() : undefined
    return { rps, cpuUsPerRequest: (cpu * 1e6) / requests, rssMiB: rssMiB(pids), spread, errors, latency: /Latency\s+([\d.]+\w+)/.exec(out)?.[1], p99 }
  } finally {
    // The whole session: the bun processes under their shell too.
    for (const c of server.children) process.kill(-c.pid, 'SIGKILL')
    await sleep(500)
  }
}

const names = values.server.split(',').filter(Boolean)
const counts = values.workers.split(',').map(Number)
const results = {}
for (let run = 0; run < Number(values.runs); run++) {
  for (const n of counts) {
    for (const name of names) {
      const r = await measure(name, n)
      ;(results[`${name} x${n}`] ??= []).push(r)
      console.error(`run ${run + 1}: ${name} x${n}: ${Math.round(r.rps)} req/s, ${r.cpuUsPerRequest.toFixed(0)} µs CPU/request, ${r.rssMiB.toFixed(1)} MiB${r.spread ? `, connections per worker ${r.spread.join('/')}` : ''}${r.errors ? `, ${r.errors}` : ''}`)
    }
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fig = (name, n, key) => median((results[`${name} x${n}`] ?? []).map((r) => r[key]))
const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—')
const rows = []
for (const name of names) {
  for (const n of counts) {
    const rps = fig(name, n, 'rps')
    rows.push(
      `| ${SERVERS[name].label} | ${n} ${SERVERS[name].unit} | ${Math.round(rps)} | ${fmt(rps / fig(name, counts[0], 'rps'))}x | ${fmt(rps / fig('harrier', n, 'rps'))}x | ${fmt(fig(name, n, 'cpuUsPerRequest'), 0)} | ${fmt(fig(name, n, 'rssMiB'), 1)} |`,
    )
  }
}
const lines = [
  '# Workers: JavaScript on every core',
  '',
  `\`node benchmark/workers.mjs --server ${names.join(',')} --workers ${counts.join(',')} --seconds ${seconds} --runs ${values.runs}\`: \`wrk -t1 -c64 -d${seconds}s\` on \`GET /burn\` (about 100 µs of CPU per request), nothing pinned, ${values.runs} interleaved round(s), medians.`,
  '',
  `| server | workers | req/s | ÷ its ${counts[0]} | ÷ harrier at the same count | server CPU µs/request | RSS MiB (all processes) |`,
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows,
  '',
]
if (names.includes('harrier') && names.includes('node') && counts.includes(1) && counts.includes(2)) {
  lines.push(
    `Targets: harrier 2 workers ÷ 1 worker = ${fmt(fig('harrier', 2, 'rps') / fig('harrier', 1, 'rps'))}x (≥ 1.7x); harrier 2 ÷ node cluster 2 = ${fmt(fig('harrier', 2, 'rps') / fig('node', 2, 'rps'))}x (≥ 1)` +
      (names.includes('bun') ? `; harrier 2 ÷ Bun 2 = ${fmt(fig('harrier', 2, 'rps') / fig('bun', 2, 'rps'))}x (≥ 1)` : '') +
      `; RSS harrier 2 ÷ node cluster 2 = ${fmt(fig('harrier', 2, 'rssMiB') / fig('node', 2, 'rssMiB'))} (≤ 0.6).`,
    '',
  )
}
for (const name of names.filter((n) => n.startsWith('harrier'))) {
  const spreads = counts.filter((n) => n > 1).map((n) => `${n} workers: ${results[`${name} x${n}`].map((r) => r.spread.join('/')).join(', ')}`)
  if (spreads.length > 0) lines.push(`Connections per worker of ${SERVERS[name].label}, each run (the two wrk runs' 64 each and the 21 of the checks): ${spreads.join('; ')}.`, '')
}
const md = lines.join('\n')
console.log(md)
mkdirSync(join(paths.root, 'benchmark', 'results'), { recursive: true })
writeFileSync(join(paths.root, 'benchmark', 'results', 'workers.md'), md)
writeFileSync(join(paths.root, 'benchmark', 'results', 'workers.json'), JSON.stringify(results, null, 2))
