// HTTP/2 in cleartext (prior knowledge) with `node:http2` as the client: the same handlers,
// engine answers, static files, bodies both ways and lifecycle as over HTTP/1.1.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http2 from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import test from 'ava'
import { App } from 'harrier'
import { PATIENCE_MS, deferred, fetchT, rawRequest, sleep, useApp, withTimeout } from './helpers.ts'
import { h2get, h2request, h2session } from './h2-helpers.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

test('a request over HTTP/2 reaches the same handler: version 2.0, :authority as host, :path as url, query and params', async (t) => {
  const { base, port } = await useApp(t, (app) => {
    app.get('/users/:id', (req, res) => {
      res.json({ version: req.httpVersion, host: req.header('host'), hostInHeaders: req.headers.host, url: req.url, path: req.path, query: req.query, id: req.params.id, method: req.method, accept: req.header('accept'), secure: req.secure })
    })
  })
  const session = await h2session(t, base)
  const r = await h2get(session, '/users/42?x=1&y=2', { accept: 'text/json' })
  t.is(r.status, 200)
  t.deepEqual(JSON.parse(r.body.toString()), {
    version: '2.0', host: `127.0.0.1:${port}`, hostInHeaders: `127.0.0.1:${port}`, url: '/users/42?x=1&y=2', path: '/users/42', query: { x: '1', y: '2' }, id: '42', method: 'GET', accept: 'text/json', secure: false,
  })
  // HTTP/1.1 on the same port still works.
  const h1 = await fetchT(`${base}/users/7`)
  t.is((await h1.json()).version, '1.1')
})

test('connection-specific headers from the handler are dropped over HTTP/2, others kept', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/', (req, res) => {
      res.header('connection', 'close').header('keep-alive', 'timeout=5').header('transfer-encoding', 'chunked')
      res.header('upgrade', 'h2c').header('proxy-connection', 'keep-alive').header('x-kept', 'yes').header('set-cookie', ['a=1', 'b=2'])
      res.text('ok')
    })
  })
  const session = await h2session(t, base)
  const r = await h2get(session, '/')
  t.is(r.status, 200)
  t.is(r.body.toString(), 'ok')
  t.is(r.headers['x-kept'], 'yes')
  t.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2'])
  for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']) t.is(r.headers[name], undefined, name)
  // The session is still usable: the answer was no protocol error.
  t.is((await h2get(session, '/')).status, 200)
})

test('100 concurrent streams on one connection are all answered, each by its own route', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/n/:i', async (req, res) => {
      await sleep(Math.random() * 20)
      res.text(`n${req.params.i}`)
    })
    app.post('/p/:i', async (req, res) => res.text(`p${req.params.i}:${await req.text()}`))
  })
  const session = await h2session(t, base)
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? h2get(session, `/n/${i}`) : h2request(session, { ':method': 'POST', ':path': `/p/${i}` }, `body${i}`))))
  all.forEach((r, i) => {
    t.is(r.status, 200)
    t.is(r.body.toString(), i % 2 === 0 ? `n${i}` : `p${i}:body${i}`)
  })
})

test('a slow handler on one stream does not hold the others back', async (t) => {
  const release = deferred()
  const { base } = await useApp(t, (app) => {
    app.get('/slow', async (req, res) => {
      await release.promise
      res.text('slow')
    })
    app.get('/fast/:i', (req, res) => res.text(`fast${req.params.i}`))
  })
  const session = await h2session(t, base)
  const slow = h2get(session, '/slow')
  for (let i = 0; i < 5; i++) t.is((await h2get(session, `/fast/${i}`)).body.toString(), `fast${i}`)
  release.resolve()
  t.is((await slow).body.toString(), 'slow')
})

test('a 10 MiB upload and download are byte-exact with small flow-control windows', async (t) => {
  t.timeout(60_000)
  const data = randomBytes(10 * 2 ** 20)
  const { base } = await useApp(
    t,
    (app) => {
      app.post('/upload', App.bodyLimit(64 * 2 ** 20), async (req, res) => {
        const hash = createHash('sha256')
        let n = 0
        for await (const chunk of req) {
          hash.update(chunk)
          n += chunk.length
        }
        res.json({ n, sha: hash.digest('hex') })
      })
      app.get('/download', (req, res) => res.send(data))
      app.get('/streamed', (req, res) => {
        for (let at = 0; at < data.length; at += 256 * 1024) res.write(data.subarray(at, at + 256 * 1024))
        res.end()
      })
    },
    { http2: { initialWindowSize: 65_535 } },
  )
  // The client's windows are small too: 16 KiB per stream.
  const session = await h2session(t, base, { settings: { initialWindowSize: 16_384 } })
  const up = await h2request(session, { ':method': 'POST', ':path': '/upload' }, data, 60_000)
  t.deepEqual(JSON.parse(up.body.toString()), { n: data.length, sha: sha(data) })
  const down = await h2request(session, { ':path': '/download' }, undefined, 60_000)
  t.is(down.body.length, data.length)
  t.is(sha(down.body), sha(data))
  t.is(down.headers['content-length'], String(data.length))
  const streamed = await h2request(session, { ':path': '/streamed' }, undefined, 60_000)
  t.is(sha(streamed.body), sha(data))
})

test('HEAD, 404 and 405 come from the engine over HTTP/2', async (t) => {
  let calls = 0
  const { base } = await useApp(t, (app) => {
    app.get('/here', (req, res) => {
      calls++
      res.text('hello')
    })
  })
  const session = await h2session(t, base)
  const head = await h2request(session, { ':method': 'HEAD', ':path': '/here' })
  t.is(head.status, 200)
  t.is(head.body.length, 0)
  t.is(head.headers['content-length'], '5')
  const missing = await h2get(session, '/nothing')
  t.is(missing.status, 404)
  t.is(missing.body.toString(), 'Not Found')
  const wrong = await h2request(session, { ':method': 'DELETE', ':path': '/here' })
  t.is(wrong.status, 405)
  t.is(wrong.headers.allow, 'GET, HEAD')
  t.is(calls, 1, 'only the HEAD reached the handler')
})

test('static files over HTTP/2: whole, Range, 304, HEAD and res.sendFile', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harrier-h2-static-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const big = randomBytes(3 * 2 ** 20 + 17)
  fs.writeFileSync(path.join(dir, 'big.bin'), big)
  fs.writeFileSync(path.join(dir, 'small.txt'), 'small file\n')
  const { base } = await useApp(t, (app) => {
    app.static('/files', dir)
    app.get('/send', (req, res) => res.header('x-from', 'handler').sendFile(path.join(dir, 'big.bin')))
  })
  const session = await h2session(t, base, { settings: { initialWindowSize: 32_768 } })
  const whole = await h2get(session, '/files/big.bin')
  t.is(whole.status, 200)
  t.is(sha(whole.body), sha(big))
  t.is(whole.headers['content-length'], String(big.length))
  const etag = whole.headers.etag as string
  t.truthy(etag)
  const range = await h2get(session, '/files/big.bin', { range: 'bytes=1000-1999' })
  t.is(range.status, 206)
  t.is(range.headers['content-range'], `bytes 1000-1999/${big.length}`)
  t.deepEqual(range.body, big.subarray(1000, 2000))
  const multi = await h2get(session, '/files/small.txt', { range: 'bytes=0-1,6-9' })
  t.is(multi.status, 206)
  t.regex(String(multi.headers['content-type']), /^multipart\/byteranges/)
  t.true(multi.body.includes('sm') && multi.body.includes('file'))
  const cached = await h2get(session, '/files/big.bin', { 'if-none-match': etag })
  t.is(cached.status, 304)
  t.is(cached.body.length, 0)
  const head = await h2request(session, { ':method': 'HEAD', ':path': '/files/small.txt' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '11')
  t.is(head.body.length, 0)
  const sent = await h2get(session, '/send', { range: 'bytes=-10' })
  t.is(sent.status, 206)
  t.is(sent.headers['x-from'], 'handler')
  t.deepEqual(sent.body, big.subarray(big.length - 10))
  const sentWhole = await h2get(session, '/send')
  t.is(sha(sentWhole.body), sha(big))
  t.is((await h2get(session, '/files/nope.txt')).status, 404)
})

test('a client that cancels a stream is seen as req.signal, and the connection goes on', async (t) => {
  const aborted = deferred()
  const seen = deferred()
  const { base } = await useApp(t, (app) => {
    app.get('/wait', (req, res) => {
      req.signal.addEventListener('abort', () => aborted.resolve())
      seen.resolve()
    })
    app.get('/ok', (req, res) => res.text('ok'))
  })
  const session = await h2session(t, base)
  const req = session.request({ ':path': '/wait' })
  req.on('error', () => {})
  await withTimeout(seen.promise, PATIENCE_MS, 'the handler to see the request')
  req.close(http2.constants.NGHTTP2_CANCEL)
  await withTimeout(aborted.promise, PATIENCE_MS, 'req.signal to abort')
  t.is((await h2get(session, '/ok')).body.toString(), 'ok')
})

test('close() sends GOAWAY, lets the stream in flight finish, then closes', async (t) => {
  const release = deferred()
  const seen = deferred()
  const { app, base } = await useApp(t, (app) => {
    app.get('/slow', async (req, res) => {
      seen.resolve()
      await release.promise
      res.text('finished')
    })
  })
  const session = await h2session(t, base)
  const goaway = new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)))
  const slow = h2get(session, '/slow')
  await withTimeout(seen.promise, PATIENCE_MS, 'the slow request to arrive')
  const closing = app.close()
  t.is(await withTimeout(goaway, PATIENCE_MS, 'GOAWAY'), http2.constants.NGHTTP2_NO_ERROR)
  await sleep(50)
  release.resolve()
  const r = await slow
  t.is(r.status, 200)
  t.is(r.body.toString(), 'finished')
  await withTimeout(closing, PATIENCE_MS, 'close() to resolve')
})

test('a stream whose handler never answers gets 503 after handlerTimeout; the others are answered', async (t) => {
  const { base } = await useApp(
    t,
    (app) => {
      app.get('/never', () => {})
      app.get('/ok', (req, res) => res.text('ok'))
    },
    { handlerTimeout: 300 },
  )
  const session = await h2session(t, base)
  const never = h2get(session, '/never')
  t.is((await h2get(session, '/ok')).body.toString(), 'ok')
  const r = await never
  t.is(r.status, 503)
  t.is((await h2get(session, '/ok')).status, 200)
})

test('the per-address rate limit counts HTTP/2 streams, not connections', async (t) => {
  // One token in 1,000 s: the bucket cannot refill while the five requests go one after the
  // other (at 1 a second it did, on a loaded machine, and the fourth got 200).
  const { base } = await useApp(t, (app) => app.get('/', (req, res) => res.text('ok')), { rateLimit: 0.001, rateBurst: 3 })
  const session = await h2session(t, base)
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await h2get(session, '/')).status)
  t.deepEqual(statuses, [200, 200, 200, 429, 429])
})

test('a header list over maxHeaderSize gets 431 over HTTP/2', async (t) => {
  const { base } = await useApp(t, (app) => app.get('/', (req, res) => res.text('ok')), { maxHeaderSize: 4096 })
  const session = await h2session(t, base)
  t.is((await h2get(session, '/', { 'x-big': 'a'.repeat(8192) })).status, 431)
  t.is((await h2get(session, '/')).status, 200)
})

test('a body over its limit over HTTP/2 gets 413', async (t) => {
  const { base } = await useApp(t, (app) => app.post('/', async (req, res) => res.text(String((await req.arrayBuffer()).byteLength))), { maxBodySize: 1000 })
  const session = await h2session(t, base)
  t.is((await h2request(session, { ':method': 'POST', ':path': '/' }, Buffer.alloc(500))).body.toString(), '500')
  t.is((await h2request(session, { ':method': 'POST', ':path': '/', 'content-length': '5000' }, Buffer.alloc(5000))).status, 413)
})

test('http2: false serves HTTP/1.1 only: a preface is answered as a bad HTTP/1.1 request', async (t) => {
  const { base, port } = await useApp(t, (app) => app.get('/', (req, res) => res.text(req.httpVersion)), { http2: false })
  t.is(await (await fetchT(base)).text(), '1.1')
  const r = await rawRequest(port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', { until: 'end' })
  t.deepEqual(r.responses.map((x) => x.status), [505])
  t.true(r.ended)
})

test('Upgrade: h2c is not offered: such a request is served as HTTP/1.1', async (t) => {
  const { port } = await useApp(t, (app) => app.get('/', (req, res) => res.text(req.httpVersion)))
  const r = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', { until: 1 })
  t.is(r.responses[0].status, 200)
  t.is(r.responses[0].body.toString(), '1.1')
})

test('the HTTP/2 options are checked', (t) => {
  t.throws(() => new App({ http2: { maxConcurrentStreams: -1 } }), { instanceOf: RangeError })
  t.throws(() => new App({ http2: { initialWindowSize: 0 } }), { instanceOf: RangeError })
  t.throws(() => new App({ http2: 'yes' as never }), { instanceOf: TypeError })
  t.notThrows(() => new App({ http2: { maxConcurrentStreams: 10, initialWindowSize: 2 ** 20, maxHeaderListSize: 8192 } }))
})

test('a preface that arrives in pieces is still HTTP/2', async (t) => {
  const { port } = await useApp(t, (app) => app.get('/', (req, res) => res.text(req.httpVersion)))
  const net = await import('node:net')
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await new Promise((resolve) => socket.once('connect', resolve))
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  for (const piece of [preface.subarray(0, 1), preface.subarray(1, 10), preface.subarray(10)]) {
    socket.write(piece)
    await sleep(30)
  }
  socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])) // empty SETTINGS
  const got = await withTimeout(new Promise<Buffer>((resolve) => socket.once('data', resolve)), PATIENCE_MS, 'the server SETTINGS')
  t.is(got[3], 4, 'a SETTINGS frame came back')
})

test('an HTTP/2 connection with no stream for keepAliveTimeout gets GOAWAY and is closed', async (t) => {
  const { base } = await useApp(t, (app) => app.get('/', (req, res) => res.text('ok')), { keepAliveTimeout: 500 })
  // The request goes with the preface: on a loaded machine the connection must not sit idle
  // for the timeout before its first stream.
  const session = http2.connect(base)
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  const goaway = new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)))
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()))
  t.is((await h2get(session, '/')).status, 200)
  t.is(await withTimeout(goaway, PATIENCE_MS, 'GOAWAY'), http2.constants.NGHTTP2_NO_ERROR)
  await withTimeout(closed, PATIENCE_MS, 'the session to close')
})

test('streamed answers and uploads over HTTP/2 under middleware, as over HTTP/1.1', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.use(async (req, res, next) => {
      res.header('x-mw', req.httpVersion)
      await next()
    })
    app.post('/sum', async (req, res) => {
      let n = 0
      for await (const chunk of req) n += chunk.length
      res.write('got ')
      await sleep(5)
      res.end(String(n))
    })
  })
  const session = await h2session(t, base)
  const req = session.request({ ':method': 'POST', ':path': '/sum' })
  for (let i = 0; i < 10; i++) {
    req.write(Buffer.alloc(1000, i))
    await sleep(2)
  }
  req.end()
  const r = await withTimeout(new Promise<{ status: number; mw: unknown; body: string }>((resolve, reject) => {
    let status = 0
    let mw: unknown
    let body = ''
    req.on('response', (h) => {
      status = Number(h[':status'])
      mw = h['x-mw']
    })
    req.setEncoding('utf8').on('data', (d: string) => (body += d))
    req.on('end', () => resolve({ status, mw, body }))
    req.on('error', reject)
  }), PATIENCE_MS, 'the streamed answer')
  t.deepEqual(r, { status: 200, mw: '2.0', body: 'got 10000' })
})
