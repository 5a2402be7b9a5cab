// Under attack, still serving: harrier (default protection options) serves wrk load while
// 1,000 slowloris connections trickle request heads at it. Measures wrk's p99 latency
// without and with the attack and fails if the attack more than triples it, or if normal
// requests fail.
//
//   node benchmark/scenarios/slowloris.mjs [--connections 1000] [--duration 10] [--interval 2000] [--rounds 3]
//
// Rounds alternate a run without and a run under attack; the medians are compared.
//
// The server runs pinned to core 0, wrk and the attacker to core 1 (taskset, when present), the
// attacker at nice 19 so that its own work does not show up as wrk's latency.
// The attacker keeps `connections` sockets open; each sends a request line and then one more
// header line every `interval` ms, never the end of the head. The engine answers such a head
// with 408 after headerTimeout (10 s) and closes it; the attacker then reconnects at once, as
// slowhttptest does, so the count holds. Needs `npm run build` and wrk.
import { spawn, spawnSync } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}

/** The attack, in a process of its own: holds `count` slow connections, reports once a second. */
function attacker(port, count, interval) {
  let open = 0
  let timedOut = 0
  let reconnects = 0
  const connect = () => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let counted = false
    let timer = null
    let n = 0
    socket.on('connect', () => {
      counted = true
      open++
      socket.write(`GET /?slow HTTP/1.1\r\nHost: 127.0.0.1\r\n`)
      timer = setInterval(() => socket.write(`X-Slow-${n++}: ${'a'.repeat(8)}\r\n`), interval)
    })
    socket.on('data', (d) => {
      if (d.toString('latin1').startsWith('HTTP/1.1 408')) timedOut++
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearInterval(timer)
      if (counted) open--
      reconnects++
      setTimeout(connect, 10)
    })
  }
  for (let i = 0; i < count; i++) setTimeout(connect, i % 200) // a ramp, not a SYN burst
  setInterval(() => process.stdout.write(JSON.stringify({ open, timedOut, reconnects }) + '\n'), 1000)
}

function pinned(core, command, commandArgs) {
  const taskset = spawnSync('sh', ['-c', 'command -v taskset']).status === 0
  return taskset ? ['taskset', ['-c', String(core), command, ...commandArgs]] : [command, commandArgs]
}

/** Like `pinned`, at the lowest priority: the attacker shares wrk's core and must not slow wrk's own clock. */
function pinnedLow(core, command, commandArgs) {
  const [cmd, cmdArgs] = pinned(core, command, commandArgs)
  return ['nice', ['-n', '19', cmd, ...cmdArgs]]
}

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (!m) return NaN
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1)
}

/** Runs wrk against `url`; returns requests/s, p50/p99 in ms, and failures. */
function wrk(url, seconds) {
  const [cmd, cmdArgs] = pinned(1, 'wrk', ['-t1', '-c64', `-d${seconds}s`, '--latency', url])
  const run = spawnSync(cmd, cmdArgs, { encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr || run.stdout}`)
  const out = run.stdout
  const pct = (p) => toMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '')
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: pct(50),
    p99: pct(99),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  const connections = arg('connections', 1000)
  const seconds = arg('duration', 10)
  const interval = arg('interval', 2000)
  const rounds = arg('rounds', 3)
  const port = 20000 + Math.floor(Math.random() * 20000)
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const [cmd, cmdArgs] = pinned(0, process.execPath, ['benchmark/servers/harrier.mjs'])
  // Default protection options: no HARRIER_* overrides besides what the server file sets
  // for the suite (a long keep-alive timeout, a high connection cap).
  const server = spawn(cmd, cmdArgs, { cwd: root, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] })
  let attack = null
  const quiet = []
  const attacked = []
  let failures = 0
  try {
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (d) => d.toString().includes('listening') && resolve())
      server.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
    })
    const url = `http://127.0.0.1:${port}/`
    wrk(url, 2) // warm-up
    const show = (what, r) =>
      console.log(`${what} ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.requests} requests, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`)
    // Interleaved rounds, medians: the machine's noise hits both sides alike.
    for (let round = 1; round <= rounds; round++) {
      const baseline = wrk(url, seconds)
      quiet.push(baseline)
      show(`round ${round}, no attack:   `, baseline)

      const [acmd, aargs] = pinnedLow(1, process.execPath, [fileURLToPath(import.meta.url), '--attacker', String(port), String(connections), String(interval)])
      attack = spawn(acmd, aargs, { stdio: ['ignore', 'pipe', 'inherit'] })
      let stats = { open: 0, timedOut: 0, reconnects: 0 }
      attack.stdout.on('data', (d) => {
        for (const line of d.toString().trim().split('\n')) stats = JSON.parse(line)
      })
      const deadline = Date.now() + 15000
      while (stats.open < connections && Date.now() < deadline) await sleep(200)
      const openAtStart = stats.open
      const during = wrk(url, seconds)
      await sleep(1100)
      attacked.push(during)
      show(`round ${round}, under attack:`, during)
      console.log(
          `round ${round}, attack:       ${openAtStart} slowloris connections open when wrk started, ${stats.open} at the end; ` +
          `${stats.timedOut} heads answered 408 (headerTimeout), ${stats.reconnects} reconnects`,
      )
      if (during.non2xx > 0 || during.socketErrors > 0 || during.requests === 0 || openAtStart < connections * 0.9) failures++
      attack.kill()
      attack = null
      await sleep(500)
    }
    const p99 = median(quiet.map((r) => r.p99))
    const p99Attack = median(attacked.map((r) => r.p99))
    const ratio = p99Attack / p99
    console.log(`median p99: ${p99} ms without the attack, ${p99Attack} ms under it: ratio ${ratio.toFixed(2)} (limit 3)`)
    console.log(`median req/s: ${median(quiet.map((r) => r.rps)).toFixed(0)} without, ${median(attacked.map((r) => r.rps)).toFixed(0)} under attack`)
    if (ratio > 3 || failures > 0) {
      console.error('slowloris scenario FAILED')
      process.exitCode = 1
    } else {
      console.log('slowloris scenario passed')
    }
  } finally {
    attack?.kill()
    server.kill()
  }
}

if (args[0] === '--attacker') {
  attacker(Number(args[1]), Number(args[2]), Number(args[3]))
} else {
  await main()
}
