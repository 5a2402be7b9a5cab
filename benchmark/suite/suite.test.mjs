// Checks of the suite's own arithmetic and parsing, without servers or load:
//   node --test benchmark/suite/

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import test from 'node:test'

import { parseWrk, parseWrkBytes, wrkArgs } from './load.mjs'
import { median, scenarioMarkdown, summarise, summaryMarkdown, tlsOverPlain, tlsOverPlainMarkdown } from './report.mjs'
import { delta, rssSummary, sampleRss } from './proc.mjs'
import { DEFAULT_SCENARIOS, SCENARIOS, SCENARIO_GROUPS, applies, expectFile, probe, skipReason } from './scenarios.mjs'
import { nginxConfig, nginxHasHttp2Directive, nginxVersion, parseServerSpec } from './servers.mjs'
import { expectedProtocol, h2Targets, h2TargetsMarkdown, h2loadProblem, h2loadRunArgs, parseH2loadRun } from './h2.mjs'
import { bodyMiBps, cleanupStatic, staticFiles } from './static.mjs'
import { certArgs, h2loadArgs, parseH2load, parseSClientBrief, parseSTime, resumesReconnections, serverHelloKind } from './tls.mjs'
import { parseWsLoadLine, wsFigures, wsLoadArgs } from './ws.mjs'

const WRK_OUTPUT = `Running 2s test @ http://127.0.0.1:41234/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.20us  301.11us  12.03ms   91.02%
    Req/Sec   102.64k     4.11k  108.31k    75.00%
  Latency Distribution
     50%  573.00us
     75%  650.00us
     90%  740.00us
     99%    1.45ms
  204281 requests in 2.00s, 30.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec: 102139.87
Transfer/sec:     15.10MB
`

test('parseWrk reads counts, rates, percentiles and errors', () => {
  const r = parseWrk(WRK_OUTPUT)
  assert.equal(r.requests, 204281)
  assert.equal(r.requestsPerSec, 102139.87)
  assert.equal(r.p50Ms, 0.573)
  assert.equal(r.p99Ms, 1.45)
  assert.equal(r.non2xx, 7)
  assert.deepEqual(r.socketErrors, { connect: 0, read: 2, write: 0, timeout: 1 })
  assert.deepEqual(r.latencyWarnings, [])
})

test('parseWrk leaves out a percentile printed as 0', () => {
  const r = parseWrk(WRK_OUTPUT.replace('99%    1.45ms', '99%    0.00us'))
  assert.equal(r.p99Ms, null)
  assert.equal(r.latencyWarnings.length, 1)
})

test('delta gives CPU µs and switches per request', () => {
  const d = delta({ at: 0n, cpu: 1.0, ctx: 100 }, { at: 2_000_000_000n, cpu: 1.5, ctx: 150 }, 100_000)
  assert.equal(d.cpuUsPerRequest, 5)
  assert.equal(d.ctxPerRequest, 0.0005)
  assert.equal(d.serverCpuUtilisation, 0.25)
})

test('median', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 2, 3]), 2.5)
  assert.equal(median([null, 5]), 5)
  assert.equal(median([]), null)
})

test('ratios pair the figures of one round, then take the median', () => {
  const scenario = SCENARIOS.find((s) => s.name === 'hello')
  const servers = [parseServerSpec('harrier'), parseServerSpec('deno')]
  const figures = (rps, cpu) => ({ requestsPerSec: rps, cpuUsPerRequest: cpu, p50Ms: 1, p99Ms: 2, ctxPerRequest: 0.1, rssMiB: 50 })
  const rounds = [
    { harrier: figures(200, 5), deno: figures(100, 10) }, // 2x, 0.5x
    { harrier: figures(90, 5), deno: figures(30, 10) }, // 3x
    { harrier: figures(100, 5), deno: { error: 'died' } }, // no pair
    { harrier: figures(120, 5), deno: figures(100, 10) }, // 1.2x
  ]
  const s = summarise(scenario, servers, rounds)
  assert.equal(s.ratios.requestsPerSec.harrier.deno, 2)
  assert.equal(s.ratios.cpuUsPerRequest.harrier.deno, 0.5)
  assert.equal(s.ratios.requestsPerSec.deno.harrier, 0.5)
  assert.equal(s.servers.deno.failed, 1)
  assert.equal(s.servers.harrier.median.requestsPerSec, 110)
  assert.equal(s.ratiosOfMedians.requestsPerSec.harrier.deno, 110 / 100)
  const table = summaryMarkdown({ hello: { kind: 'wrk', ...s } }, servers)
  assert.match(table, /\| hello +\| +110 · 5\.00 µs \| +100 · 10\.00 µs \|/)
})

test('server specs: names, aliases, variants', () => {
  assert.equal(parseServerSpec('node:http').id, 'node')
  assert.equal(parseServerSpec('Bun.serve').id, 'bun')
  assert.equal(parseServerSpec('nope'), null)
  const v = parseServerSpec('harrier:HARRIER_DRIVER=threads')
  assert.equal(v.id, 'harrier:HARRIER_DRIVER=threads')
  assert.equal(v.label, 'harrier (HARRIER_DRIVER=threads)')
  assert.deepEqual(v.env, { HARRIER_DRIVER: 'threads' })
  assert.throws(() => parseServerSpec('harrier:oops'))
})

// ---------------------------------------------------------------- static files, nginx

test('parseWrk reads the transfer rate and bytes read (binary prefixes)', () => {
  const r = parseWrk(WRK_OUTPUT)
  assert.equal(r.transferBytesPerSec, 15.1 * 2 ** 20)
  assert.equal(r.bytesRead, 30.2 * 2 ** 20)
  assert.equal(parseWrkBytes('512.00KB'), 512 * 1024)
  assert.equal(parseWrkBytes('100.00B'), 100)
  assert.equal(parseWrkBytes('1.50GB'), 1.5 * 2 ** 30)
  assert.throws(() => parseWrkBytes('12 MB/s'))
  const noTransfer = parseWrk(WRK_OUTPUT.replace(/^Transfer\/sec:.*$/m, ''))
  assert.equal(noTransfer.transferBytesPerSec, null)
})

test('body MiB/s is requests/s × file size', () => {
  assert.equal(bodyMiBps(1024, 1024 * 1024), 1024)
  assert.equal(bodyMiBps(2048, 1024), 2)
  assert.equal(bodyMiBps(null, 1024), null)
})

test('rssSummary: first, largest and last sample in MiB, unreadable ones skipped', () => {
  assert.deepEqual(rssSummary([10 * 1024, null, 30 * 1024, 20 * 1024]), { rssStartMiB: 10, rssMaxMiB: 30, rssEndMiB: 20, rssSamples: 3 })
  assert.deepEqual(rssSummary([5 * 1024]), { rssStartMiB: 5, rssMaxMiB: 5, rssEndMiB: 5, rssSamples: 1 })
  assert.deepEqual(rssSummary([null]), { rssStartMiB: null, rssMaxMiB: null, rssEndMiB: null, rssSamples: 0 })
})

test('sampleRss samples at start, on its interval and at stop', async () => {
  const sampler = sampleRss(process.pid, 10)
  await new Promise((resolve) => setTimeout(resolve, 55))
  const samples = sampler.stop()
  assert.ok(samples.length >= 3, `${samples.length} samples`)
  assert.ok(samples.every((kib) => Number.isInteger(kib) && kib > 0))
  const gone = sampleRss(2 ** 22 + 12345, 1000).stop() // no such pid
  assert.deepEqual(gone, [null, null])
})

test('static scenarios: who takes part, and why the others do not', () => {
  const scenario = (name) => SCENARIOS.find((s) => s.name === name)
  const server = (name) => parseServerSpec(name)
  for (const name of ['static-1k', 'static-64k', 'static-10m']) {
    assert.ok(scenario(name).static, name)
    assert.ok(scenario(name).metrics.includes('transferMiBps'))
    assert.ok(['rssStartMiB', 'rssMaxMiB', 'rssEndMiB'].every((m) => scenario(name).metrics.includes(m)))
  }
  assert.equal(scenario('static-10m').static.size, 10 * 2 ** 20)
  assert.equal(scenario('static-64k').path, '/static/64k.bin')
  for (const name of ['harrier', 'node', 'nginx', 'harrier:HARRIER_IO=uring', 'deno', 'bun']) assert.equal(skipReason(scenario('static-1k'), server(name)), null, name)
  for (const name of ['fastify', 'floor']) assert.match(skipReason(scenario('static-1k'), server(name)), /no static files/, name)
  assert.match(skipReason(scenario('hello'), server('nginx')), /only the static-file and TLS scenarios/)
  assert.equal(applies(scenario('hello'), server('floor')), true)
  assert.match(skipReason(scenario('json'), server('floor')), /only GET \//)
  assert.equal(applies(scenario('json'), server('harrier')), true)
})

test('a static answer is checked for status, length and sha256', () => {
  try {
    const { dir, files } = staticFiles()
    const body = readFileSync(join(dir, '64k.bin'))
    assert.equal(body.length, 65536)
    assert.equal(files['64k.bin'].size, 65536)
    const check = expectFile('64k.bin')
    assert.equal(check({ status: 200, body }), null)
    assert.match(check({ status: 404, body }), /status 404/)
    assert.match(check({ status: 200, body: body.subarray(1) }), /65535 bytes, expected 65536/)
    const changed = Buffer.from(body)
    changed[100] ^= 1
    assert.match(check({ status: 200, body: changed }), /sha256/)
  } finally {
    cleanupStatic()
  }
})

test('nginx config: one foreground process, paths in its directory, the files under /static/', () => {
  const conf = nginxConfig({ dir: '/tmp/x', port: 4321, staticDir: '/tmp/files', connections: 64, configure: 'nginx version: nginx/1.22.1\n--without-http_uwsgi_module' })
  for (const line of [
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    'pid /tmp/x/nginx.pid;',
    'error_log /tmp/x/error.log;',
    'sendfile on;',
    'tcp_nopush on;',
    'tcp_nodelay on;',
    'access_log off;',
    'keepalive_requests 100000;',
    'listen 127.0.0.1:4321;',
    'alias /tmp/files/;',
    'client_body_temp_path /tmp/x/client_body;',
    'scgi_temp_path /tmp/x/scgi;',
  ]) {
    assert.ok(conf.includes(line), line)
  }
  assert.ok(!conf.includes('uwsgi_temp_path'), 'no directive of a module nginx lacks')
  assert.match(conf, /location \/static\/ \{\s+alias \/tmp\/files\/;/)
})

test('reports: static summary cells, servers not run in a scenario', () => {
  const scenario = SCENARIOS.find((s) => s.name === 'static-64k')
  const servers = [parseServerSpec('harrier'), parseServerSpec('nginx')]
  const figures = (rps, cpu, rss) => ({
    requestsPerSec: rps,
    transferMiBps: rps / 16,
    p50Ms: 1,
    p99Ms: 2,
    cpuUsPerRequest: cpu,
    ctxPerRequest: 0.1,
    rssStartMiB: rss,
    rssMaxMiB: rss + 1,
    rssEndMiB: rss,
  })
  const s = summarise(scenario, servers, [{ harrier: figures(1600, 20, 40), nginx: figures(3200, 10, 3) }])
  assert.equal(s.ratios.requestsPerSec.harrier.nginx, 0.5)
  assert.equal(s.ratios.transferMiBps, undefined) // the same as req/s
  assert.equal(s.servers.nginx.median.transferMiBps, 200)
  assert.equal(s.ratios.rssMaxMiB.nginx.harrier, 4 / 41)
  const table = summaryMarkdown({ 'static-64k': { kind: 'wrk', metrics: scenario.metrics, ...s } }, servers)
  assert.match(table, /\| static-64k +\| +1,600 · 20\.00 µs · 100\.0 MiB\/s \| +3,200 · 10\.00 µs · 200\.0 MiB\/s \|/)
  const md = scenarioMarkdown(scenario, 'wrk', servers, s, [{ label: 'fastify', reason: 'serves no static files in this suite' }])
  assert.match(md, /Not run here: fastify \(serves no static files in this suite\)\./)
  assert.match(md, /\| server +\| +req\/s \| +body MiB\/s \|.*RSS start MiB \| +RSS max MiB \| +RSS end MiB \|/)
})

test('a harrier variant by environment: HARRIER_IO', () => {
  const v = parseServerSpec('harrier:HARRIER_IO=uring')
  assert.equal(v.id, 'harrier:HARRIER_IO=uring')
  assert.equal(v.label, 'harrier (HARRIER_IO=uring)')
  assert.deepEqual(v.env, { HARRIER_IO: 'uring' })
  assert.equal(v.static, true)
  assert.equal(parseServerSpec('nginx').runtime, 'nginx')
})

// ---------------------------------------------------------------- WebSocket scenarios

// ws-load's lines, as printed by benchmark/ws-load (src/main.rs).
const WS_ECHO_LINE =
  '{"mode":"echo","connections":64,"messages":2416784,"messagesPerSec":805594.7,"p50Ms":0.4050,"p90Ms":0.4377,"p99Ms":0.8216,"maxMs":3.2405,' +
  '"url":"ws://127.0.0.1:9101/ws/echo","size":32,"binary":false,"deflate":false,"extensions":null,"inflight":16,"seconds":3.0000,"setupMs":3}'
const WS_BROADCAST_LINE =
  '{"mode":"broadcast","subscribers":1000,"publishes":2071,"publishesPerSec":2070.2,"deliveries":2071000,"deliveriesPerSec":2070172.1,' +
  '"p50Ms":7.6235,"p90Ms":7.7540,"p99Ms":10.2742,"maxMs":18.2228,"url":"ws://127.0.0.1:9101/ws/broadcast","size":64,"binary":false,' +
  '"deflate":true,"extensions":"permessage-deflate; server_no_context_takeover","inflight":16,"seconds":1.0004,"setupMs":26}'

test('ws-load output: events, echo and broadcast results, errors', () => {
  assert.deepEqual(parseWsLoadLine('{"event":"measure"}'), { event: 'measure' })
  const echo = wsFigures(parseWsLoadLine(WS_ECHO_LINE))
  assert.equal(echo.count, 2416784)
  assert.equal(echo.messagesPerSec, 805594.7)
  assert.equal(echo.p50Ms, 0.405)
  assert.equal(echo.p99Ms, 0.8216)
  assert.equal(echo.seconds, 3)
  assert.equal(echo.extensions, null)
  const broadcast = wsFigures(parseWsLoadLine(WS_BROADCAST_LINE))
  assert.equal(broadcast.count, 2071000)
  assert.equal(broadcast.deliveriesPerSec, 2070172.1)
  assert.equal(broadcast.publishes, 2071)
  assert.equal(broadcast.subscribers, 1000)
  assert.equal(broadcast.extensions, 'permessage-deflate; server_no_context_takeover')
  assert.throws(
    () => parseWsLoadLine('{"error":"connection 0: handshake answered \\"HTTP/1.1 404 Not Found\\""}'),
    /^Error: ws-load: connection 0: handshake answered "HTTP\/1.1 404 Not Found"$/,
  )
  assert.throws(() => parseWsLoadLine('thread main panicked'), /not JSON/)
  assert.throws(() => parseWsLoadLine('42'), /not an object/)
  assert.throws(() => wsFigures({ mode: 'echo', seconds: 1 }), /no messages/)
  assert.throws(() => wsFigures({ mode: 'nope' }), /mode/)
  // The idle mode's lines go through the same parser.
  assert.equal(parseWsLoadLine('{"ready":true,"open":10000,"failed":0,"firstError":null,"ms":684}').open, 10000)
})

test('ws scenarios: ws-load command lines', () => {
  const scenario = (name) => SCENARIOS.find((s) => s.name === name)
  const run = { port: 4321, duration: 3, warmup: 1, idleConnections: 10000 }
  assert.deepEqual(wsLoadArgs(scenario('ws-echo-32').ws, run), [
    'echo', '--url', 'ws://127.0.0.1:4321/ws/echo', '--connections', '64', '--inflight', '16', '--size', '32', '--text', '--duration', '3', '--warmup', '1',
  ])
  assert.deepEqual(wsLoadArgs(scenario('ws-echo-4k').ws, run).slice(8, 11), ['4096', '--binary', '--duration'])
  assert.ok(wsLoadArgs(scenario('ws-echo-deflate').ws, run).includes('--deflate'))
  assert.equal(scenario('ws-echo-deflate').ws.env.BENCH_WS_DEFLATE, '1')
  assert.deepEqual(wsLoadArgs(scenario('ws-broadcast').ws, run).slice(0, 9), [
    'broadcast', '--url', 'ws://127.0.0.1:4321/ws/broadcast', '--connections', '1000', '--inflight', '16', '--size', '64',
  ])
  assert.deepEqual(wsLoadArgs(scenario('ws-idle-10k').ws, run), [
    'idle', '--url', 'ws://127.0.0.1:4321/ws/echo', '--connections', '10000', '--size', '32', '--warmup-messages', '2000',
  ])
})

test('ws scenarios: not in the default set, who takes part, and why the others do not', async () => {
  const names = ['ws-echo-32', 'ws-echo-4k', 'ws-broadcast', 'ws-idle-10k', 'ws-echo-deflate']
  assert.deepEqual(SCENARIO_GROUPS.ws, names)
  assert.ok(!DEFAULT_SCENARIOS.some((s) => s.ws))
  assert.ok(DEFAULT_SCENARIOS.some((s) => s.name === 'hello'))
  const scenario = (name) => SCENARIOS.find((s) => s.name === name)
  const server = (name) => parseServerSpec(name)
  for (const name of names) {
    for (const id of ['harrier', 'bun', 'node-ws', 'harrier:HARRIER_DRIVER=threads']) assert.equal(skipReason(scenario(name), server(id)), null, `${name} ${id}`)
    for (const id of ['node', 'fastify', 'floor', 'nginx']) assert.match(skipReason(scenario(name), server(id)), /no WebSocket routes/, `${name} ${id}`)
    assert.equal(await probe(scenario(name), server('bun'), 1), null) // ws-load checks the answers itself
  }
  for (const name of names.filter((n) => n !== 'ws-echo-deflate')) assert.equal(applies(scenario(name), server('deno')), true, name)
  assert.match(skipReason(scenario('ws-echo-deflate'), server('deno')), /no permessage-deflate/)
  assert.match(skipReason(scenario('hello'), server('node-ws')), /only the WebSocket scenarios/)
  assert.match(skipReason(scenario('idle-10k'), server('node-ws')), /only the WebSocket scenarios/)
  assert.equal(parseServerSpec('node+ws').id, 'node-ws')
})

test('ws reports: per-message figures, ratios, summary cells', () => {
  const echo = SCENARIOS.find((s) => s.name === 'ws-echo-32')
  const servers = [parseServerSpec('harrier'), parseServerSpec('bun'), parseServerSpec('deno')]
  const figures = (rate, cpu) => ({ messagesPerSec: rate, p50Ms: 1, p99Ms: 2, cpuUsPerMessage: cpu, ctxPerMessage: 0.01, rssMiB: 50 })
  const s = summarise(echo, servers, [{ harrier: { error: 'harrier exited before answering' }, bun: figures(800_000, 0.5), deno: figures(100_000, 5) }])
  assert.equal(s.ratios.messagesPerSec.bun.deno, 8)
  assert.equal(s.ratios.cpuUsPerMessage.bun.deno, 0.1)
  assert.equal(s.ratios.cpuUsPerMessage.harrier.bun, null)
  assert.equal(s.servers.harrier.failed, 1)
  const idle = SCENARIOS.find((s) => s.name === 'ws-idle-10k')
  const si = summarise(idle, servers.slice(1, 2), [{ bun: { connections: 10000, rssBeforeMiB: 30, rssAfterMiB: 44, kibPerConnection: 1.4, rssAfterCloseMiB: 35 } }])
  const broadcast = SCENARIOS.find((s) => s.name === 'ws-broadcast')
  const sb = summarise(broadcast, servers.slice(1, 2), [{ bun: { deliveriesPerSec: 950_000, p50Ms: 14, p99Ms: 38, cpuUsPerDelivery: 0.509, ctxPerDelivery: 0.0004, rssMiB: 33 } }])
  const table = summaryMarkdown(
    {
      'ws-echo-32': { kind: 'ws', metrics: echo.metrics, ...s },
      'ws-broadcast': { kind: 'ws', metrics: broadcast.metrics, ...sb },
      'ws-idle-10k': { kind: 'ws-idle', metrics: idle.metrics, ...si },
    },
    servers,
  )
  assert.match(table, /\| ws-echo-32 +\| +failed \| +800,000 · 0\.50 µs \| +100,000 · 5\.00 µs \|/)
  assert.match(table, /\| ws-broadcast +\| +— \| +950,000 · 0\.509 µs \| +— \|/)
  assert.match(table, /\| ws-idle-10k +\| +— \| +1\.40 KiB \| +— \|/)
  const md = scenarioMarkdown(echo, 'ws-load', servers, s, [{ label: 'node:http', reason: 'has no WebSocket routes in this suite' }])
  assert.match(md, /\| server +\| +msg\/s \| +p50 \| +p99 \| +CPU µs\/msg \| +ctx sw\/msg \| +RSS MiB \|/)
  assert.match(md, /Not run here: node:http \(has no WebSocket routes in this suite\)\./)
})

// ---------------------------------------------------------------- TLS scenarios

test('tls scenarios: not in the default set, the group, who takes part, and why the others do not', () => {
  const names = ['tls-hello', 'tls-handshake', 'tls-resume', 'tls-static-1m']
  assert.deepEqual(SCENARIO_GROUPS.tls, names)
  assert.ok(!DEFAULT_SCENARIOS.some((s) => s.tls))
  const scenario = (name) => SCENARIOS.find((s) => s.name === name)
  const server = (name) => parseServerSpec(name)
  for (const name of ['tls-hello', 'tls-handshake', 'tls-resume']) {
    for (const id of ['harrier', 'harrier:HARRIER_DRIVER=threads', 'node', 'fastify', 'bun', 'deno', 'nginx']) assert.equal(skipReason(scenario(name), server(id)), null, `${name} ${id}`)
    for (const id of ['floor', 'node-ws']) assert.match(skipReason(scenario(name), server(id)), /no TLS/, `${name} ${id}`)
  }
  for (const id of ['harrier', 'node', 'nginx', 'bun', 'deno']) assert.equal(applies(scenario('tls-static-1m'), server(id)), true, id)
  assert.match(skipReason(scenario('tls-static-1m'), server('fastify')), /no static files/)
  assert.equal(scenario('tls-static-1m').static.size, 2 ** 20)
  assert.equal(scenario('tls-static-1m').path, '/static/1m.bin')
  assert.equal(scenario('tls-handshake').kind, 'handshake')
  assert.ok(scenario('tls-resume').tls.resume)
  assert.deepEqual(scenario('tls-resume').headers, ['Connection: close'])
  // Plaintext nginx still runs only the static files.
  assert.match(skipReason(scenario('hello'), server('nginx')), /static-file and TLS/)
  assert.equal(applies(scenario('static-1k'), server('nginx')), true)
})

test('tls: wrk and h2load command lines, the certificate command', () => {
  assert.deepEqual(wrkArgs({ port: 4321, path: '/', connections: 64, seconds: 3, tls: true, headers: ['Connection: close'] }), [
    'wrk', '-t1', '-c64', '-d3s', '--timeout', '10s', '--latency', '-H', 'Connection: close', 'https://127.0.0.1:4321/',
  ])
  assert.equal(wrkArgs({ port: 1, path: '/x', connections: 4, seconds: 1 }).at(-1), 'http://127.0.0.1:1/x')
  assert.deepEqual(h2loadArgs({ port: 4321, batch: 256 }), ['h2load', '--h1', '-t1', '-c256', '-n256', 'https://127.0.0.1:4321/'])
  const cert = certArgs('/tmp/c').join(' ')
  assert.ok(cert.includes('-newkey ec -pkeyopt ec_paramgen_curve:prime256v1'))
  assert.ok(cert.includes('subjectAltName=DNS:localhost,IP:127.0.0.1'))
  assert.ok(cert.includes('-keyout /tmp/c/key.pem -out /tmp/c/cert.pem'))
})

const H2LOAD_RUN = `starting benchmark...
spawning thread #0: 256 total client(s). 256 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: http/1.1
progress: 10% done

finished in 96.12ms, 2663.34 req/s, 418.74KB/s
requests: 256 total, 256 started, 256 done, 255 succeeded, 1 failed, 0 errored, 0 timeout
status codes: 255 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 40.25KB (41216) total, 30.25KB (30976) headers (space savings 0.00%), 3.25KB (3328) data
`

test('h2load output: runs one after the other added up', () => {
  const one = parseH2load(H2LOAD_RUN)
  assert.equal(one.runs, 1)
  assert.ok(Math.abs(one.seconds - 0.09612) < 1e-12)
  assert.equal(one.succeeded, 255)
  assert.equal(one.failed, 1)
  assert.equal(one.status2xx, 255)
  assert.equal(one.cipher, 'TLS_AES_128_GCM_SHA256')
  assert.equal(one.group, 'X25519')
  const two = parseH2load(H2LOAD_RUN + H2LOAD_RUN.replace('96.12ms', '1.5s'))
  assert.equal(two.runs, 2)
  assert.equal(two.succeeded, 510)
  assert.ok(Math.abs(two.seconds - 1.59612) < 1e-9)
  assert.equal(parseH2load('h2load: no such host').runs, 0)
})

test('openssl output: s_client -brief, s_time with resumed and new connections', () => {
  const brief = `CONNECTION ESTABLISHED
Protocol version: TLSv1.3
Ciphersuite: TLS_AES_256_GCM_SHA384
Peer certificate: CN = localhost
Hash used: SHA256
Signature type: ECDSA
Verification error: self-signed certificate
Server Temp Key: X25519, 253 bits
DONE`
  assert.deepEqual(parseSClientBrief(brief), { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', group: 'X25519', signature: 'ECDSA' })
  assert.equal(parseSClientBrief('nothing').protocol, null)
  const reused = parseSTime(`Collecting connection statistics for 1 seconds
rrrrrrrrrr
rrr*

14 connections in 0.03s; 466.67 connections/user sec, bytes read 2184
14 connections in 2 real seconds, 156 bytes read per connection
`)
  assert.deepEqual(reused, { connections: 14, userSeconds: 0.03, reused: 13, full: 1 })
  const none = parseSTime('starting\n*****\n\n5 connections in 0.01s; 500.00 connections/user sec, bytes read 0\n')
  assert.equal(none.reused, 0)
  assert.equal(none.full, 5)
})

test('tls reports: handshake cells, a server that does not resume, TLS against plaintext', () => {
  const resume = SCENARIOS.find((s) => s.name === 'tls-resume')
  const servers = [parseServerSpec('harrier'), parseServerSpec('nginx'), parseServerSpec('deno')]
  const figures = (rate, cpu) => ({ handshakesPerSec: rate, p50Ms: 1, p99Ms: 2, cpuUsPerHandshake: cpu, ctxPerHandshake: 0.1, rssMiB: 20, clientCpuPct: 80 })
  const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', group: 'X25519' }
  const s = summarise(resume, servers, [
    {
      harrier: { ...figures(4000, 50), tls, resumption: { reused: 99, full: 1, resumes: true } },
      nginx: { ...figures(2000, 100), tls, resumption: { reused: 100, full: 0, resumes: true } },
      deno: { unsupported: 'does not resume sessions: 0 of 50 resumed', tls, resumption: { reused: 0, full: 50, resumes: false } },
    },
  ])
  assert.equal(s.ratios.handshakesPerSec.harrier.nginx, 2)
  assert.equal(s.ratios.cpuUsPerHandshake.harrier.deno, null)
  assert.equal(s.servers.deno.failed, 0)
  assert.equal(s.servers.deno.unsupported, 1)
  assert.equal(s.servers.deno.median.handshakesPerSec, null)
  assert.equal(s.ratios.clientCpuPct, undefined) // no ratio table for the client's CPU
  const md = scenarioMarkdown(resume, 'wrk', servers, s)
  assert.match(md, /Negotiated \(openssl s_client[^)]*\): harrier TLSv1\.3 TLS_AES_256_GCM_SHA384 X25519; nginx/)
  assert.match(md, /Session resumption \(openssl s_time -reuse, 1 s before the load\): harrier 99 of 100 resumed; nginx 100 of 100 resumed; deno 0 of 50 resumed \(does not resume\)\./)
  assert.match(md, /\| deno \(does not resume sessions: 0 of 50 resumed\) +\| +— \|/)
  assert.match(md, /\| server +\| +handshakes\/s \| +p50 \| +p99 \| +CPU µs\/handshake \| +ctx sw\/handshake \| +RSS MiB \| +client CPU \|/)
  const table = summaryMarkdown({ 'tls-resume': { kind: 'wrk', metrics: resume.metrics, ...s } }, servers)
  assert.match(table, /\| tls-resume +\| +4,000 · 50\.0 µs \| +2,000 · 100\.0 µs \| +not resumed \|/)

  // tls-hello against hello, per server, in one run.
  const hello = SCENARIOS.find((x) => x.name === 'hello')
  const tlsHello = SCENARIOS.find((x) => x.name === 'tls-hello')
  const load = (rps, cpu) => ({ requestsPerSec: rps, cpuUsPerRequest: cpu, p50Ms: 1, p99Ms: 2, ctxPerRequest: 0.1, rssMiB: 50, clientCpuPct: 90 })
  const two = servers.slice(0, 2)
  const results = {
    hello: summarise(hello, two, [{ harrier: load(100_000, 4), nginx: load(90_000, 5) }]),
    'tls-hello': summarise(tlsHello, two, [{ harrier: load(80_000, 5), nginx: load(70_000, 7) }]),
  }
  const rows = tlsOverPlain(results, two)
  assert.equal(rows.harrier.cpuRatio, 1.25)
  assert.equal(rows.nginx.cpuRatio, 1.4)
  assert.equal(rows.harrier.requestsRatio, 0.8)
  const text = tlsOverPlainMarkdown(rows)
  assert.match(text, /\| harrier +\| +4\.00 \| +5\.00 \| +1\.25× \(≤ 1\.3×: met\) \| +100,000 \| +80,000 \| +0\.80× \|/)
  assert.match(text, /\| nginx +\| +5\.00 \| +7\.00 \| +1\.40× \| /)
  assert.equal(tlsOverPlain({ hello: results.hello }, two), null)
})

/** A TLS record holding a ServerHello with these extensions ([type, bytes]). */
function serverHello(extensions, sessionId = Buffer.alloc(32, 7)) {
  const ext = Buffer.concat(extensions.map(([type, data]) => Buffer.concat([Buffer.from([type >> 8, type & 255, data.length >> 8, data.length & 255]), data])))
  const body = Buffer.concat([
    Buffer.from([3, 3]), Buffer.alloc(32, 1), Buffer.from([sessionId.length]), sessionId,
    Buffer.from([0x13, 0x02, 0]), Buffer.from([ext.length >> 8, ext.length & 255]), ext,
  ])
  const handshake = Buffer.concat([Buffer.from([2, 0, body.length >> 8, body.length & 255]), body])
  return Buffer.concat([Buffer.from([0x16, 3, 3, handshake.length >> 8, handshake.length & 255]), handshake])
}

test('ServerHello: full, resumed (pre_shared_key), TLS 1.2, not whole yet, not a ServerHello', () => {
  const version = [43, Buffer.from([3, 4])]
  const share = [51, Buffer.alloc(36, 9)]
  const psk = [41, Buffer.from([0, 0])]
  assert.equal(serverHelloKind(serverHello([version, share])), 'full')
  assert.equal(serverHelloKind(serverHello([share, version, psk])), 'resumed')
  assert.equal(serverHelloKind(serverHello([])), 'tls1.2')
  const whole = serverHello([version, share, psk])
  assert.equal(serverHelloKind(whole.subarray(0, 40)), null)
  assert.equal(serverHelloKind(Buffer.concat([whole, Buffer.from('more records')])), 'resumed')
  assert.equal(serverHelloKind(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')), 'other')
})

test('resumption check: the first handshake of each of the 8 connections is full, the reconnections must resume', () => {
  assert.equal(resumesReconnections({ full: 8, resumed: 20 }), true) // a slow minute: few reconnections, all resumed
  assert.equal(resumesReconnections({ full: 8, resumed: 2000 }), true)
  assert.equal(resumesReconnections({ full: 10, resumed: 56 }), true) // 2 of 58 full
  assert.equal(resumesReconnections({ full: 177, resumed: 176 }), false) // every other one (node:https)
  assert.equal(resumesReconnections({ full: 8, resumed: 0 }), false) // no reconnection seen
  assert.equal(resumesReconnections({ full: 300, resumed: 0 }), false)
})

// ---------------------------------------------------------------- HTTP/2

// A fixed-time run with a warm-up, as h2load 1.52 prints it (the progress lines left out).
const H2LOAD_TIMED = `starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 1s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 3.01s, 71264.00 req/s, 2.65MB/s
requests: 142528 total, 142528 started, 142528 done, 142528 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 142527 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 5.30MB (5561536) total, 1.54MB (1617379) headers (space savings 91.64%), 2.50MB (2618304) data
                     min         max         mean         sd        +/- sd
time for request:     4.68ms     38.33ms     14.47ms      3.74ms    93.14%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :    1101.68     1118.04     1111.59        6.57    73.44%
`

test('h2 scenarios: h2load command lines for h2c, h2 over TLS, one connection of 100 streams, HTTP/1.1 pipelined', () => {
  assert.deepEqual(h2loadRunArgs({ port: 4321, path: '/', connections: 64, streams: 16, seconds: 10, warmup: 2 }), [
    'h2load', '-t1', '-c64', '-m16', '-D', '10', '--warm-up-time', '2', 'http://127.0.0.1:4321/',
  ])
  assert.equal(h2loadRunArgs({ port: 1, path: '/json', connections: 64, streams: 16, seconds: 3, tls: true }).at(-1), 'https://127.0.0.1:1/json')
  assert.ok(!h2loadRunArgs({ port: 1, path: '/', connections: 1, streams: 100, seconds: 3, warmup: 0 }).includes('--warm-up-time'), 'no warm-up asked, none given')
  assert.deepEqual(h2loadRunArgs({ port: 1, path: '/', connections: 64, streams: 16, seconds: 3, warmup: 1, h1: true }).slice(-2), ['--h1', 'http://127.0.0.1:1/'])
  assert.equal(expectedProtocol({}), 'h2c')
  assert.equal(expectedProtocol({ tls: true }), 'h2')
  assert.equal(expectedProtocol({ h1: true }), 'http/1.1')
})

test('h2 scenarios: a fixed-time h2load run read, and what fails it', () => {
  const r = parseH2loadRun(H2LOAD_TIMED)
  assert.equal(r.requestsPerSec, 71264)
  assert.equal(r.succeeded, 142528)
  assert.equal(r.meanMs, 14.47)
  assert.equal(r.application, 'h2')
  assert.equal(r.cipher, 'TLS_AES_128_GCM_SHA256')
  assert.equal(r.trafficBytes, 5561536)
  assert.equal(r.statusOther, 0)
  assert.equal(parseH2loadRun(H2LOAD_TIMED.replace('14.47ms', '812us')).meanMs, 0.812)
  // One head in the warm-up, its end in the main duration: a success without a status, no failure.
  assert.equal(h2loadProblem(r, 'h2'), null)
  assert.match(h2loadProblem(r, 'h2c'), /spoke h2, not h2c/)
  assert.match(h2loadProblem(parseH2loadRun(H2LOAD_TIMED.replace('0 failed, 0 errored', '3 failed, 1 errored')), 'h2'), /3 failed, 1 errored, 0 timed out/)
  assert.match(h2loadProblem(parseH2loadRun(H2LOAD_TIMED.replace('0 3xx, 0 4xx, 0 5xx', '0 3xx, 5 4xx, 2 5xx')), 'h2'), /7 of 142528 answers were not 2xx/)
  assert.match(h2loadProblem(parseH2loadRun(H2LOAD_TIMED.replace('142528 succeeded', '0 succeeded')), 'h2'), /no request succeed/)
  assert.match(h2loadProblem(parseH2loadRun(H2LOAD_TIMED.replace(/^status codes:.*$/m, '')), 'h2'), /no status codes/)
})

test('h2 scenarios: not in the default set, the group, who takes part, and why the others do not', () => {
  const names = ['h2-hello', 'h2-json', 'h2-hello-tls', 'h2-json-tls', 'h2-streams-100', 'h2-static-64k', 'h1-pipelined-16']
  assert.deepEqual(SCENARIO_GROUPS.h2, names)
  assert.ok(!DEFAULT_SCENARIOS.some((s) => s.h2))
  assert.ok(!SCENARIO_GROUPS.tls.some((name) => name.startsWith('h2')), 'the tls group keeps its four')
  const scenario = (name) => SCENARIOS.find((s) => s.name === name)
  const server = (name) => parseServerSpec(name)
  for (const name of ['h2-hello', 'h2-json', 'h2-hello-tls', 'h2-json-tls', 'h2-streams-100']) {
    assert.equal(scenario(name).kind, 'h2load')
    for (const id of ['harrier', 'harrier:HARRIER_DRIVER=threads', 'nginx', 'node-http2', 'bun-http2', 'deno']) assert.equal(skipReason(scenario(name), server(id)), null, `${name} ${id}`)
    assert.match(skipReason(scenario(name), server('bun')), /Bun\.serve has no HTTP\/2/)
    assert.match(skipReason(scenario(name), server('node')), /node:http has no HTTP\/2/)
    for (const id of ['fastify', 'floor', 'node-ws', 'harrier-hono']) assert.match(skipReason(scenario(name), server(id)), /no HTTP\/2/, `${name} ${id}`)
  }
  assert.deepEqual(scenario('h2-streams-100').h2, { connections: 1, streams: 100 })
  assert.ok(scenario('h2-hello-tls').tls && !scenario('h2-hello').tls)
  for (const id of ['harrier', 'nginx', 'node-http2', 'bun-http2', 'deno']) assert.equal(applies(scenario('h2-static-64k'), server(id)), true, id)
  assert.match(skipReason(scenario('h2-static-64k'), server('fastify')), /no HTTP\/2/)
  assert.equal(scenario('h2-static-64k').static.size, 65536)
  assert.equal(applies(scenario('h1-pipelined-16'), server('harrier:HARRIER_DRIVER=threads')), true)
  for (const id of ['nginx', 'node-http2', 'deno', 'bun']) assert.match(skipReason(scenario('h1-pipelined-16'), server(id)), /harrier's own/, id)
  // The HTTP/2-only servers run nothing else.
  for (const name of ['hello', 'static-64k', 'tls-hello', 'ws-echo-32', 'hono-hello']) {
    for (const id of ['node-http2', 'bun-http2']) assert.match(skipReason(scenario(name), server(id)), /only the HTTP\/2 scenarios/, `${name} ${id}`)
  }
  assert.equal(parseServerSpec('node:http2').id, 'node-http2')
  assert.equal(parseServerSpec('bun-http2').runtime, 'bun')
  assert.equal(parseServerSpec('bun-http2').script, 'node-http2.mjs')
})

test('nginx HTTP/2 config: listen … http2 before 1.25.1, http2 on from it; the hello, the JSON, the files, TLS', () => {
  assert.deepEqual(nginxVersion('nginx version: nginx/1.22.1\nbuilt with OpenSSL'), [1, 22, 1])
  assert.equal(nginxVersion('no version here'), null)
  assert.equal(nginxHasHttp2Directive('nginx version: nginx/1.22.1'), false)
  assert.equal(nginxHasHttp2Directive('nginx version: nginx/1.25.0'), false)
  assert.equal(nginxHasHttp2Directive('nginx version: nginx/1.25.1'), true)
  assert.equal(nginxHasHttp2Directive('nginx version: nginx/1.26.3'), true)
  const old = nginxConfig({ dir: '/tmp/x', port: 4321, staticDir: '/tmp/files', h2: true, configure: 'nginx version: nginx/1.22.1' })
  assert.ok(old.includes('listen 127.0.0.1:4321 http2;'))
  assert.ok(!old.includes('http2 on;'))
  assert.ok(!old.includes('ssl'))
  assert.match(old, /location = \/ \{\s+default_type text\/plain;\s+return 200 "Hello, World!";/)
  assert.match(old, /location = \/json \{\s+default_type application\/json;\s+return 200 '\{"message":"Hello, World!"\}';/)
  assert.match(old, /location \/static\/ \{\s+alias \/tmp\/files\/;/)
  assert.ok(old.includes('keepalive_requests 1000000000;'), 'one connection may carry all of h2-streams-100')
  assert.ok(old.includes('master_process off;') && old.includes('worker_processes 1;'))
  const tls = nginxConfig({ dir: '/tmp/x', port: 4321, h2: true, tls: { cert: '/c.pem', key: '/k.pem' }, configure: 'nginx version: nginx/1.22.1' })
  assert.ok(tls.includes('listen 127.0.0.1:4321 ssl http2;'))
  assert.ok(tls.includes('ssl_certificate /c.pem;') && tls.includes('ssl_certificate_key /k.pem;'))
  const recent = nginxConfig({ dir: '/tmp/x', port: 4321, h2: true, tls: { cert: '/c.pem', key: '/k.pem' }, configure: 'nginx version: nginx/1.26.3' })
  assert.match(recent, /listen 127\.0\.0\.1:4321 ssl;\s+http2 on;/)
  // Without h2, the config is the one the other scenarios have always had.
  assert.ok(!nginxConfig({ dir: '/tmp/x', port: 4321, configure: 'nginx version: nginx/1.22.1' }).includes('http2'))
})

test('h2 targets: against nginx, against its own HTTP/1.1 pipelined, ahead of node:http2 and Deno', () => {
  const servers = ['harrier', 'nginx', 'node-http2', 'deno', 'bun-http2'].map((id) => parseServerSpec(id))
  const figures = { harrier: [200_000, 2], nginx: [50_000, 8], 'node-http2': [40_000, 15], deno: [250_000, 1.5], 'bun-http2': [45_000, 11] }
  const round = (scale) => Object.fromEntries(Object.entries(figures).map(([id, [rps, cpu]]) => [id, { requestsPerSec: rps * scale, cpuUsPerRequest: cpu }]))
  const hello = summarise({ metrics: ['requestsPerSec', 'cpuUsPerRequest'] }, servers, [round(1), round(1.1)])
  const h1 = summarise({ metrics: ['requestsPerSec', 'cpuUsPerRequest'] }, [servers[0]], [{ harrier: { requestsPerSec: 1e6, cpuUsPerRequest: 0.5 } }])
  const rows = h2Targets({ 'h2-hello': hello, 'h1-pipelined-16': h1 }, servers)
  const find = (text) => rows.find((r) => r.target.includes(text))
  assert.equal(find('nginx').value, 0.25)
  assert.equal(find('nginx').met, true)
  assert.equal(find('h1-pipelined-16').value, 4)
  assert.equal(find('h1-pipelined-16').met, false)
  assert.equal(find('ahead of node:http2').value, 5)
  assert.equal(find('ahead of node:http2').met, true)
  assert.equal(find('ahead of deno').met, false, 'Deno has more req/s and less CPU here')
  assert.ok(!rows.some((r) => r.target.includes('bun')), 'the issue asks nothing of Bun')
  const md = h2TargetsMarkdown(rows)
  assert.match(md, /## HTTP\/2 targets/)
  assert.match(md, /NOT met/)
  // Without h1-pipelined-16 in the run, that row has no value.
  assert.equal(h2Targets({ 'h2-hello': hello }, servers).find((r) => r.target.includes('h1-pipelined-16')).met, null)
  assert.equal(h2TargetsMarkdown([]), '')
})

test('h2 targets, interleaved: against its own HTTP/1.1 pipelined, the median of the ratios within each round', () => {
  const harrier = parseServerSpec('harrier')
  const metrics = { metrics: ['requestsPerSec', 'cpuUsPerRequest'] }
  const run = (cpu) => ({ harrier: { requestsPerSec: 1, cpuUsPerRequest: cpu } })
  // Round by round the ratios are 2, 2 and 5 (the third round's h1 run was lucky): their
  // median is 2, while the ratio of the medians (3 ÷ 1.2) says 2.5.
  const hello = summarise(metrics, [harrier], [run(2), run(3), run(6)])
  const h1 = summarise(metrics, [harrier], [run(1), run(1.5), run(1.2)])
  const row = (rows) => rows.find((r) => r.target.includes('h1-pipelined-16'))
  const both = { 'h2-hello': hello, 'h1-pipelined-16': h1 }
  assert.equal(row(h2Targets(both, [harrier], { interleaved: true })).value, 2)
  assert.equal(row(h2Targets(both, [harrier], { interleaved: true })).met, true)
  assert.equal(row(h2Targets(both, [harrier])).value, 2.5)
  // A failed run leaves its round out of the pairs: (2 ÷ 1, 6 ÷ 1.2) → 3.5.
  const failed = summarise(metrics, [harrier], [run(1), { harrier: { error: 'h2load failed' } }, run(1.2)])
  assert.equal(row(h2Targets({ 'h2-hello': hello, 'h1-pipelined-16': failed }, [harrier], { interleaved: true })).value, 3.5)
  assert.match(h2TargetsMarkdown(h2Targets(both, [harrier], { interleaved: true }), { interleaved: true }), /against h1-pipelined-16 too/)
  assert.match(h2TargetsMarkdown(h2Targets(both, [harrier])), /a ratio of medians/)
})
