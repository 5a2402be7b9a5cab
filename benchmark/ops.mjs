// What operations cost (issue 17): the suite's hello load (wrk -t1 -c64, server on core 0,
// client on core 1) against harrier plain, with a JSON access log written to a file, and with
// /metrics scraped every second; server CPU per request, rounds interleaved.
// Usage: node benchmark/ops.mjs [--rounds 3] [--seconds 10]
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { paths } from './suite/paths.mjs'
import { cpuSeconds } from './suite/proc.mjs'
import { freePort } from './suite/servers.mjs'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '10' } } })
const rounds = Number(values.rounds)
const seconds = Number(values.seconds)
const dir = mkdtempSync(join(tmpdir(), 'harrier-ops-bench-'))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))


function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.on('exit', () => resolve(out))
  })
}

const VARIANTS = {
  plain: {},
  'access log (json, file)': { BENCH_ACCESS_LOG: join(dir, 'access.log') },
  'metrics scraped every second': { scrape: true },
}

async function measure(name) {
  const { scrape, ...env } = VARIANTS[name]
  const port = await freePort()
  const server = spawn('taskset', ['-c', '0', process.execPath, join(paths.root, 'benchmark', 'ops', 'harrier.mjs')], { env: { ...process.env, ...env, PORT: String(port) }, stdio: 'ignore' })
  for (let i = 0; i < 200; i++) {
    try {
      if ((await (await fetch(`http://127.0.0.1:${port}/`)).text()) === 'Hello, World!') break
    } catch {}
    await sleep(50)
  }
  const url = `http://127.0.0.1:${port}/`
  await run('taskset', ['-c', '1', 'wrk', '-t1', '-c64', '-d2s', url])
  let scraping = null
  let scrapes = 0
  if (scrape) {
    scraping = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).then(() => scrapes++, () => {})
    }, 1000)
  }
  const before = cpuSeconds(server.pid)
  const out = await run('taskset', ['-c', '1', 'wrk', '-t1', '-c64', `-d${seconds}s`, url])
  const after = cpuSeconds(server.pid)
  if (scraping) clearInterval(scraping)
  server.kill('SIGKILL')
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  return { reqPerSec: requests / seconds, cpuUsPerRequest: ((after - before) * 1e6) / requests, scrapes }
}

const results = Object.fromEntries(Object.keys(VARIANTS).map((n) => [n, []]))
for (let r = 0; r < rounds; r++) for (const name of Object.keys(VARIANTS)) results[name].push(await measure(name))
rmSync(dir, { recursive: true, force: true })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const plain = median(results.plain.map((x) => x.cpuUsPerRequest))
const lines = [
  '# Operations overhead',
  '',
  `\`node benchmark/ops.mjs --rounds ${rounds} --seconds ${seconds}\`: wrk -t1 -c64 GET / (server on core 0, client on core 1), medians of ${rounds} interleaved rounds`,
  '',
  '| variant | req/s | CPU µs/req | CPU ÷ plain |',
  '| --- | --- | --- | --- |',
  ...Object.entries(results).map(([name, xs]) => {
    const cpu = median(xs.map((x) => x.cpuUsPerRequest))
    return `| ${name} | ${Math.round(median(xs.map((x) => x.reqPerSec))).toLocaleString('en-US')} | ${cpu.toFixed(2)} | ${(cpu / plain).toFixed(3)}x |`
  }),
  '',
]
writeFileSync(join(paths.root, 'benchmark', 'results', 'ops.md'), lines.join('\n'))
console.log(lines.join('\n'))
