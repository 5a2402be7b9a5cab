// Operations: the engine's figures (app.metrics(), metricsRoute in Prometheus text checked
// by promtool), healthRoute through a drain, the dashboard's event stream, and the access
// log in both formats, over real sockets.

import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { App, Metrics } from 'harrier'
import { PATIENCE_MS, RawClient, deferred, fetchT, rawReq, useApp, waitUntil, withTimeout, closeApp, startApp, tryConnect } from './helpers.ts'
import { useClient } from './ws-helpers.ts'
import { ensureTool } from './tools.ts'

function routes(app: App) {
  app.get('/', (req, res) => res.text('hello'))
  app.get('/slow', async (req, res) => {
    await new Promise((r) => setTimeout(r, 120))
    res.text('slow')
  })
  app.get('/boom', () => {
    throw new Error('boom')
  })
  app.post('/echo', async (req, res) => res.send(Buffer.from(await req.arrayBuffer())))
}

test('app.metrics() counts a known sequence of requests by status class, protocol and latency', async (t) => {
  const { app, base, port } = await useApp(t, (app) => {
    routes(app)
    app.onError = () => {}
  }, { maxBodySize: 1000 })
  const before = app.metrics()
  t.is(before.requests.total, 0)
  for (let i = 0; i < 5; i++) t.is((await fetchT(`${base}/`)).status, 200)
  for (let i = 0; i < 3; i++) t.is((await fetchT(`${base}/nope`)).status, 404)
  for (let i = 0; i < 2; i++) t.is((await fetchT(`${base}/boom`)).status, 500)
  t.is((await fetchT(`${base}/`, { method: 'DELETE' })).status, 405)
  await Promise.all([0, 1].map(async () => t.is((await fetchT(`${base}/slow`)).status, 200)))
  // An HTTP/1.0 request, and one refused for its size (413, counted as a refusal too).
  const old = await RawClient.connect(port)
  await old.write('GET / HTTP/1.0\r\n\r\n')
  t.is((await old.readResponse()).status, 200)
  old.destroy()
  const big = await RawClient.connect(port)
  await big.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n')
  t.is((await big.readResponse()).status, 413)
  big.destroy()

  const m = app.metrics()
  t.deepEqual(m.requests.byStatus, { '1xx': 0, '2xx': 8, '3xx': 0, '4xx': 5, '5xx': 2 })
  t.is(m.requests.total, 15)
  t.is(m.requests.byProtocol['http/1.0'], 1)
  t.is(m.requests.byProtocol['http/1.1'], 14)
  t.is(m.refusals['413'], 1)
  t.is(m.refusals['400'], 0)
  t.is(m.latency.count, 15)
  // The two slow answers took at least 120 ms each; no other can have taken less than 0.
  // The engine's clock is the turn's and libuv's timers fire by a clock cached per loop turn:
  // a 120 ms sleep can measure a little less. 2 × 115 ms is still far above any other.
  t.true(m.latency.sumMs >= 230, `${m.latency.sumMs}`)
  t.true(m.latency.p50Ms <= m.latency.p90Ms && m.latency.p90Ms <= m.latency.p99Ms && m.latency.p99Ms <= m.latency.p999Ms)
  t.true(m.latency.p999Ms >= 100, 'the slowest answers are the slow route')
  const cumulative = (leMs: number) => m.latency.buckets.find((b) => b.leMs === leMs)!.count
  // Buckets are cumulative, at powers of two of microseconds: the slow ones are above 65.5 ms.
  t.true(cumulative(65.536) <= 13)
  t.is(m.latency.buckets[m.latency.buckets.length - 1].count, 15)
  for (let i = 1; i < m.latency.buckets.length; i++) t.true(m.latency.buckets[i].count >= m.latency.buckets[i - 1].count)
  t.true(m.bytes.in > 0 && m.bytes.out > 0)
  t.true(m.connections.accepted >= 3)
  t.true(m.process.rssBytes > 10 * 2 ** 20)
  t.true(m.uptimeSeconds > 0)
})

test('refusals are counted by reason: 431, 429 and the connection limit', async (t) => {
  const { app, port } = await useApp(t, routes, { maxHeaderSize: 1024, rateLimit: 0.01, rateBurst: 1, maxConnections: 2 })
  const a = await RawClient.connect(port)
  await a.write(rawReq('GET', '/', { 'x-big': 'y'.repeat(4000) }))
  t.is((await a.readResponse()).status, 431)
  const b = await RawClient.connect(port)
  await b.write(rawReq('GET', '/'))
  const first = await b.readResponse()
  await b.write(rawReq('GET', '/'))
  const second = await b.readResponse()
  t.deepEqual([first.status, second.status], [200, 429])
  // Two connections are open (a is closed by the server after its 431, maybe not yet seen):
  // one more beyond the limit is closed at once.
  await a.waitForClose()
  const c = await RawClient.connect(port)
  const d = await RawClient.connect(port)
  await Promise.race([c.waitForClose(), d.waitForClose()])
  await waitUntil(() => app.metrics().refusals.connectionLimit >= 1, PATIENCE_MS, 'a refusal by the connection limit')
  const m = app.metrics()
  t.is(m.refusals['431'], 1)
  t.is(m.refusals['429'], 1)
  for (const s of [b, c, d]) s.destroy()
})

test('metricsRoute answers Prometheus text that promtool accepts', async (t) => {
  const promtool = await ensureTool('promtool', ['prometheus'])
  const { base } = await useApp(t, (app) => {
    routes(app)
    app.metricsRoute('/metrics')
  })
  for (let i = 0; i < 4; i++) await fetchT(`${base}/`)
  const res = await fetchT(`${base}/metrics`)
  t.is(res.status, 200)
  t.is(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  const text = await res.text()
  t.regex(text, /^harrier_http_requests_total\{status="2xx"\} 4$/m)
  t.regex(text, /^# TYPE harrier_http_request_duration_seconds histogram$/m)
  t.regex(text, /^harrier_http_request_duration_seconds_bucket\{le="\+Inf"\} 4$/m)
  t.regex(text, /^harrier_http_request_duration_seconds_count 4$/m)
  t.regex(text, /^harrier_connections_open [1-9]/m)
  const checked = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.is(checked.status, 0, `promtool: ${checked.stdout}${checked.stderr}`)
})

test('an engine route never reaches middleware, and answers while JavaScript is busy', async (t) => {
  let seen = 0
  const { base, port } = await useApp(t, (app) => {
    app.use(async (req, res, next) => {
      seen++
      await next()
    })
    routes(app)
    app.get('/busy', (req, res) => {
      // Holds the JS thread for a while: under the threads driver the engine answers meanwhile.
      const until = Date.now() + 600
      while (Date.now() < until) {}
      res.text('done')
    })
    app.metricsRoute('/metrics').healthRoute('/health')
  })
  t.is((await fetchT(`${base}/metrics`)).status, 200)
  t.is(await (await fetchT(`${base}/health`)).text(), 'ok')
  t.is(seen, 0)
  await fetchT(`${base}/`)
  t.is(seen, 1)
  if (process.env.HARRIER_DRIVER === 'threads') {
    const busy = fetchT(`${base}/busy`)
    const raw = await RawClient.connect(port)
    // Sent while the handler spins: the engine answers it on its own thread.
    await new Promise((r) => setTimeout(r, 100))
    await raw.write(rawReq('GET', '/health'))
    const health = await raw.readResponse()
    t.is(health.status, 200)
    t.is(await (await busy).text(), 'done')
    raw.destroy()
  }
})

test('healthRoute turns 503 draining once close() begins, while a slow request drains', async (t) => {
  const release = deferred()
  const entered = deferred()
  const started = await startApp((app) => {
    app.get('/hold', async (req, res) => {
      entered.resolve()
      await release.promise
      res.text('held')
    })
    app.healthRoute('/health')
  })
  const { app, port } = started
  t.teardown(() => app.close())
  const raw = await RawClient.connect(port)
  await raw.write(rawReq('GET', '/health'))
  const healthy = await raw.readResponse()
  t.is(healthy.status, 200)
  t.is(healthy.body.toString(), 'ok')
  await raw.write(rawReq('GET', '/hold'))
  await withTimeout(entered.promise, PATIENCE_MS, 'the held request to reach the handler')
  const closing = app.close()
  // The drain has begun once the port refuses connections.
  t.regex(await tryConnect(port), /ECONNREFUSED/)
  // The connection is busy, so it stays open through the drain; the health check asked on it
  // now is answered (after the held request, in order) with 503, then the connection closes.
  const request = rawReq('GET', '/health')
  const read = app.metrics().bytes.in
  await raw.write(request)
  await waitUntil(() => app.metrics().bytes.in >= read + request.length, PATIENCE_MS, 'the health check to be read')
  release.resolve()
  const [held, draining] = await raw.readResponses(2)
  t.is(held.status, 200)
  t.is(held.headers['connection'], undefined, 'not the last answer: the connection stays for the next')
  t.is(draining.headers['connection'], 'close')
  t.is(draining.status, 503)
  t.is(draining.body.toString(), 'draining')
  await withTimeout(closing, PATIENCE_MS, 'close() to finish')
  raw.destroy()
})

test('with drainDelay, health answers 503 while the server still serves, then it stops accepting', async (t) => {
  const { app, base, port } = await startApp((app) => {
    routes(app)
    app.healthRoute('/health')
  }, { drainDelay: 1500 })
  t.teardown(() => app.close())
  t.is((await fetchT(`${base}/health`)).status, 200)
  const closing = app.close()
  const health = await fetchT(`${base}/health`)
  t.is(health.status, 503)
  t.is(await health.text(), 'draining')
  t.is(await (await fetchT(`${base}/`)).text(), 'hello', 'still serving')
  await withTimeout(closing, PATIENCE_MS, 'close() to finish')
  t.regex(await tryConnect(port), /ECONNREFUSED/)
})

test('the dashboard page and its event stream, fed by the engine every second, ended by close()', async (t) => {
  const started = await startApp((app) => {
    routes(app)
    app.dashboard('/_harrier')
  })
  const { app, base } = started
  t.teardown(() => app.close())
  const page = await fetchT(`${base}/_harrier`)
  t.is(page.status, 200)
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/)
  t.regex(await page.text(), /<html|<!doctype html/i)
  await fetchT(`${base}/`)
  const res = await fetchT(`${base}/_harrier/events`)
  t.is(res.headers.get('content-type'), 'text/event-stream')
  t.is(res.headers.get('cache-control'), 'no-cache')
  const reader = res.body!.getReader()
  const events: Metrics[] = []
  let text = ''
  while (events.length < 2) {
    const { value, done } = await withTimeout(reader.read(), PATIENCE_MS, 'an event')
    if (done) break
    text += Buffer.from(value).toString()
    let at
    while ((at = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, at)
      text = text.slice(at + 2)
      t.true(block.startsWith('data: '), block)
      events.push(JSON.parse(block.slice('data: '.length)))
    }
  }
  t.true(events[0].requests.total >= 2, 'the page and the hello were counted')
  t.true(events[1].uptimeSeconds > events[0].uptimeSeconds)
  // close() ends the stream rather than waiting out the drain timeout for it.
  const closing = app.close()
  for (;;) {
    const { done } = await withTimeout(reader.read(), PATIENCE_MS, 'the stream to end')
    if (done) break
  }
  await withTimeout(closing, PATIENCE_MS, 'close() to finish')
})

test('WebSocket sessions and messages are counted', async (t) => {
  const { app, port } = await useApp(t, (app) => {
    app.ws('/ws', {
      message(ws, m) {
        ws.send(m)
      },
    })
  })
  const client = await useClient(t, port, '/ws')
  for (const m of ['a', 'b', 'c']) {
    await client.send(m)
    t.is(await client.nextText(), m)
  }
  const m = app.metrics()
  t.is(m.websockets.open, 1)
  t.is(m.websockets.messagesIn, 3)
  t.is(m.websockets.messagesOut, 3)
  t.is(m.requests.byStatus['1xx'], 1, 'the handshake: 101')
  client.close(1000)
  await client.waitClosed()
  await waitUntil(() => app.metrics().websockets.open === 0, PATIENCE_MS, 'the socket to be counted closed')
  t.pass()
})

function logDir(): string {
  return mkdtempSync(join(tmpdir(), 'harrier-log-'))
}

async function sequence(base: string, port: number) {
  await fetchT(`${base}/`, { headers: { 'user-agent': 'agent "x"', referer: 'http://example.test/from' } })
  await fetchT(`${base}/nope?q=1`)
  await fetchT(`${base}/echo`, { method: 'POST', body: 'twelve bytes' })
  // A client that leaves in the middle of a streamed answer.
  const raw = await RawClient.connect(port)
  await raw.write(rawReq('GET', '/stream'))
  await raw.waitForText('first')
  raw.destroy()
}

function streamRoute(app: App, left: { done: Promise<void>; resolve: () => void }) {
  app.get('/stream', (req, res) => {
    res.write('first')
    req.signal.addEventListener('abort', () => left.resolve())
  })
}

test('the access log in JSON lines: one per request, a client gone mid-answer marked aborted', async (t) => {
  const dir = logDir()
  const path = join(dir, 'access.log')
  const gone = deferred()
  const started = await startApp((app) => {
    routes(app)
    streamRoute(app, { done: gone.promise, resolve: () => gone.resolve() })
  }, { accessLog: { format: 'json', path } })
  t.teardown(() => started.app.close())
  await sequence(started.base, started.port)
  await withTimeout(gone.promise, PATIENCE_MS, 'the abort')
  await closeApp(started.app)
  await waitUntil(() => existsSync(path) && readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= 4, PATIENCE_MS, 'four lines')
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.is(lines.length, 4)
  // Each I/O thread hands its lines over on its own: across threads they need not be in order.
  const by = (target: string) => lines.find((l) => l.target === target)
  const [hello, missing, echo, stream] = ['/', '/nope?q=1', '/echo', '/stream'].map(by)
  t.like(hello, { remote: '127.0.0.1', method: 'GET', target: '/', protocol: 'HTTP/1.1', status: 200, bytes: 5, user_agent: 'agent "x"', referer: 'http://example.test/from' })
  t.regex(hello.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.true(Math.abs(Date.parse(hello.time) - Date.now()) < 120_000)
  t.true(Number.isInteger(hello.duration_us) && hello.duration_us >= 0)
  t.like(missing, { method: 'GET', target: '/nope?q=1', status: 404, referer: null })
  t.like(echo, { method: 'POST', target: '/echo', status: 200, bytes: 12 })
  t.like(stream, { target: '/stream', status: 200, aborted: true })
  t.false('aborted' in hello)
})

test('the access log in combined format', async (t) => {
  const dir = logDir()
  const path = join(dir, 'access.log')
  const gone = deferred()
  const started = await startApp((app) => {
    routes(app)
    streamRoute(app, { done: gone.promise, resolve: () => gone.resolve() })
  }, { accessLog: { format: 'combined', path } })
  t.teardown(() => started.app.close())
  await sequence(started.base, started.port)
  await withTimeout(gone.promise, PATIENCE_MS, 'the abort')
  await closeApp(started.app)
  await waitUntil(() => existsSync(path) && readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= 4, PATIENCE_MS, 'four lines')
  const lines = readFileSync(path, 'utf8').trim().split('\n')
  t.is(lines.length, 4)
  const combined = /^127\.0\.0\.1 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "(\S+) (\S+) HTTP\/1\.1" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$/
  const all = lines.map((l) => {
    const m = combined.exec(l)
    t.truthy(m, l)
    return m!.slice(1)
  })
  const parsed = ['/', '/nope?q=1', '/echo', '/stream'].map((target) => all.find((l) => l[1] === target)!)
  t.deepEqual(parsed[0], ['GET', '/', '200', '5', 'http://example.test/from', 'agent \\x22x\\x22'])
  t.deepEqual(parsed[1].slice(0, 4), ['GET', '/nope?q=1', '404', '9'])
  t.is(parsed[1][4], '-')
  t.deepEqual(parsed[2].slice(0, 4), ['POST', '/echo', '200', '12'])
  t.deepEqual(parsed[3].slice(0, 3), ['GET', '/stream', '200'])
})

test('an access log that cannot be written is reported once, and serving goes on', async (t) => {
  const dir = logDir()
  const script = join(dir, 'server.mjs')
  const harrier = fileURLToPath(new URL('../index.mjs', import.meta.url))
  writeFileSync(
    script,
    `import { App } from ${JSON.stringify(harrier)}
const app = new App({ accessLog: { format: 'json', path: ${JSON.stringify(join(dir, 'no', 'such', 'dir', 'access.log'))} } })
app.get('/', (req, res) => res.text('ok'))
const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false })
let ok = 0
for (let round = 0; round < 3; round++) {
  for (let i = 0; i < 20; i++) if ((await fetch('http://127.0.0.1:' + port + '/')).status === 200) ok++
  // Lines are handed to the writer at least once a second: three rounds, three hand-overs.
  await new Promise((r) => setTimeout(r, 1100))
}
const dropped = app.metrics().accessLog.droppedLines
await app.close()
console.log(JSON.stringify({ ok, dropped }))
`,
  )
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const code = await withTimeout(new Promise<number | null>((r) => child.on('exit', r)), 60_000, 'the server script to finish')
  t.is(code, 0, err)
  const { ok, dropped } = JSON.parse(out.trim().split('\n').pop()!)
  t.is(ok, 60)
  t.true(dropped >= 20, `dropped ${dropped}`)
  const reports = err.split('\n').filter((l) => l.includes('access log cannot be written'))
  t.is(reports.length, 1, err)
  t.regex(reports[0], /no\/such\/dir\/access\.log/)
})
