// HTTP/1.1 connection semantics over raw sockets: keep-alive, pipelining, HEAD,
// HTTP/1.0, Connection: close, chunked responses.
import test from 'ava'
import type { App } from 'harrier'
import { IMF_FIXDATE, RawClient, fetchT, rawReq, rawRequest, sleep, useApp } from './helpers.ts'

function routes(app: App) {
  app.get('/', (req, res) => res.text('Hello, World!'))
  app.get('/users/:id', (req, res) => res.json({ id: req.params.id }))
  app.get('/stream', (req, res) => {
    res.write('a')
    res.write('b')
    res.end('c')
  })
  app.get('/slow', async (req, res) => {
    await sleep(Number(req.query.ms ?? 100))
    res.text(`slow${req.query.n ?? ''}`)
  })
  app.get('/fast', (req, res) => res.text(`fast${req.query.n ?? ''}`))
  app.get('/n/:n', (req, res) => res.text(`n=${req.params.n}`))
  app.post('/ignore-body', (req, res) => res.text('ignored'))
  app.post('/echo', async (req, res) => res.send(Buffer.from(await req.arrayBuffer())))
  app.get('/boom', () => {
    throw new Error('boom')
  })
}

test('keep-alive: two requests one after the other on the same socket', async (t) => {
  const { port } = await useApp(t, routes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())

  await client.write(rawReq('GET', '/'))
  const r1 = await client.readResponse()
  t.is(r1.status, 200)
  t.is(r1.version, 'HTTP/1.1')
  t.is(r1.body.toString(), 'Hello, World!')
  t.not((r1.headers['connection'] ?? '').toLowerCase(), 'close')
  t.true(await client.staysOpen(100), 'connection stays open after the first response')

  await client.write(rawReq('GET', '/users/7'))
  const r2 = await client.readResponse()
  t.is(r2.status, 200)
  t.deepEqual(JSON.parse(r2.body.toString()), { id: '7' })
  t.is(client.unread.length, 0, 'no extra bytes after the responses')
})

test('pipelining: a slow async handler ahead of fast ones keeps request order', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([
    rawReq('GET', '/slow?n=1&ms=150'),
    rawReq('GET', '/fast?n=2'),
    rawReq('GET', '/slow?n=3&ms=50'),
    rawReq('GET', '/fast?n=4'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 4 })
  t.deepEqual(
    responses.map((r) => [r.status, r.body.toString()]),
    [
      [200, 'slow1'],
      [200, 'fast2'],
      [200, 'slow3'],
      [200, 'fast4'],
    ],
  )
})

test('pipelining: 50 requests in one write are all answered in order', async (t) => {
  const { port } = await useApp(t, routes)
  const n = 50
  const bytes = Buffer.concat(Array.from({ length: n }, (_, i) => rawReq('GET', `/n/${i}`)))
  const { responses } = await rawRequest(port, bytes, { until: n })
  t.is(responses.length, n)
  t.deepEqual(
    responses.map((r) => r.body.toString()),
    Array.from({ length: n }, (_, i) => `n=${i}`),
  )
  t.true(responses.every((r) => r.status === 200))
})

test('pipelining: a POST whose body the handler ignores, then a GET', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([
    rawReq('POST', '/ignore-body', { 'Content-Length': '20' }, 'GET /fast HTTP/1.1\r\n'),
    rawReq('GET', '/fast?n=after'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 2 })
  t.deepEqual(
    responses.map((r) => [r.status, r.body.toString()]),
    [
      [200, 'ignored'],
      [200, 'fastafter'],
    ],
  )
})

test('pipelining: bodies of natively answered 404 and 405 requests are skipped', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([
    rawReq('POST', '/no-such-route', { 'Content-Length': '20' }, 'GET /fast HTTP/1.1\r\n'),
    rawReq('PUT', '/fast', { 'Content-Length': '20' }, 'GET /fast HTTP/1.1\r\n'),
    rawReq('POST', '/nothing-here', { 'Transfer-Encoding': 'chunked' }, '4\r\nabcd\r\n0\r\n\r\n'),
    rawReq('GET', '/fast?n=last'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 4 })
  t.deepEqual(
    responses.map((r) => r.status),
    [404, 405, 404, 200],
  )
  t.is(responses[3].body.toString(), 'fastlast')
})

test('bytes that are not HTTP at all get 400 and a close with HTTP/2 off; with it on, a close without an answer (an invalid preface)', async (t) => {
  const off = await useApp(t, routes, { http2: false })
  const refused = await rawRequest(off.port, 'THIS IS NOT HTTP\r\n\r\n', { until: 'end' })
  t.true(refused.ended)
  t.deepEqual(refused.responses.map((r) => r.status), [400])
  const on = await useApp(t, routes)
  const closed = await rawRequest(on.port, 'THIS IS NOT HTTP\r\n\r\n', { until: 'end' })
  t.true(closed.ended)
  t.is(closed.raw.length, 0, 'nothing was written: an HTTP/2 client could not read an HTTP/1.1 answer')
  // A request line with a version is HTTP/1.1, malformed or not.
  const bad = await rawRequest(on.port, 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', { until: 'end' })
  t.deepEqual(bad.responses.map((r) => r.status), [400])
})

test('malformed requests get 400 and the connection is closed', async (t) => {
  const { port } = await useApp(t, routes)
  const cases = [
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n',
    'POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  ]
  for (const bytes of cases) {
    const { responses, ended } = await rawRequest(port, bytes, { until: 'end' })
    t.true(ended, JSON.stringify(bytes))
    t.deepEqual(
      responses.map((r) => r.status),
      [400],
      JSON.stringify(bytes),
    )
  }
})

test('pipelining: a chunked POST, then a GET', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([
    rawReq('POST', '/echo', { 'Transfer-Encoding': 'chunked' }, '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n'),
    rawReq('GET', '/fast?n=5'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 2 })
  t.deepEqual(
    responses.map((r) => [r.status, r.body.toString()]),
    [
      [200, 'abcde'],
      [200, 'fast5'],
    ],
  )
})

test('a request head arriving in several pieces is parsed', async (t) => {
  const { port } = await useApp(t, routes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  const bytes = rawReq('GET', '/users/split', { 'X-Long-Header': 'x'.repeat(200) })
  for (const piece of [bytes.subarray(0, 5), bytes.subarray(5, 40), bytes.subarray(40, bytes.length - 1), bytes.subarray(bytes.length - 1)]) {
    await client.write(piece)
    await sleep(20)
  }
  const r = await client.readResponse()
  t.is(r.status, 200)
  t.deepEqual(JSON.parse(r.body.toString()), { id: 'split' })
})

test('HEAD to a GET route: same headers including content-length, no body', async (t) => {
  const { port } = await useApp(t, routes)
  // HEAD then GET in one write: if the HEAD response carried body bytes, the GET response would not parse.
  const { responses, raw } = await rawRequest(port, Buffer.concat([rawReq('HEAD', '/'), rawReq('GET', '/')]), {
    until: 2,
    methods: ['HEAD', 'GET'],
  })
  const [head, get] = responses
  t.is(head.status, 200)
  t.is(get.status, 200)
  t.is(get.body.toString(), 'Hello, World!')
  t.is(head.headers['content-length'], '13')
  t.is(head.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(head.headers['content-type'], get.headers['content-type'])
  t.is(head.headers['content-length'], get.headers['content-length'])
  t.truthy(head.headers['date'])
  // the byte right after the HEAD response's head is the start of the GET response
  const afterHead = raw.indexOf('\r\n\r\n') + 4
  t.is(raw.subarray(afterHead, afterHead + 5).toString(), 'HTTP/')
})

test('HEAD to a streamed (write/end) GET route sends no body bytes', async (t) => {
  const { port } = await useApp(t, routes)
  const { responses, raw } = await rawRequest(port, Buffer.concat([rawReq('HEAD', '/stream'), rawReq('GET', '/fast?n=9')]), {
    until: 2,
    methods: ['HEAD', 'GET'],
  })
  t.is(responses[0].status, 200)
  t.is(responses[1].status, 200)
  t.is(responses[1].body.toString(), 'fast9')
  const afterHead = raw.indexOf('\r\n\r\n') + 4
  t.is(raw.subarray(afterHead, afterHead + 5).toString(), 'HTTP/')
})

test('HEAD through fetch', async (t) => {
  const { base } = await useApp(t, routes)
  const r = await fetchT(`${base}/users/3`, { method: 'HEAD' })
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8')
  t.is(r.headers.get('content-length'), String(JSON.stringify({ id: '3' }).length))
  t.is(await r.text(), '')
})

test('HTTP/1.0 without keep-alive: the server closes after the response', async (t) => {
  const { port } = await useApp(t, routes)
  const { responses, ended } = await rawRequest(port, 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n', { until: 'end' })
  t.true(ended)
  t.is(responses.length, 1)
  t.is(responses[0].status, 200)
  t.is(responses[0].body.toString(), 'Hello, World!')
  t.not((responses[0].headers['connection'] ?? '').toLowerCase(), 'keep-alive')
})

test('HTTP/1.0: a streamed response is not chunked (chunked is HTTP/1.1 only)', async (t) => {
  const { port } = await useApp(t, routes)
  const { responses } = await rawRequest(port, 'GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n', { until: 'end' })
  t.is(responses.length, 1)
  const r = responses[0]
  t.is(r.status, 200)
  t.false('transfer-encoding' in r.headers, 'no Transfer-Encoding in a response to HTTP/1.0')
  t.false(r.chunked)
  t.is(r.body.toString(), 'abc')
})

test('HTTP/1.0 with Connection: keep-alive keeps the connection open', async (t) => {
  const { port } = await useApp(t, routes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write('GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n')
  const r1 = await client.readResponse()
  t.is(r1.status, 200)
  t.is(r1.body.toString(), 'Hello, World!')
  t.is((r1.headers['connection'] ?? '').toLowerCase(), 'keep-alive')
  t.truthy(r1.headers['content-length'], 'a keep-alive HTTP/1.0 response needs a content-length')
  t.true(await client.staysOpen(150), 'connection stays open')

  await client.write('GET /users/10 HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n')
  const r2 = await client.readResponse()
  t.is(r2.status, 200)
  t.deepEqual(JSON.parse(r2.body.toString()), { id: '10' })
})

test('Connection: close closes after the response and ignores pipelined requests after it', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([rawReq('GET', '/', { Connection: 'close' }), rawReq('GET', '/fast?n=never')])
  const { responses, ended } = await rawRequest(port, bytes, { until: 'end' })
  t.true(ended)
  t.is(responses.length, 1)
  t.is(responses[0].status, 200)
  t.is(responses[0].body.toString(), 'Hello, World!')
  t.is((responses[0].headers['connection'] ?? '').toLowerCase(), 'close')
})

test('a request with Connection: close still has its body read (POST echo), then the connection closes', async (t) => {
  const { port } = await useApp(t, (app) =>
    app.post('/echo', async (req, res) => res.send(Buffer.from(await req.arrayBuffer()))),
  )
  const bytes = Buffer.concat([rawReq('POST', '/echo', { Connection: 'close', 'Content-Length': '12' }, 'closing body'), rawReq('GET', '/echo')])
  const { responses, ended } = await rawRequest(port, bytes, { until: 'end' })
  t.true(ended)
  t.is(responses.length, 1)
  t.is(responses[0].status, 200)
  t.is(responses[0].body.toString(), 'closing body')
})

test('streamed response uses chunked transfer encoding and decodes to abc', async (t) => {
  const { port } = await useApp(t, routes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(rawReq('GET', '/stream'))
  const r = await client.readResponse()
  t.is(r.status, 200)
  t.is(r.headers['transfer-encoding'], 'chunked')
  t.false('content-length' in r.headers, 'no content-length with chunked')
  t.true(r.chunked)
  t.is(r.body.toString(), 'abc')
  t.truthy(r.headers['content-type'], 'a content-type is set')
  // keep-alive survives a chunked response
  await client.write(rawReq('GET', '/fast?n=1'))
  const r2 = await client.readResponse()
  t.is(r2.body.toString(), 'fast1')
})

test('streamed response through fetch', async (t) => {
  const { base } = await useApp(t, routes)
  const r = await fetchT(`${base}/stream`)
  t.is(r.status, 200)
  t.is(await r.text(), 'abc')
})

test('every response carries a Date header (200, 404, 405, 500, HEAD, chunked)', async (t) => {
  const { port } = await useApp(t, routes)
  const bytes = Buffer.concat([
    rawReq('GET', '/'),
    rawReq('GET', '/no-such-route'),
    rawReq('DELETE', '/'),
    rawReq('GET', '/boom'),
    rawReq('HEAD', '/'),
    rawReq('GET', '/stream'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 6, methods: ['GET', 'GET', 'DELETE', 'GET', 'HEAD', 'GET'] })
  t.deepEqual(
    responses.map((r) => r.status),
    [200, 404, 405, 500, 200, 200],
  )
  for (const r of responses) t.regex(r.headers['date'] ?? '', IMF_FIXDATE, `status ${r.status}`)
})

test('many concurrent connections are all served', async (t) => {
  const { base } = await useApp(t, routes)
  const results = await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const r = await fetchT(`${base}/users/${i}`)
      return [r.status, (await r.json()).id]
    }),
  )
  t.deepEqual(
    results,
    Array.from({ length: 64 }, (_, i) => [200, String(i)]),
  )
})
