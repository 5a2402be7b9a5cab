// The HTTP/2 scenarios' pieces: h2load's command line and output for a fixed-time run,
// one request over HTTP/2 for the checks (node:http2's client), and the issue's targets
// worked out from a run's results. The scenarios themselves are in scenarios.mjs (`h2`).

import http2 from 'node:http2'

import { median } from './report.mjs'
import { parseH2load } from './tls.mjs'

/**
 * h2load for a fixed-time run: `-t1 -c<connections> -m<streams>`, `--warm-up-time` then
 * `-D` seconds (its counts are those of the main duration only). `h1`: HTTP/1.1 with
 * `-m` requests pipelined on each connection (`--h1`); otherwise h2c by prior knowledge,
 * or h2 by ALPN over TLS.
 */
export function h2loadRunArgs({ port, path, connections, streams, seconds, warmup = 0, tls = false, h1 = false }) {
  const args = ['h2load', '-t1', `-c${connections}`, `-m${streams}`, '-D', String(seconds)]
  if (warmup > 0) args.push('--warm-up-time', String(warmup))
  if (h1) args.push('--h1')
  args.push(`${tls ? 'https' : 'http'}://127.0.0.1:${port}${path}`)
  return args
}

// What h2load prints when its main duration starts and ends: the suite reads the server's
// counters at these two lines, so that the warm-up and the connects stay out of them.
export const H2LOAD_MEASURE_START = /^Main benchmark duration is started/
export const H2LOAD_MEASURE_END = /^Main benchmark duration is over/

const TO_MS = { us: 1e-3, ms: 1, s: 1e3 }

/**
 * One fixed-time h2load run's output: parseH2load's counts, plus its requests/s (of the
 * main duration), the mean time for a request, the application protocol and the bytes
 * received (heads and bodies: `traffic: … total`).
 */
export function parseH2loadRun(text) {
  const out = parseH2load(text)
  const rate = /^finished in [\d.]+(?:us|ms|s), ([\d.]+) req\/s/m.exec(text)
  out.requestsPerSec = rate ? Number(rate[1]) : null
  const time = /^time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s/m.exec(text)
  out.meanMs = time ? Number(time[1]) * TO_MS[time[2]] : null
  out.application = /^Application protocol: (\S+)/m.exec(text)?.[1] ?? null
  const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(text)
  out.statusOther = codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : null
  const traffic = /^traffic: .*?\((\d+)\) total/m.exec(text)
  out.trafficBytes = traffic ? Number(traffic[1]) : null
  return out
}

/** The protocol h2load must report: HTTP/1.1 with --h1, h2 over TLS (ALPN), h2c in cleartext. */
export function expectedProtocol({ tls = false, h1 = false }) {
  return h1 ? 'http/1.1' : tls ? 'h2' : 'h2c'
}

/**
 * What is wrong with a run's counts, or null: over the expected protocol, some requests
 * succeeded, none failed, errored or timed out, and no answer was other than 2xx. (Not
 * "2xx = succeeded": h2load counts a status when the head arrives and a success when the
 * stream ends, so an answer whose head came in the warm-up and its end in the main
 * duration is a success without a status.)
 */
export function h2loadProblem(result, protocol) {
  if (result.application !== protocol) return `h2load spoke ${result.application ?? 'nothing'}, not ${protocol}`
  if (!(result.succeeded > 0)) return 'h2load had no request succeed'
  const bad = result.failed + result.errored + result.timeout
  if (bad > 0) return `h2load: ${result.failed} failed, ${result.errored} errored, ${result.timeout} timed out of ${result.requests} requests`
  if (result.statusOther === null) return 'h2load printed no status codes'
  if (result.statusOther > 0) return `h2load: ${result.statusOther} of ${result.succeeded} answers were not 2xx`
  return null
}

/**
 * One request over HTTP/2 on a session of its own, closed afterwards: h2c by prior
 * knowledge, or h2 by ALPN over TLS (the certificate checked against `ca`). Resolves as
 * `request` in servers.mjs does (`{ status, headers, body }`), plus the protocol the
 * session spoke (`alpn`: 'h2c' in cleartext).
 */
export function h2request(port, { method = 'GET', path = '/', timeout = 2000, tls = false, ca = null } = {}) {
  return new Promise((resolve, reject) => {
    const authority = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`
    const session = http2.connect(authority, tls ? { ca, ALPNProtocols: ['h2'], servername: 'localhost' } : {})
    const timer = setTimeout(() => {
      session.destroy()
      reject(new Error(`no HTTP/2 answer to ${method} ${path} within ${timeout} ms`))
    }, timeout)
    const fail = (error) => {
      clearTimeout(timer)
      session.destroy()
      reject(error)
    }
    session.on('error', fail)
    const stream = session.request({ ':method': method, ':path': path })
    stream.on('error', fail)
    let headers = null
    const chunks = []
    stream.on('response', (h) => (headers = h))
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.on('end', () => {
      clearTimeout(timer)
      const alpn = session.alpnProtocol
      session.close()
      resolve({ status: headers?.[':status'], headers: headers ?? {}, body: Buffer.concat(chunks), alpn })
    })
    stream.end()
  })
}

// ---------------------------------------------------------------- targets

/** The issue's scenarios for "ahead of node's http2 and Deno", and the peers by server name. */
const AHEAD_OF = ['node-http2', 'deno']

/**
 * The issue's targets, from one run's results (`results`: document.scenarios), for every
 * harrier column:
 * - h2-hello CPU per request ≤ 0.5× nginx's (the paired ratio of the rounds);
 * - h2-hello CPU per request ≤ 3× its own HTTP/1.1 pipelined ×16 (h1-pipelined-16): with
 *   `interleaved` (`--interleave`: each round ran both scenarios) the median of the ratios
 *   within each round, as for servers; otherwise the ratio of the medians, the two
 *   scenarios having run minutes apart;
 * - ahead of node:http2 and Deno in every h2 scenario both ran: more requests/s and less
 *   CPU per request (paired ratios).
 * Rows whose figures are missing (a scenario not run, a failed server) have null values.
 */
export function h2Targets(results, servers, { interleaved = false } = {}) {
  const harriers = servers.filter((s) => s.name === 'harrier')
  const hello = results['h2-hello']
  const h1 = results['h1-pipelined-16']
  const rows = []
  const paired = (scenario, key, a, b) => scenario?.ratios?.[key]?.[a.id]?.[b.id] ?? null
  const cpu = (scenario, s) => scenario?.servers?.[s.id]?.median?.cpuUsPerRequest ?? null
  for (const h of harriers) {
    for (const nginx of servers.filter((s) => s.name === 'nginx')) {
      const r = paired(hello, 'cpuUsPerRequest', h, nginx)
      rows.push({ server: h.id, label: h.label, target: `h2-hello CPU/req ÷ ${nginx.label}'s`, bound: '≤ 0.5×', value: r, met: r === null ? null : r <= 0.5 })
    }
    const r = interleaved ? pairedAcross(hello, h1, h) : ratioOfMedians(cpu(hello, h), cpu(h1, h))
    rows.push({ server: h.id, label: h.label, target: 'h2-hello CPU/req ÷ its own h1-pipelined-16 CPU/req', bound: '≤ 3×', value: r, met: r === null ? null : r <= 3 })
    for (const [name, scenario] of Object.entries(results)) {
      if (!name.startsWith('h2-') || !scenario.servers?.[h.id]) continue
      for (const peer of servers.filter((s) => AHEAD_OF.includes(s.name) && scenario.servers[s.id])) {
        const rps = paired(scenario, 'requestsPerSec', h, peer)
        const c = paired(scenario, 'cpuUsPerRequest', h, peer)
        rows.push({
          server: h.id,
          label: h.label,
          target: `${name}: ahead of ${peer.label} (req/s ÷, CPU/req ÷)`,
          bound: '> 1×, < 1×',
          value: rps,
          cpuRatio: c,
          met: rps === null || c === null ? null : rps > 1 && c < 1,
        })
      }
    }
  }
  return rows
}

const ratioOfMedians = (a, b) => (a !== null && b ? a / b : null)

/**
 * The median over the rounds of server `s`'s CPU per request in scenario `a` ÷ in `b`, round
 * by round (both scenarios ran in every round: `--interleave`); null without a usable pair.
 */
export function pairedAcross(a, b, s) {
  const runsA = a?.servers?.[s.id]?.runs ?? []
  const runsB = b?.servers?.[s.id]?.runs ?? []
  const ratios = []
  for (let i = 0; i < Math.min(runsA.length, runsB.length); i++) {
    const x = runsA[i]?.cpuUsPerRequest
    const y = runsB[i]?.cpuUsPerRequest
    if (!runsA[i]?.error && !runsB[i]?.error && Number.isFinite(x) && Number.isFinite(y) && y > 0) ratios.push(x / y)
  }
  return median(ratios)
}

export function h2TargetsMarkdown(rows, { interleaved = false } = {}) {
  if (!rows?.length) return ''
  const f = (v) => (v === null || v === undefined ? 'n/a' : `${v.toFixed(2)}×`)
  const table = rows.map((r) => [r.label, r.target, r.bound, r.cpuRatio === undefined ? f(r.value) : `${f(r.value)}, ${f(r.cpuRatio)}`, r.met === null ? 'n/a' : r.met ? 'met' : 'NOT met'])
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(['harrier', 'target', 'bound', 'this run', 'verdict'][i].length, ...table.map((row) => row[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  return [
    '## HTTP/2 targets (issue 15)',
    '',
    (interleaved
      ? 'Paired ratios (median over the rounds of the ratio within each round), against h1-pipelined-16 too (`--interleave`: every round ran both scenarios). '
      : 'Paired ratios (median over the rounds of the ratio within each round), except against h1-pipelined-16, a ratio of medians (another scenario, minutes apart; `--interleave` pairs them by round). ') +
      'CPU per request is the server\'s own utime + stime; requests/s may be h2load\'s limit (see client CPU).',
    '',
    line(['harrier', 'target', 'bound', 'this run', 'verdict']),
    `|${widths.map((w) => ` ${'-'.repeat(w)} `).join('|')}|`,
    ...table.map(line),
  ].join('\n')
}
