// Web-standard handlers over real sockets: serve({ fetch }), app.mount(), the Request a fetch
// handler gets (url, headers, body as a stream, signal, info.remoteAddress) and every kind of
// Response it can give (each body type, set-cookie lines, streams with backpressure, errors).

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { App, serve } from 'harrier'
import { PATIENCE_MS, RawClient, deferred, fetchT, rawReq, rawRequest, sha256, useApp, withTimeout } from './helpers.ts'
import { lastJson, node, root } from './distribution.ts'
import { openClient } from './ws-helpers.ts'

/** The platform's classes, taken before any serve() puts harrier's Response in the global scope. */
const PlatformResponse = globalThis.Response
const PlatformRequest = globalThis.Request

const MiB = 2 ** 20

type Fetch = (request: Request, info: { remoteAddress: string }) => Response | Promise<Response>

/** serve() on 127.0.0.1 port 0, closed when the test ends. */
async function useServe(t: { teardown(fn: () => unknown): void }, fetch: Fetch, options: Record<string, unknown> = {}) {
  const app = await withTimeout(serve({ fetch, port: 0, host: '127.0.0.1', signals: false, ...options }), PATIENCE_MS, 'serve() to listen')
  t.teardown(() => app.close())
  return { app, port: app.port!, base: `http://127.0.0.1:${app.port}` }
}

/** A client that sends one request and reads the answer only when told to (its socket paused). */
function heldClient(port: number, request: string | Buffer) {
  const socket = net.connect(port, '127.0.0.1')
  socket.pause()
  let received = 0
  const hash = createHash('sha256')
  let head: Buffer | null = null
  let pending = Buffer.alloc(0)
  const ended = deferred()
  socket.on('data', (d: Buffer) => {
    received += d.length
    if (head === null) {
      pending = Buffer.concat([pending, d])
      const at = pending.indexOf('\r\n\r\n')
      if (at >= 0) {
        head = pending.subarray(0, at)
        hash.update(pending.subarray(at + 4))
      }
    } else hash.update(d)
  })
  socket.on('end', () => ended.resolve())
  socket.on('error', (e) => ended.reject(e))
  socket.write(request)
  return {
    socket,
    get received() {
      return received
    },
    get head() {
      return head?.toString('latin1') ?? null
    },
    /** sha256 of what followed the head (the raw body: as sent when not chunked) */
    digest: () => hash.digest('hex'),
    ended: ended.promise,
  }
}

// ------------------------------------------------------------------------------- serve

test('serve() resolves to the listening App: port and host, a web Request with an absolute url, info.remoteAddress', async (t) => {
  let seen: { url: string; method: string; isRequest: boolean; ua: string | null; remote: string; host: string | null; body: unknown } | null = null
  const { app, port, base } = await useServe(t, (request, info) => {
    seen = {
      url: request.url,
      method: request.method,
      isRequest: request instanceof Request && request instanceof PlatformRequest,
      ua: request.headers.get('User-Agent'),
      remote: info.remoteAddress,
      host: request.headers.get('host'),
      body: request.body,
    }
    return new Response('hi')
  })
  t.true(app instanceof App)
  t.is(app.host, '127.0.0.1')
  t.is(typeof port, 'number')
  const r = await fetchT(`${base}/some/path?x=1&y=%20`, { headers: { 'user-agent': 'fetch-test' } })
  t.is(r.status, 200)
  t.is(await r.text(), 'hi')
  t.is(r.headers.get('content-type'), 'text/plain;charset=UTF-8')
  t.deepEqual(seen, {
    url: `http://127.0.0.1:${port}/some/path?x=1&y=%20`,
    method: 'GET',
    isRequest: true,
    ua: 'fetch-test',
    remote: '127.0.0.1',
    host: `127.0.0.1:${port}`,
    body: null,
  })
  await app.close()
  t.is(app.port, null)
  t.is(app.host, null)
})

test('app.port and app.host are null before listen(), set while listening, on a native App too', async (t) => {
  const app = new App()
  app.get('/', (req, res) => res.text(`${req.remoteAddress}`))
  t.is(app.port, null)
  t.is(app.host, null)
  const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false })
  t.teardown(() => app.close())
  t.is(app.port, port)
  t.is(app.host, '127.0.0.1')
  t.is(await (await fetchT(`http://127.0.0.1:${port}/`)).text(), '127.0.0.1', 'req.remoteAddress on a native route')
})

test('the url: normalised as the URL parser writes it (host case, dot segments), the listening address for a Host that is no authority', async (t) => {
  const urls: string[] = []
  const { port } = await useServe(t, (request) => {
    urls.push(request.url)
    return new Response(request.url)
  })
  const ask = async (target: string, host: string | null) => {
    const headers = host === null ? '' : `Host: ${host}\r\n`
    const { responses } = await rawRequest(port, `GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`, { max: 1 })
    return responses[0].body.toString()
  }
  t.is(await ask('/a/b?c=d', 'Example.COM:8080'), 'http://example.com:8080/a/b?c=d')
  t.is(await ask('/a/./b/../c', 'example.com'), 'http://example.com/a/c')
  t.is(await ask('/a/%2e%2e/c', 'example.com'), 'http://example.com/c')
  t.is(await ask('/x', 'evil.example/path?'), `http://127.0.0.1:${port}/x`, 'a Host with a path is not taken as the authority')
  t.is(await ask('/x', '[::1]:80'), 'http://[::1]/x')
  t.is(await ask('/sp%20ace', 'h'), 'http://h/sp%20ace')
})

// ------------------------------------------------------------------------------- answers

test('every body type: string, Uint8Array, ArrayBuffer, Blob, FormData, URLSearchParams, ReadableStream, null; status and headers', async (t) => {
  const bytes = new Uint8Array([0, 1, 2, 250, 255])
  const { base } = await useServe(t, async (request) => {
    const kind = new URL(request.url).pathname.slice(1)
    switch (kind) {
      case 'string':
        return new Response('héllo', { status: 201, headers: { 'X-Kind': 'string' } })
      case 'bytes':
        return new Response(bytes)
      case 'arraybuffer':
        return new Response(bytes.buffer.slice(1, 4))
      case 'view':
        return new Response(new DataView(bytes.buffer, 2, 2))
      case 'blob':
        return new Response(new Blob(['blob ', 'body'], { type: 'text/x-blob' }))
      case 'formdata': {
        const form = new FormData()
        form.append('a', '1')
        form.append('file', new Blob(['file body'], { type: 'text/plain' }), 'f.txt')
        return new Response(form)
      }
      case 'search':
        return new Response(new URLSearchParams({ q: 'a b', r: 'é' }))
      case 'stream':
        return new Response(
          new ReadableStream({
            async pull(controller) {
              await new Promise((resolve) => setImmediate(resolve))
              controller.enqueue(new TextEncoder().encode('one,'))
              await new Promise((resolve) => setImmediate(resolve))
              controller.enqueue(new TextEncoder().encode('two'))
              controller.close()
            },
          }),
          { headers: { 'content-type': 'text/csv' } },
        )
      case 'ready-stream':
        return new Response(new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('ready')), c.close()) }))
      case 'null':
        return new Response(null, { status: 204, headers: { 'x-empty': 'yes' } })
      case 'json':
        return Response.json({ a: [1, 2] }, { status: 202 })
      case 'redirect':
        return Response.redirect('http://example.com/next', 307)
      case 'platform':
        return new PlatformResponse('from the platform', { status: 203, headers: { 'x-from': 'undici' } })
      case 'platform-stream':
        return new PlatformResponse(new Blob(['platform blob']).stream())
      case 'headers-object': {
        const headers = new Headers({ 'x-one': '1' })
        headers.append('x-two', '2')
        return new Response('h', { headers })
      }
      case 'pairs':
        return new Response('p', { headers: [['x-pair', 'a'], ['x-pair', 'b']] })
      case 'status-text':
        return new Response('teapot', { status: 418, statusText: "I'm a teapot" })
    }
    return new Response('?', { status: 404 })
  })
  const get = async (kind: string) => {
    const r = await fetchT(`${base}/${kind}`, { redirect: 'manual' })
    return { r, body: Buffer.from(await r.arrayBuffer()) }
  }
  {
    const { r, body } = await get('string')
    t.is(r.status, 201)
    t.is(r.headers.get('x-kind'), 'string')
    t.is(r.headers.get('content-type'), 'text/plain;charset=UTF-8')
    t.is(r.headers.get('content-length'), String(Buffer.byteLength('héllo')))
    t.is(body.toString(), 'héllo')
  }
  {
    const { r, body } = await get('bytes')
    t.deepEqual([...body], [...bytes])
    t.is(r.headers.get('content-type'), null, 'bytes get no content-type, as in the platform')
    t.is(r.headers.get('content-length'), '5')
  }
  t.deepEqual([...(await get('arraybuffer')).body], [1, 2, 250])
  t.deepEqual([...(await get('view')).body], [2, 250])
  {
    const { r, body } = await get('blob')
    t.is(r.headers.get('content-type'), 'text/x-blob')
    t.is(r.headers.get('content-length'), '9')
    t.is(body.toString(), 'blob body')
  }
  {
    const r = await fetchT(`${base}/formdata`)
    t.regex(r.headers.get('content-type') ?? '', /^multipart\/form-data; boundary=/)
    t.truthy(r.headers.get('content-length'), 'the multipart body has its length')
    const form = await r.formData()
    t.is(form.get('a'), '1')
    const file = form.get('file') as File
    t.is(file.name, 'f.txt')
    t.is(await file.text(), 'file body')
  }
  {
    const { r, body } = await get('search')
    t.is(r.headers.get('content-type'), 'application/x-www-form-urlencoded;charset=UTF-8')
    t.is(body.toString(), 'q=a+b&r=%C3%A9')
  }
  {
    const raw = await rawRequest(Number(new URL(base).port), rawReq('GET', '/stream', { Connection: 'close' }), { max: 1 })
    const res = raw.responses[0]
    t.is(res.headers['transfer-encoding'], 'chunked', 'a stream still going after the first read is sent chunked')
    t.is(res.headers['content-type'], 'text/csv')
    t.is(res.body.toString(), 'one,two')
  }
  {
    const { r, body } = await get('ready-stream')
    t.is(r.headers.get('content-length'), '5', 'a stream that ends at once is answered with its length')
    t.is(body.toString(), 'ready')
  }
  {
    const { r, body } = await get('null')
    t.is(r.status, 204)
    t.is(r.headers.get('x-empty'), 'yes')
    t.is(body.length, 0)
  }
  {
    const { r, body } = await get('json')
    t.is(r.status, 202)
    t.is(r.headers.get('content-type'), 'application/json')
    t.deepEqual(JSON.parse(body.toString()), { a: [1, 2] })
  }
  {
    const { r } = await get('redirect')
    t.is(r.status, 307)
    t.is(r.headers.get('location'), 'http://example.com/next')
  }
  {
    const { r, body } = await get('platform')
    t.is(r.status, 203)
    t.is(r.headers.get('x-from'), 'undici')
    t.is(r.headers.get('content-type'), 'text/plain;charset=UTF-8')
    t.is(body.toString(), 'from the platform')
  }
  t.is((await get('platform-stream')).body.toString(), 'platform blob')
  {
    const { r } = await get('headers-object')
    t.is(r.headers.get('x-one'), '1')
    t.is(r.headers.get('x-two'), '2')
  }
  t.is((await get('pairs')).r.headers.get('x-pair'), 'a, b')
  t.is((await get('status-text')).r.status, 418)
})

test('set-cookie lines stay separate: Headers.append twice, an array of pairs, getSetCookie()', async (t) => {
  const { port } = await useServe(t, (request) => {
    if (new URL(request.url).pathname === '/pairs') {
      return new Response('ok', { headers: [['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2, with a comma; HttpOnly']] })
    }
    const headers = new Headers()
    headers.append('Set-Cookie', 'a=1; Path=/')
    headers.append('Set-Cookie', 'b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT')
    t.deepEqual(headers.getSetCookie(), ['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT'])
    return new Response('ok', { headers })
  })
  for (const [path, second] of [
    ['/headers', 'b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT'],
    ['/pairs', 'b=2, with a comma; HttpOnly'],
  ]) {
    const { responses } = await rawRequest(port, rawReq('GET', path, { Connection: 'close' }), { max: 1 })
    const cookies = responses[0].rawHeaders.filter(([name]) => name.toLowerCase() === 'set-cookie').map(([, value]) => value)
    t.deepEqual(cookies, ['a=1; Path=/', second], path)
  }
})

test('HEAD and every method reach the fetch handler; HEAD answers without a body', async (t) => {
  const { base } = await useServe(t, async (request) => new Response(`${request.method} ${request.body === null ? 'no body' : await request.text()}`))
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    const r = await fetchT(`${base}/m`, { method, body: method === 'OPTIONS' ? undefined : 'payload' })
    t.is(await r.text(), method === 'OPTIONS' ? 'OPTIONS no body' : `${method} payload`)
  }
  const head = await fetchT(`${base}/m`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(await head.text(), '')
})

// ------------------------------------------------------------------------------- errors

test('a thrown error and a rejected promise are 500s reported to onError; a non-Response is a 500 with a clear message', async (t) => {
  const reported: unknown[] = []
  const app = await serve({
    port: 0,
    host: '127.0.0.1',
    signals: false,
    fetch: (request) => {
      const path = new URL(request.url).pathname
      if (path === '/throw') throw new Error('thrown in fetch')
      if (path === '/reject') return Promise.reject(new Error('rejected in fetch'))
      if (path === '/string') return 'a string' as unknown as Response
      if (path === '/undefined') return Promise.resolve(undefined as unknown as Response)
      if (path === '/object') return { status: 200, body: 'x' } as unknown as Response
      if (path === '/bad-header') return new Response('x', { headers: { 'bad header': 'x' } })
      return new Response('fine')
    },
  })
  t.teardown(() => app.close())
  app.onError = (error) => reported.push(error)
  const base = `http://127.0.0.1:${app.port}`
  for (const path of ['/throw', '/reject', '/string', '/undefined', '/object', '/bad-header']) {
    const r = await fetchT(base + path)
    t.is(r.status, 500, path)
    t.is(await r.text(), 'Internal Server Error')
  }
  const messages = reported.map((e) => (e as Error).message)
  t.deepEqual(messages.slice(0, 2), ['thrown in fetch', 'rejected in fetch'])
  t.regex(messages[2], /the fetch handler returned a string, not a Response/)
  t.regex(messages[3], /the fetch handler returned undefined, not a Response/)
  t.regex(messages[4], /returned an object \(Object\), not a Response/)
  t.regex(messages[5], /invalid header name "bad header"/)
  t.is((await fetchT(`${base}/ok`)).status, 200, 'the server goes on')
})

// ------------------------------------------------------------------------------- the request

test('request.signal aborts when the client goes away; a streamed answer is cancelled', async (t) => {
  const aborted = deferred<unknown>()
  const cancelled = deferred<unknown>()
  const reached = deferred()
  const { port } = await useServe(t, (request) => {
    if (new URL(request.url).pathname === '/wait') {
      reached.resolve()
      return new Promise((resolve) => {
        request.signal.addEventListener('abort', () => {
          aborted.resolve(request.signal.reason)
          resolve(new Response('too late'))
        })
      })
    }
    return new Response(
      new ReadableStream({
        pull(controller) {
          controller.enqueue(new Uint8Array(64 * 1024))
          return new Promise((resolve) => setTimeout(resolve, 5))
        },
        cancel(reason) {
          cancelled.resolve(reason)
        },
      }),
    )
  })
  const client = await RawClient.connect(port)
  client.socket.write(rawReq('GET', '/wait'))
  await withTimeout(reached.promise, PATIENCE_MS, 'the handler to run')
  client.socket.destroy()
  const reason = await withTimeout(aborted.promise, PATIENCE_MS, 'request.signal to abort')
  t.is((reason as Error).name, 'AbortError')

  const streaming = await RawClient.connect(port)
  streaming.socket.write(rawReq('GET', '/stream'))
  await streaming.waitForText('\r\n\r\n')
  streaming.socket.destroy()
  await withTimeout(cancelled.promise, PATIENCE_MS, 'the response stream to be cancelled')
  t.pass()
})

test('a 10 MiB upload streams through request.body as it arrives (sha256 compared)', async (t) => {
  const data = randomBytes(10 * MiB)
  const { base } = await useServe(
    t,
    async (request) => {
      const reader = request.body!.getReader()
      const hash = createHash('sha256')
      let chunks = 0
      let bytes = 0
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        t.true(value instanceof Uint8Array)
        hash.update(value)
        bytes += value.byteLength
        chunks++
      }
      return Response.json({ sha256: hash.digest('hex'), chunks, bytes })
    },
    { maxBodySize: 64 * MiB },
  )
  let sent = 0
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= data.length) return controller.close()
      controller.enqueue(new Uint8Array(data.subarray(sent, sent + 256 * 1024)))
      sent += 256 * 1024
    },
  })
  const r = await fetchT(`${base}/upload`, { method: 'POST', body, duplex: 'half' })
  const result = (await r.json()) as { sha256: string; chunks: number; bytes: number }
  t.is(result.bytes, data.length)
  t.is(result.sha256, sha256(data))
  t.true(result.chunks > 1, `the body came in ${result.chunks} pieces`)
})

test('the body readers: text(), json(), arrayBuffer(), formData() (multipart and urlencoded), bodyUsed, clone(), new Request(request)', async (t) => {
  const { base } = await useServe(t, async (request) => {
    const path = new URL(request.url).pathname
    if (path === '/text') {
      const text = await request.text()
      const again = await request.text().then(
        () => 'read twice',
        (e: Error) => e.name,
      )
      return Response.json({ text, used: request.bodyUsed, again })
    }
    if (path === '/json') return Response.json(await request.json())
    if (path === '/bytes') return new Response(await request.arrayBuffer())
    if (path === '/form') {
      const form = await request.formData()
      const file = form.get('file')
      return Response.json({ a: form.getAll('a'), file: file instanceof Blob ? [(file as File).name, await file.text()] : file })
    }
    if (path === '/clone') {
      const copy = request.clone()
      return Response.json({ one: await copy.text(), two: await request.text() })
    }
    if (path === '/wrap') {
      const wrapped = new Request(request, { headers: { 'x-added': 'yes' } })
      return Response.json({ url: wrapped.url, method: wrapped.method, added: wrapped.headers.get('x-added'), body: await wrapped.text() })
    }
    return new Response('?', { status: 404 })
  })
  t.deepEqual(await (await fetchT(`${base}/text`, { method: 'POST', body: 'some text' })).json(), { text: 'some text', used: true, again: 'TypeError' })
  t.deepEqual(await (await fetchT(`${base}/json`, { method: 'POST', body: '{"a":[1,{"b":2}]}' })).json(), { a: [1, { b: 2 }] })
  t.deepEqual([...new Uint8Array(await (await fetchT(`${base}/bytes`, { method: 'PUT', body: new Uint8Array([9, 8, 7]) })).arrayBuffer())], [9, 8, 7])
  const form = new FormData()
  form.append('a', 'x')
  form.append('a', 'y')
  form.append('file', new Blob(['the file']), 'name.bin')
  t.deepEqual(await (await fetchT(`${base}/form`, { method: 'POST', body: form })).json(), { a: ['x', 'y'], file: ['name.bin', 'the file'] })
  t.deepEqual(await (await fetchT(`${base}/form`, { method: 'POST', body: new URLSearchParams('a=1&a=2&file=f') })).json(), { a: ['1', '2'], file: 'f' })
  t.deepEqual(await (await fetchT(`${base}/clone`, { method: 'POST', body: 'twice' })).json(), { one: 'twice', two: 'twice' })
  const wrapped = (await (await fetchT(`${base}/wrap`, { method: 'POST', body: 'wrapped' })).json()) as Record<string, string>
  t.like(wrapped, { method: 'POST', added: 'yes', body: 'wrapped' })
  t.regex(wrapped.url, /^http:\/\/127\.0\.0\.1:\d+\/wrap$/)
})

// ------------------------------------------------------------------------------- streaming

// Serial: it measures the process's RSS, which the other tests of this file would move.
test.serial('a ReadableStream answer to a slow client: backpressure holds (the stream is not read ahead), then every byte arrives', async (t) => {
  const total = 128 * MiB
  const piece = Buffer.alloc(MiB, 'x')
  let pulled = 0
  const waiting = deferred()
  let pulledAtWait = -1
  const app = new App()
  // Seen from a middleware: the pump waits for the connection to take more.
  app.use((req, res, next) => {
    const drained = res.drained.bind(res)
    res.drained = () => {
      if (pulledAtWait < 0) {
        pulledAtWait = pulled
        waiting.resolve()
      }
      return drained()
    }
    return next()
  })
  app.mount('/', () =>
    new Response(
      new ReadableStream({
        pull(controller) {
          if (pulled >= total) return controller.close()
          pulled += piece.length
          controller.enqueue(new Uint8Array(piece))
        },
      }),
    ),
  )
  const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false })
  t.teardown(() => app.close())
  const rssBefore = app.metrics().process.rssBytes
  const client = heldClient(port, rawReq('GET', '/big'))
  await withTimeout(waiting.promise, PATIENCE_MS, 'the pump to wait for the slow client')
  t.true(pulledAtWait < 32 * MiB, `read ${pulledAtWait / MiB} MiB of the stream before waiting`)
  const rssHeld = app.metrics().process.rssBytes
  t.true(rssHeld - rssBefore < 64 * MiB, `RSS grew ${((rssHeld - rssBefore) / MiB).toFixed(1)} MiB while the client read nothing`)
  client.socket.resume()
  await withTimeout(client.ended.catch(() => {}), 120_000, 'the whole body').catch(() => {})
  // Reading on, the client gets all of it: chunked framing around 128 MiB of 'x'.
  t.true(client.received > total, `received ${client.received} bytes`)
  t.is(pulled, total)
})

// ------------------------------------------------------------------------------- mount

test('mount() beside native routes, static files and WebSockets; the full path, or stripped with stripPrefix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'harrier-fetch-'))
  writeFileSync(join(dir, 'a.txt'), 'static a')
  const echo = (name: string) => (request: Request) => Response.json({ name, url: request.url, path: new URL(request.url).pathname, search: new URL(request.url).search })
  const { port, base } = await useApp(t, (app) => {
    app.use((req, res, next) => {
      res.header('x-middleware', 'ran')
      return next()
    })
    app.get('/native', (req, res) => res.text('native'))
    app.get('/api/native', (req, res) => res.text('native under /api'))
    app.static('/assets', dir)
    app.ws('/ws', { message: (ws, m) => ws.send(m) })
    app.mount('/api', echo('full'))
    app.mount('/strip/', echo('strip'), { stripPrefix: true })
  })
  const get = async (path: string) => {
    const r = await fetchT(base + path)
    return { status: r.status, mw: r.headers.get('x-middleware'), body: r.headers.get('content-type')?.startsWith('application/json') ? await r.json() : await r.text() }
  }
  t.like(await get('/api'), { status: 200, mw: 'ran', body: { name: 'full', path: '/api' } })
  t.like(await get('/api/users/1?x=2'), { body: { name: 'full', path: '/api/users/1', search: '?x=2' } })
  t.like(await get('/strip'), { body: { name: 'strip', path: '/' } })
  t.like(await get('/strip/'), { body: { name: 'strip', path: '/' } })
  t.like(await get('/strip/users/1?x=2'), { body: { name: 'strip', url: `http://127.0.0.1:${port}/users/1?x=2` } })
  t.like(await get('/strip?x=1'), { body: { name: 'strip', url: `http://127.0.0.1:${port}/?x=1` } })
  t.like(await get('/native'), { status: 200, body: 'native' })
  t.like(await get('/api/native'), { status: 200, body: 'native under /api' }, 'a native route under the prefix wins')
  t.like(await get('/assets/a.txt'), { status: 200, body: 'static a' })
  t.is((await get('/apis')).status, 404, '/apis is not under /api')
  t.is((await get('/elsewhere')).status, 404)
  const ws = await openClient(port, '/ws')
  t.teardown(() => ws.close())
  await ws.send('ping')
  t.is(await ws.nextText(), 'ping')
})

test('mount("/") takes every path the other routes leave', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/native/:id', (req, res) => res.text(`native ${req.params.id}`))
    app.mount('/', (request) => new Response(`fetch ${request.method} ${new URL(request.url).pathname}`))
  })
  t.is(await (await fetchT(`${base}/native/7`)).text(), 'native 7')
  t.is(await (await fetchT(`${base}/`)).text(), 'fetch GET /')
  t.is(await (await fetchT(`${base}/deep/er/path`, { method: 'DELETE' })).text(), 'fetch DELETE /deep/er/path')
})

test('mount() and serve() check their arguments', async (t) => {
  const app = new App()
  t.throws(() => app.mount('api', () => new Response()), { instanceOf: TypeError, message: /must start with '\/'/ })
  t.throws(() => app.mount('/api/:id', () => new Response()), { instanceOf: TypeError, message: /params or wildcards/ })
  t.throws(() => app.mount('/api', 'nope' as never), { instanceOf: TypeError, message: /need a fetch function/ })
  await t.throwsAsync(serve({} as never), { instanceOf: TypeError, message: /needs a fetch function/ })
})

test('overrideGlobalObjects: false: a platform Response is answered the same (string body read without its stream)', async (t) => {
  const { base } = await useServe(t, () => new PlatformResponse('platform', { headers: { 'x-a': '1' } }), { overrideGlobalObjects: false })
  const r = await fetchT(`${base}/`)
  t.is(await r.text(), 'platform')
  t.is(r.headers.get('x-a'), '1')
  t.is(r.headers.get('content-length'), '8')
})

test('fetch(request) forwards a request harrier handed over (its url, method, headers and body stream)', async (t) => {
  const target = await useServe(t, async (request) => new Response(`${request.method} ${new URL(request.url).pathname} ${request.headers.get('x-h')} ${await request.text()}`))
  const proxy = await useServe(t, (request) => fetch(request))
  // The proxy's request names the target in its Host header, so its url is the target's.
  const body = 'forwarded body'
  const { responses } = await rawRequest(
    proxy.port,
    `POST /p/q HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nX-H: kept\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    { max: 1 },
  )
  t.is(responses[0].status, 200)
  t.is(responses[0].body.toString(), 'POST /p/q kept forwarded body')
})

test("an App with only native routes does not load the platform's undici (about 4 MiB per thread); the first mount() does", async (t) => {
  const r = await node([new URL('./fixtures/platform-load.mjs', import.meta.url).pathname], { cwd: root, timeout: PATIENCE_MS })
  t.is(r.code, 0, r.stderr)
  t.deepEqual(lastJson(r), { answered: true, afterServing: false, afterMount: true })
})
