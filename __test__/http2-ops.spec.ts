// Operations over HTTP/2: streams are counted (by protocol h2, by status, refusals),
// written to the access log (protocol HTTP/2.0), and the engine's own routes (metrics,
// health, the dashboard and its event stream) answer over HTTP/2 as over HTTP/1.1.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { PATIENCE_MS, closeApp, startApp, useApp, waitUntil, withTimeout } from './helpers.ts'
import { h2get, h2request, h2session } from './h2-helpers.ts'

test('HTTP/2 streams are counted by protocol and status, and the ops routes answer over HTTP/2', async (t) => {
  const { app, base } = await useApp(t, (app) => {
    app.get('/', (req, res) => res.text('hello'))
    app.metricsRoute('/metrics').healthRoute('/health').dashboard('/_harrier')
  }, { rateLimit: 0.001, rateBurst: 6 })
  const session = await h2session(t, base)
  t.is((await h2get(session, '/')).status, 200)
  t.is((await h2get(session, '/nope')).status, 404)
  const health = await h2get(session, '/health')
  t.deepEqual([health.status, health.body.toString()], [200, 'ok'])
  const metrics = await h2get(session, '/metrics')
  t.is(metrics.status, 200)
  t.regex(metrics.body.toString(), /harrier_http_requests_total/)
  // The dashboard's event stream is fed by the engine over HTTP/2 too.
  const page = await h2get(session, '/_harrier')
  t.regex(String(page.headers['content-type']), /^text\/html/)
  const events = session.request({ ':path': '/_harrier/events' })
  const first = await withTimeout(new Promise<string>((resolve, reject) => {
    events.setEncoding('utf8').once('data', (d: string) => resolve(d))
    events.once('error', reject)
  }), PATIENCE_MS, 'the first event')
  t.regex(first, /^(event: \w+\n)?data: \{/m)
  events.close()
  t.is((await h2get(session, '/')).status, 429, 'over the rate limit, counted per stream')
  await waitUntil(() => app.metrics().requests.byProtocol.h2 >= 6, PATIENCE_MS, 'the h2 requests counted')
  const m = app.metrics()
  t.true(m.requests.byProtocol.h2 >= 6, JSON.stringify(m.requests))
  t.is(m.requests.byProtocol['http/1.1'], 0)
  t.true(m.requests.byStatus['4xx'] >= 2)
  t.is(m.refusals['429'], 1)
})

test('the access log says HTTP/2.0 for a stream, and aborted for a cancelled one', async (t) => {
  const dir = mkdtempSync(join(os.tmpdir(), 'harrier-h2-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'access.log')
  const started = await startApp((app) => {
    app.get('/', (req, res) => res.text('hello'))
    app.post('/echo', async (req, res) => res.send(Buffer.from(await req.arrayBuffer())))
  }, { accessLog: { format: 'json', path } })
  t.teardown(() => started.app.close())
  const session = await h2session(t, started.base)
  t.is((await h2get(session, '/', { 'user-agent': 'h2 agent', referer: 'http://example.test/' })).status, 200)
  t.is((await h2request(session, { ':method': 'POST', ':path': '/echo' }, 'twelve bytes')).body.toString(), 'twelve bytes')
  session.close()
  await closeApp(started.app)
  await waitUntil(() => existsSync(path) && readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= 2, PATIENCE_MS, 'two lines')
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  const hello = lines.find((l) => l.target === '/')
  t.like(hello, { remote: '127.0.0.1', method: 'GET', protocol: 'HTTP/2.0', status: 200, bytes: 5, user_agent: 'h2 agent', referer: 'http://example.test/' })
  t.like(lines.find((l) => l.target === '/echo'), { method: 'POST', protocol: 'HTTP/2.0', status: 200, bytes: 12 })
})
