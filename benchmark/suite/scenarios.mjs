// The scenarios: what load each one applies, which answer it expects, which figures it
// reports. `kind` picks how it is measured (see run.mjs): `wrk` (throughput and latency
// over a fixed time), `idle` (RSS per idle keep-alive connection), `growth` (RSS after
// many requests against RSS after the first ones), `ws` (WebSocket messages over a fixed
// time, benchmark/ws-load), `ws-idle` (RSS per idle WebSocket), `handshake` (full TLS
// handshakes, one request each, h2load runs one after the other), `h2load` (a fixed-time
// h2load run: HTTP/2, or HTTP/1.1 pipelined). `tls`: over TLS (the run's certificate, see
// tls.mjs). `h2`: an HTTP/2 scenario (see h2.mjs). `default: false`: not in the set that
// runs when no --scenario is given (the WebSocket, TLS and HTTP/2 scenarios).

import { h2request } from './h2.mjs'
import { request } from './servers.mjs'
import { tlsCert } from './tls.mjs'
import { STATIC_FILES, STATIC_PREFIX, sha256, staticFiles } from './static.mjs'
import { honoScenarios, honoSkipReason } from './hono.mjs'

const HELLO = 'Hello, World!'

// How each figure is shown, and which way is better. `ratio: false` figures get no ratio
// table (differences of near-zero values, counts).
export const METRICS = {
  requestsPerSec: { title: 'req/s', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US') },
  p50Ms: { title: 'p50', better: 'lower', format: formatMs },
  p99Ms: { title: 'p99', better: 'lower', format: formatMs },
  cpuUsPerRequest: { title: 'CPU µs/req', better: 'lower', format: (v) => v.toFixed(2) },
  ctxPerRequest: { title: 'ctx sw/req', better: 'lower', format: (v) => v.toFixed(3) },
  rssMiB: { title: 'RSS MiB', better: 'lower', format: (v) => v.toFixed(1) },
  // req/s × the file's size: its ratios would repeat those of req/s.
  transferMiBps: { title: 'body MiB/s', better: 'higher', format: (v) => v.toFixed(1), ratio: false },
  // RSS sampled during the run: one ratio table (the largest sample) is enough.
  rssStartMiB: { title: 'RSS start MiB', better: 'lower', format: (v) => v.toFixed(1), ratio: false },
  rssMaxMiB: { title: 'RSS max MiB', better: 'lower', format: (v) => v.toFixed(1) },
  rssEndMiB: { title: 'RSS end MiB', better: 'lower', format: (v) => v.toFixed(1), ratio: false },
  connections: { title: 'idle conns', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US'), ratio: false },
  rssBeforeMiB: { title: 'RSS before MiB', better: 'lower', format: (v) => v.toFixed(1) },
  rssAfterMiB: { title: 'RSS idle MiB', better: 'lower', format: (v) => v.toFixed(1) },
  kibPerConnection: { title: 'KiB/conn', better: 'lower', format: (v) => v.toFixed(2) },
  rssAfterCloseMiB: { title: 'RSS closed MiB', better: 'lower', format: (v) => v.toFixed(1), ratio: false },
  rssFirstMiB: { title: 'RSS first MiB', better: 'lower', format: (v) => v.toFixed(1) },
  rssLastMiB: { title: 'RSS last MiB', better: 'lower', format: (v) => v.toFixed(1) },
  growthMiB: { title: 'growth MiB', better: 'lower', format: (v) => v.toFixed(1), ratio: false },
  growthPct: { title: 'growth %', better: 'lower', format: (v) => `${v.toFixed(1)}%`, ratio: false },
  // WebSocket scenarios: per message echoed, or per message delivered to a subscriber.
  messagesPerSec: { title: 'msg/s', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US') },
  cpuUsPerMessage: { title: 'CPU µs/msg', better: 'lower', format: (v) => v.toFixed(2) },
  ctxPerMessage: { title: 'ctx sw/msg', better: 'lower', format: (v) => v.toFixed(3) },
  deliveriesPerSec: { title: 'deliveries/s', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US') },
  cpuUsPerDelivery: { title: 'CPU µs/delivery', better: 'lower', format: (v) => v.toFixed(3) },
  ctxPerDelivery: { title: 'ctx sw/delivery', better: 'lower', format: (v) => v.toFixed(4) },
  // TLS scenarios: per handshake (one request on each connection), and the load
  // generator's own CPU (its utime + stime ÷ the run's wall time: 100 % is its whole core,
  // and then the figures per second are the client's limit, not the server's).
  handshakesPerSec: { title: 'handshakes/s', better: 'higher', format: (v) => Math.round(v).toLocaleString('en-US') },
  cpuUsPerHandshake: { title: 'CPU µs/handshake', better: 'lower', format: (v) => v.toFixed(1) },
  ctxPerHandshake: { title: 'ctx sw/handshake', better: 'lower', format: (v) => v.toFixed(3) },
  clientCpuPct: { title: 'client CPU', better: 'lower', format: (v) => `${Math.round(v)}%`, ratio: false },
  // h2load gives no percentiles: the mean time from a request's start to its answer's end.
  meanMs: { title: 'mean latency', better: 'lower', format: formatMs },
}

export function formatMs(ms) {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`
  if (ms < 1000) return `${ms.toFixed(2)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

const LOAD_METRICS = ['requestsPerSec', 'p50Ms', 'p99Ms', 'cpuUsPerRequest', 'ctxPerRequest', 'rssMiB']
const WS_ECHO_METRICS = ['messagesPerSec', 'p50Ms', 'p99Ms', 'cpuUsPerMessage', 'ctxPerMessage', 'rssMiB']
const WS_BROADCAST_METRICS = ['deliveriesPerSec', 'p50Ms', 'p99Ms', 'cpuUsPerDelivery', 'ctxPerDelivery', 'rssMiB']
const IDLE_METRICS = ['connections', 'rssBeforeMiB', 'rssAfterMiB', 'kibPerConnection', 'rssAfterCloseMiB']
const STATIC_METRICS = ['requestsPerSec', 'transferMiBps', 'p50Ms', 'p99Ms', 'cpuUsPerRequest', 'ctxPerRequest', 'rssStartMiB', 'rssMaxMiB', 'rssEndMiB']
const TLS_LOAD_METRICS = [...LOAD_METRICS, 'clientCpuPct']
const TLS_STATIC_METRICS = ['requestsPerSec', 'transferMiBps', 'p50Ms', 'p99Ms', 'cpuUsPerRequest', 'ctxPerRequest', 'rssMaxMiB', 'clientCpuPct']
const HANDSHAKE_METRICS = ['handshakesPerSec', 'cpuUsPerHandshake', 'ctxPerHandshake', 'rssMiB', 'clientCpuPct']
const H2_METRICS = ['requestsPerSec', 'meanMs', 'cpuUsPerRequest', 'ctxPerRequest', 'rssMiB', 'clientCpuPct']
const H2_STATIC_METRICS = ['requestsPerSec', 'transferMiBps', 'meanMs', 'cpuUsPerRequest', 'ctxPerRequest', 'rssMaxMiB', 'clientCpuPct']
const RESUME_METRICS = ['handshakesPerSec', 'p50Ms', 'p99Ms', 'cpuUsPerHandshake', 'ctxPerHandshake', 'rssMiB', 'clientCpuPct']

// ---------------------------------------------------------------- answers

function checkType(res, prefix) {
  const type = res.headers['content-type'] ?? ''
  return type.toLowerCase().startsWith(prefix) ? null : `content-type ${JSON.stringify(type)}, expected ${prefix}…`
}

function expectText(res) {
  if (res.status !== 200) return `status ${res.status}, expected 200`
  if (res.body.toString() !== HELLO) return `body ${JSON.stringify(res.body.toString().slice(0, 100))}, expected "${HELLO}"`
  return checkType(res, 'text/plain')
}

function expectJson(expected) {
  return (res) => {
    if (res.status !== 200) return `status ${res.status}, expected 200`
    let value
    try {
      value = JSON.parse(res.body.toString())
    } catch {
      return `body ${JSON.stringify(res.body.toString().slice(0, 100))} is not JSON`
    }
    if (JSON.stringify(value) !== JSON.stringify(expected)) return `body ${JSON.stringify(value)}, expected ${JSON.stringify(expected)}`
    return checkType(res, 'application/json')
  }
}

function echoBody(size) {
  // Not one repeated byte, so that an echo that mixes up offsets shows.
  const body = Buffer.alloc(size)
  for (let i = 0; i < size; i++) body[i] = 97 + (i % 26)
  return body
}

/** A static file's answer: 200, exactly the file's length and bytes (by sha256). */
export function expectFile(name) {
  return (res) => {
    if (res.status !== 200) return `status ${res.status}, expected 200`
    const { size, sha256: hash } = staticFiles().files[name]
    if (res.body.length !== size) return `body of ${res.body.length} bytes, expected ${size}`
    if (sha256(res.body) !== hash) return `body of ${size} bytes with sha256 ${sha256(res.body)}, not the file's ${hash}`
    return null
  }
}

// ---------------------------------------------------------------- scenarios

function loadScenario(fields) {
  return { kind: 'wrk', connections: null, script: null, scriptArgs: [], floor: false, metrics: LOAD_METRICS, expectStatus: 200, ...fields }
}

const helloProbe = { request: { path: '/' }, check: expectText }

export const SCENARIOS = [
  loadScenario({
    name: 'hello',
    title: 'GET / → "Hello, World!" (text/plain)',
    about: 'the smallest answer a handler can give: the cost of the request path itself',
    path: '/',
    probe: helloProbe,
    floor: true,
  }),
  loadScenario({
    name: 'json',
    title: 'GET /json → {"message":"Hello, World!"}',
    about: 'a handler that serialises an object to JSON',
    path: '/json',
    probe: { request: { path: '/json' }, check: expectJson({ message: HELLO }) },
  }),
  loadScenario({
    name: 'params',
    title: 'GET /users/42?q=hello → {"id":"42","q":"hello"}',
    about: 'a route parameter and a query-string value read by the handler',
    path: '/users/42?q=hello',
    probe: { request: { path: '/users/42?q=hello' }, check: expectJson({ id: '42', q: 'hello' }) },
  }),
  ...[
    ['echo-1k', 1024, '1 KiB'],
    ['echo-64k', 65536, '64 KiB'],
  ].map(([name, size, label]) =>
    loadScenario({
      name,
      title: `POST /echo with ${label} → the same ${label}`,
      about: `a request body of ${label} read whole by the handler and sent back`,
      path: '/echo',
      script: 'post',
      scriptArgs: [size],
      probe: {
        request: { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: echoBody(size) },
        check: (res) => {
          if (res.status !== 200) return `status ${res.status}, expected 200`
          if (!res.body.equals(echoBody(size))) return `echoed ${res.body.length} bytes, not the ${size} sent`
          return null
        },
      },
    }),
  ),
  loadScenario({
    name: 'pipelined',
    title: 'GET / pipelined 16 deep (../shared/bench/pipeline.lua)',
    about: '16 requests per write on each connection: per-request cost once the per-read cost is shared',
    path: '/',
    script: 'pipeline',
    probe: helloProbe,
    floor: true,
  }),
  loadScenario({
    name: 'notfound-pipelined',
    title: 'GET /nope pipelined 16 deep → 404',
    about: 'an answer that needs no handler (harrier answers it in Rust); the floor answers 200 and is the reference',
    path: '/nope',
    script: 'pipeline',
    probe: {
      request: { path: '/nope' },
      check: (res) => (res.status === 404 ? null : `status ${res.status}, expected 404`),
    },
    expectStatus: 404,
    floor: true,
  }),
  loadScenario({
    name: 'conn-1000',
    title: 'GET /, 1,000 connections',
    about: 'many busy connections: the cost of readiness polling and per-connection state',
    path: '/',
    connections: 1000,
    probe: helloProbe,
    floor: true,
  }),
  ...[
    ['conn-1', 1, 'one client waiting on each answer, the commonest load there is: every request is a wake-up of its own, and its fixed cost is paid in full'],
    ['conn-2', 2, 'two clients waiting on their answers: each wake carries one or two requests'],
  ].map(([name, connections, about]) =>
    loadScenario({
      name,
      title: `GET /, ${connections} connection${connections > 1 ? 's' : ''}`,
      about,
      path: '/',
      connections,
      probe: helloProbe,
      floor: true,
    }),
  ),
  loadScenario({
    name: 'conn-4',
    title: 'GET /, 4 connections',
    about: 'light load: little is queued, so every hand-off and wake-up shows in latency and CPU per request',
    path: '/',
    connections: 4,
    probe: helloProbe,
    floor: true,
  }),
  loadScenario({
    name: 'hello-unpinned',
    title: 'GET /, server free to use every CPU',
    about: 'the hello scenario with the server not pinned (the load generator still on its CPU): whether threads run in parallel',
    path: '/',
    serverCpus: 'all',
    probe: helloProbe,
    floor: true,
  }),
  ...[
    ['static-1k', '1k.bin', '1 KiB'],
    ['static-64k', '64k.bin', '64 KiB'],
    ['static-10m', '10m.bin', '10 MiB'],
  ].map(([name, file, label]) =>
    loadScenario({
      name,
      title: `GET ${STATIC_PREFIX}${file} → a static file of ${label} (random bytes)`,
      about:
        `a file of ${label} from disk (the page cache), the same file for every server: harrier's app.static, ` +
        'node:http with fs.createReadStream, nginx with sendfile. RSS is sampled every 0.5 s during the measured run',
      path: `${STATIC_PREFIX}${file}`,
      static: { file, size: STATIC_FILES[file] },
      probe: { request: { path: `${STATIC_PREFIX}${file}` }, check: expectFile(file) },
      metrics: STATIC_METRICS,
    }),
  ),
  {
    name: 'idle-10k',
    kind: 'idle',
    title: 'idle keep-alive connections (10,000 unless --idle-connections)',
    about: 'RSS each idle keep-alive connection costs: (RSS 6 s after the last one was answered − RSS after 2,000 warm-up requests) ÷ connections still open; no GC forced',
    probe: helloProbe,
    floor: true,
    metrics: IDLE_METRICS,
  },
  {
    name: 'rss-growth',
    kind: 'growth',
    title: 'RSS after 1,000,000 requests against after the first 100,000 (autocannon -a)',
    about: 'memory that grows with the number of requests served (a leak shows as growth)',
    path: '/',
    probe: helloProbe,
    floor: true,
    metrics: ['rssFirstMiB', 'rssLastMiB', 'growthMiB', 'growthPct', 'requestsPerSec', 'p99Ms', 'cpuUsPerRequest', 'ctxPerRequest'],
  },
  ...WS_SCENARIOS(),
  ...TLS_SCENARIOS(),
  ...H2_SCENARIOS(),
]

/**
 * The HTTP/2 scenarios (issue 15), each a fixed-time h2load run (kind `h2load`): h2c by
 * prior knowledge in cleartext, h2 by ALPN over TLS, and harrier's own HTTP/1.1 pipelined
 * 16 deep through the same h2load (`--h1`) as the reference of the same route. Not in the
 * default set: `--scenario h2` runs them all. `h2.connections` × `h2.streams`: h2load's
 * -c and -m; `h2.h1`: the HTTP/1.1 reference.
 */
function H2_SCENARIOS() {
  const h2 = (fields) => ({ kind: 'h2load', default: false, metrics: H2_METRICS, ...fields })
  const jsonProbe = { request: { path: '/json' }, check: expectJson({ message: HELLO }) }
  return [
    h2({
      name: 'h2-hello',
      title: 'GET / → "Hello, World!" over h2c (prior knowledge), h2load -c64 -m16',
      about: 'the hello over HTTP/2 in cleartext: 64 connections with 16 streams in flight each, so that each client write carries about 16 requests (as h1-pipelined-16 does)',
      path: '/',
      h2: { connections: 64, streams: 16 },
      probe: helloProbe,
    }),
    h2({
      name: 'h2-json',
      title: 'GET /json → {"message":"Hello, World!"} over h2c, h2load -c64 -m16',
      about: 'a JSON answer over HTTP/2 in cleartext (nginx: a fixed `return 200` of the same JSON)',
      path: '/json',
      h2: { connections: 64, streams: 16 },
      probe: jsonProbe,
    }),
    h2({
      name: 'h2-hello-tls',
      tls: {},
      title: 'GET / → "Hello, World!" over h2 (TLS, ALPN), h2load -c64 -m16',
      about: 'h2-hello over TLS: the handshakes happen in the warm-up, so the figures are HTTP/2 plus TLS records',
      path: '/',
      h2: { connections: 64, streams: 16 },
      probe: helloProbe,
    }),
    h2({
      name: 'h2-json-tls',
      tls: {},
      title: 'GET /json over h2 (TLS, ALPN), h2load -c64 -m16',
      about: 'h2-json over TLS',
      path: '/json',
      h2: { connections: 64, streams: 16 },
      probe: jsonProbe,
    }),
    h2({
      name: 'h2-streams-100',
      title: 'GET / over h2c, one connection with 100 streams in flight (h2load -c1 -m100)',
      about: 'many concurrent streams on one connection: stream bookkeeping, HPACK and flow control without the spread over connections',
      path: '/',
      h2: { connections: 1, streams: 100 },
      probe: helloProbe,
    }),
    h2({
      name: 'h2-static-64k',
      title: `GET ${STATIC_PREFIX}64k.bin over h2c → a static file of 64 KiB, h2load -c64 -m16`,
      about:
        "a 64 KiB file (random bytes, the page cache) over HTTP/2 in cleartext: DATA frames and flow control (h2load's windows are 2^30 − 1). " +
        "harrier's app.static, node:http2's respondWithFile, nginx's static location",
      path: `${STATIC_PREFIX}64k.bin`,
      static: { file: '64k.bin', size: STATIC_FILES['64k.bin'] },
      h2: { connections: 64, streams: 16 },
      probe: { request: { path: `${STATIC_PREFIX}64k.bin` }, check: expectFile('64k.bin') },
      metrics: H2_STATIC_METRICS,
    }),
    h2({
      name: 'h1-pipelined-16',
      title: 'GET / over HTTP/1.1, pipelined 16 deep (h2load --h1 -c64 -m16)',
      about:
        "harrier's own HTTP/1.1 for the hello, through the same client as the h2 scenarios: h2load keeps 16 requests pipelined on each of 64 connections, " +
        'the HTTP/1.1 counterpart of h2-hello (the reference of the target "h2 ≤ 3× HTTP/1.1 pipelined ×16")',
      path: '/',
      h2: { connections: 64, streams: 16, h1: true },
      probe: helloProbe,
    }),
  ]
}

/**
 * The TLS scenarios, over the run's certificate (ECDSA P-256, made with openssl at run
 * time): each server started with BENCH_TLS_CERT and BENCH_TLS_KEY, every check made over
 * TLS. Not in the default set: `--scenario tls` runs them all. `tls.batch`: clients of
 * each h2load run in tls-handshake; `tls.resume`: tls-resume checks first that the server
 * resumes sessions (openssl s_time -reuse), and reports it as not resuming otherwise.
 */
function TLS_SCENARIOS() {
  return [
    loadScenario({
      name: 'tls-hello',
      default: false,
      tls: {},
      title: 'GET / → "Hello, World!" over TLS, keep-alive, 64 connections',
      about:
        'the hello scenario over TLS: the handshakes happen once per connection at the start (before the warm-up), ' +
        'so the figures are the cost of TLS records (encrypting and decrypting) on the request path; compare with hello, its plaintext counterpart',
      path: '/',
      probe: helloProbe,
      metrics: TLS_LOAD_METRICS,
    }),
    {
      name: 'tls-handshake',
      kind: 'handshake',
      default: false,
      tls: { batch: 256 },
      title: 'full TLS handshakes, a new connection for each GET / (h2load --h1 -c256 -n256, run after run)',
      about:
        'a full TLS 1.3 handshake (ECDHE, the certificate and its ECDSA signature) for every request: h2load runs of 256 new clients ' +
        'with one request each, one run after the other; no client offers a session. The client does more crypto per handshake ' +
        '(an ECDSA verify) than the server (an ECDSA sign), so the load generator\'s core can be the limit of handshakes/s (see client CPU): ' +
        'CPU µs per handshake is the server\'s figure either way',
      path: '/',
      probe: helloProbe,
      metrics: HANDSHAKE_METRICS,
    },
    loadScenario({
      name: 'tls-resume',
      default: false,
      tls: { resume: true, perHandshake: true },
      headers: ['Connection: close'],
      title: 'resumed TLS handshakes, a new connection for each GET / (wrk -H "Connection: close")',
      about:
        'the server closes each connection after its answer and wrk reconnects, offering the session (TLS 1.3 ticket) it got before: ' +
        'an abbreviated handshake (PSK with ECDHE, no certificate, no signature) for every request. Checked first, for 1 s each, with ' +
        "openssl s_time -reuse (one session offered again and again) and with wrk itself through a relay that reads each ServerHello (every " +
        'connection offering the ticket of the one before): a server that resumes fewer than 90 % of either is reported as not resuming, without figures',
      path: '/',
      probe: helloProbe,
      metrics: RESUME_METRICS,
    }),
    loadScenario({
      name: 'tls-static-1m',
      default: false,
      tls: {},
      title: `GET ${STATIC_PREFIX}1m.bin over TLS → a static file of 1 MiB (random bytes)`,
      about:
        'a file of 1 MiB over TLS, keep-alive: encrypting the body (no sendfile: the bytes go through the TLS library). ' +
        "harrier's app.static, node:https with fs.createReadStream, nginx's static location",
      path: `${STATIC_PREFIX}1m.bin`,
      static: { file: '1m.bin', size: STATIC_FILES['1m.bin'] },
      probe: { request: { path: `${STATIC_PREFIX}1m.bin` }, check: expectFile('1m.bin') },
      metrics: TLS_STATIC_METRICS,
    }),
  ]
}

/**
 * The WebSocket scenarios, run by benchmark/ws-load (built with cargo on first use) on
 * the servers' /ws/echo and /ws/broadcast. Not in the default set: `--scenario ws` runs
 * them all. `ws.feature`: what the server must have (SERVERS[…].ws in servers.mjs);
 * `ws.env`: the server's environment in the scenario.
 */
function WS_SCENARIOS() {
  const echo = (name, size, label, binary, about, extra = {}) => ({
    name,
    kind: 'ws',
    default: false,
    title: `WebSocket echo, 64 connections × 16 messages in flight, ${label}${extra.deflate ? ', permessage-deflate' : ''}`,
    about,
    probe: null,
    metrics: WS_ECHO_METRICS,
    ws: { mode: 'echo', path: '/ws/echo', connections: 64, inflight: 16, size, binary, deflate: false, feature: 'echo', env: { BENCH_WS: '1' }, ...extra },
  })
  return [
    echo('ws-echo-32', 32, '32 B text', false, 'small text messages echoed: the per-message cost of the WebSocket path (frame parsing, unmasking, the handler, framing the answer)'),
    echo('ws-echo-4k', 4096, '4 KiB binary', true, 'binary messages of 4 KiB echoed: copies and buffering of larger frames'),
    {
      name: 'ws-broadcast',
      kind: 'ws',
      default: false,
      title: 'WebSocket broadcast, 1,000 subscribers, 64 B text, 16 publishes in flight',
      about:
        'one publisher (a subscriber too) sends, the server publishes each message to all 1,000 subscribers of the route ' +
        '(Bun and harrier: topic pub/sub; Deno and node-ws: a loop over the sockets); every subscriber must get every message in order. ' +
        'Figures per delivery (a message received by one subscriber); latency from a publish to its arrival at the last subscriber',
      probe: null,
      metrics: WS_BROADCAST_METRICS,
      ws: { mode: 'broadcast', path: '/ws/broadcast', connections: 1000, inflight: 16, size: 64, binary: false, deflate: false, feature: 'broadcast', env: { BENCH_WS: '1' } },
    },
    {
      name: 'ws-idle-10k',
      kind: 'ws-idle',
      default: false,
      title: 'idle WebSockets (10,000 unless --idle-connections)',
      about:
        'RSS each idle WebSocket costs: (RSS 6 s after the last one had its echo − RSS after 2,000 warm-up echoes on 4 WebSockets) ÷ WebSockets still open; no GC forced',
      probe: null,
      metrics: IDLE_METRICS,
      ws: { mode: 'idle', path: '/ws/echo', size: 32, warmupMessages: 2000, feature: 'echo', env: { BENCH_WS: '1' } },
    },
    echo(
      'ws-echo-deflate',
      4096,
      '4 KiB compressible text',
      false,
      'permessage-deflate on both sides: text messages of 4 KiB (a sentence repeated, with a counter) compressed by the client, inflated, echoed and compressed again by the server',
      { deflate: true, feature: 'deflate', env: { BENCH_WS: '1', BENCH_WS_DEFLATE: '1' } },
    ),
  ]
}

/** The scenarios that run when no --scenario is given. */
export const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s.default !== false)

/** Names that stand for several scenarios in --scenario. */
export const SCENARIO_GROUPS = {
  ws: SCENARIOS.filter((s) => s.ws).map((s) => s.name),
  tls: SCENARIOS.filter((s) => s.tls && !s.h2).map((s) => s.name),
  h2: SCENARIOS.filter((s) => s.h2).map((s) => s.name),
}

/**
 * Why `server` does not take part in `scenario`, or null when it does. The static
 * scenarios need a server that serves the files (harrier, node:http, nginx); the others
 * need the suite's routes, except that the floor, which answers every request head with
 * its hello, runs the `GET /`-like ones. The WebSocket scenarios need the server's ws
 * routes (and, for ws-echo-deflate, permessage-deflate); node-ws runs only those. The TLS
 * scenarios need a server that does TLS here; nginx, which has no routes, runs them too
 * (its TLS server block answers GET / with the hello).
 */
export function skipReason(scenario, server) {
  const h2 = h2SkipReason(scenario, server)
  if (h2 !== undefined) return h2
  if (scenario.tls) {
    if (!server.tls) return 'does no TLS in this suite'
    if (scenario.static) return server.static ? null : 'serves no static files in this suite'
    return server.routes || server.tlsHello ? null : 'answers only GET / (a fixed hello)'
  }
  if (scenario.ws) {
    if (server.ws?.includes(scenario.ws.feature)) return null
    if (!server.ws?.length) return 'has no WebSocket routes in this suite'
    return scenario.ws.feature === 'deflate' ? 'has no permessage-deflate' : `has no WebSocket ${scenario.ws.feature} route`
  }
  if (server.wsOnly) return 'runs only the WebSocket scenarios'
  const hono = honoSkipReason(scenario, server)
  if (hono !== undefined) return hono
  if (scenario.static) return server.static ? null : 'serves no static files in this suite'
  if (server.routes) return null
  if (server.hello && scenario.floor) return null
  return server.hello ? 'answers only GET / (a fixed hello)' : 'runs only the static-file and TLS scenarios'
}

/**
 * Who runs the HTTP/2 scenarios: the servers that speak HTTP/2 here (`h2`), the static one
 * only those that serve files; h1-pipelined-16 is harrier's own. The HTTP/2-only servers
 * (node:http2, Bun's node:http2) run nothing else. Undefined where the h2 group has no say.
 */
function h2SkipReason(scenario, server) {
  if (scenario.h2?.h1) return server.name === 'harrier' ? null : "harrier's own HTTP/1.1 reference in the h2 group"
  if (scenario.h2) {
    if (!server.h2) return server.noH2 ?? 'speaks no HTTP/2 in this suite'
    return scenario.static && !server.static ? 'serves no static files in this suite' : null
  }
  if (server.h2Only) return 'runs only the HTTP/2 scenarios'
  return undefined
}

export function applies(scenario, server) {
  return skipReason(scenario, server) === null
}

/**
 * Sends the scenario's request once and checks the answer. The floor answers every
 * request with its fixed hello, so only hello is checked on it.
 */
export async function probe(scenario, server, port) {
  // The WebSocket scenarios' load generator checks every handshake and every message itself.
  if (!scenario.probe) return null
  if (server.name === 'floor' && scenario.probe !== helloProbe) return null
  const { request: req, check } = scenario.probe
  const overH2 = Boolean(scenario.h2 && !scenario.h2.h1)
  const tls = Boolean(scenario.tls)
  const res = overH2 ? await h2request(port, { ...req, timeout: 5000, tls, ca: tls ? tlsCert().certPem : null }) : await request(port, { ...req, timeout: 5000, tls })
  if (overH2 && res.alpn !== (tls ? 'h2' : 'h2c')) return `${scenario.name}: ${server.label} spoke ${res.alpn} to an HTTP/2 client`
  const problem = server.name === 'floor' ? (res.status === 200 && res.body.toString() === HELLO ? null : expectText(res)) : check(res)
  return problem ? `${scenario.name}: ${server.label} answered ${req.method ?? 'GET'} ${req.path} wrongly: ${problem}` : null
}

// The hono group (suite/hono.mjs), not in the default set: `--scenario hono`.
SCENARIOS.push(...honoScenarios({ loadScenario, helloProbe, expectJson }))
SCENARIO_GROUPS.hono = SCENARIOS.filter((s) => s.hono).map((s) => s.name)
