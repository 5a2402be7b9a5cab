// Data over TLS: 10 MiB uploads echoed back (Content-Length and chunked), a 10 MiB static
// file and the same by res.sendFile (node:https, curl, a reader that pauses), ranges,
// pipelined requests on one TLS connection answered in order, and wss:// with the `ws`
// client (text, binary, 1 MiB messages, many messages both ways).
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import test from 'ava'
import WebSocket from 'ws'
import type { App } from 'harrier'
import { PATIENCE_MS, chunkedBody, sha256, withTimeout } from './helpers.ts'
import { TlsRaw, certs, httpsRequest, run, secureOf, useTlsApp } from './tls-helpers.ts'
import { removeCerts } from './tls-certs.ts'
import { Client } from './ws-helpers.ts'

test.after.always(() => removeCerts(certs))

const MiB = 1024 * 1024
const root = join(certs.dir, 'public')
mkdirSync(root, { recursive: true })
const big = randomBytes(10 * MiB)
const bigHash = sha256(big)
writeFileSync(join(root, 'big.bin'), big)
writeFileSync(join(root, 'hello.txt'), 'Hello, static over TLS!')

function routes(app: App) {
  app.post('/echo', async (req, res) => res.send(Buffer.from(await req.arrayBuffer())))
  app.post('/hash', async (req, res) => res.text(`${sha256(Buffer.from(await req.arrayBuffer()))} ${String(secureOf(req))}`))
  app.get('/path/:name', (req, res) => res.text(`path=${req.params.name}`))
  app.get('/generated', (req, res) => res.send(big))
  app.get('/send-file', (req, res) => res.sendFile(join(root, 'big.bin')))
  app.static('/files', root)
}

const options = { maxBodySize: 16 * MiB }

// ---------------------------------------------------------------------------
// Uploads and downloads
// ---------------------------------------------------------------------------

test('a 10 MiB upload (Content-Length) is echoed back byte-exact over TLS', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const r = await httpsRequest(port, { method: 'POST', path: '/echo', body: big, headers: { 'content-type': 'application/octet-stream' }, ms: 60_000 })
  t.is(r.status, 200)
  t.is(r.body.length, big.length)
  t.is(sha256(r.body), bigHash)
  const h = await httpsRequest(port, { method: 'POST', path: '/hash', body: big, ms: 60_000 })
  t.is(h.body.toString(), `${bigHash} true`)
})

test('a 10 MiB chunked upload, written in pieces, arrives whole', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const result = await withTimeout(
    new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/hash', method: 'POST', ca: certs.caPem, agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve(`${res.statusCode} ${body}`))
      })
      req.on('error', reject)
      // no Content-Length: node sends it chunked, in 16 KiB-ish writes
      let offset = 0
      const step = 100_000
      const pump = () => {
        while (offset < big.length) {
          const piece = big.subarray(offset, Math.min(big.length, offset + step))
          offset += piece.length
          if (!req.write(piece)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
    }),
    60_000,
    'the chunked upload to be answered',
  )
  t.is(result, `200 ${bigHash} true`)
})

test('a 10 MiB static file over TLS is byte-exact (node:https), and so is res.sendFile of it and a 10 MiB res.send', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  for (const path of ['/files/big.bin', '/send-file', '/generated']) {
    const r = await httpsRequest(port, { path, ms: 60_000 })
    t.is(r.status, 200, path)
    t.is(r.headers['content-length'], String(big.length), path)
    t.is(r.body.length, big.length, path)
    t.is(sha256(r.body), bigHash, path)
  }
  const small = await httpsRequest(port, { path: '/files/hello.txt' })
  t.is(small.body.toString(), 'Hello, static over TLS!')
  t.is(small.headers['content-type'], 'text/plain; charset=utf-8')
})

test('a 10 MiB static file with curl --cacert: byte-exact', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const out = join(certs.dir, `curl-${process.pid}.bin`)
  const r = await run(
    'curl',
    ['-sS', '--fail', '--max-time', '60', '--cacert', certs.ca, '--resolve', `localhost:${port}:127.0.0.1`, '-o', out, '-w', '%{size_download}', `https://localhost:${port}/files/big.bin`],
    '',
    90_000,
  )
  t.is(r.code, 0, r.all)
  t.is(r.stdout, String(big.length))
  t.is(sha256(readFileSync(out)), bigHash)
})

test('a reader that pauses: a 10 MiB file waits for it over TLS and arrives byte-exact', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const hash = await withTimeout(
    new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/send-file', ca: certs.caPem, agent: false }, (res) => {
          const chunks: Buffer[] = []
          let got = 0
          let paused = 0
          res.on('data', (d: Buffer) => {
            chunks.push(d)
            got += d.length
            // stop reading for a moment after every 2 MiB: the server must wait, not drop
            if (Math.floor(got / (2 * MiB)) > paused) {
              paused++
              res.pause()
              setImmediate(() => setTimeout(() => res.resume(), 200))
            }
          })
          res.on('end', () => resolve(`${got} ${sha256(Buffer.concat(chunks))}`))
          res.on('error', reject)
        })
        .on('error', reject)
    }),
    90_000,
    'the paused download to finish',
  )
  t.is(hash, `${big.length} ${bigHash}`)
})

test('ranges of a static file over TLS', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const r = await httpsRequest(port, { path: '/files/big.bin', headers: { range: 'bytes=5000000-5000099' } })
  t.is(r.status, 206)
  t.is(r.headers['content-range'], `bytes 5000000-5000099/${big.length}`)
  t.deepEqual(r.body, big.subarray(5_000_000, 5_000_100))
})

// ---------------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------------

test('pipelined requests on one TLS connection, written at once, are answered in order', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  const req = (name: string) => `GET /path/${name} HTTP/1.1\r\nHost: localhost\r\n\r\n`
  await c.write(req('one') + req('two') + req('three'))
  const responses = await c.readResponses(3)
  t.deepEqual(
    responses.map((r) => `${r.status} ${r.body}`),
    ['200 path=one', '200 path=two', '200 path=three'],
  )
  // and a mix with a body and a file in between, then more on the same connection
  const post = `POST /hash HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello`
  await c.write(req('a') + post + 'GET /files/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n' + req('b'))
  const more = await c.readResponses(4)
  t.deepEqual(
    more.map((r) => r.body.toString()),
    ['path=a', `${sha256('hello')} true`, 'Hello, static over TLS!', 'path=b'],
  )
  t.false(c.closed)
})

test('pipelined requests written one byte per TLS record are answered in order', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  const text = ['x', 'y'].map((n) => `GET /path/${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join('')
  c.socket.setNoDelay(true)
  for (const ch of text) await c.write(ch)
  const responses = await c.readResponses(2)
  t.deepEqual(
    responses.map((r) => r.body.toString()),
    ['path=x', 'path=y'],
  )
})

test('a chunked request body over TLS (raw), then a request after it', async (t) => {
  const { port } = await useTlsApp(t, routes, undefined, options)
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  const body = chunkedBody(['hel', 'lo ', 'tls'])
  await c.write(Buffer.concat([Buffer.from('POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n'), body, Buffer.from('GET /path/after HTTP/1.1\r\nHost: localhost\r\n\r\n')]))
  const [echo, after] = await c.readResponses(2)
  t.is(echo.body.toString(), 'hello tls')
  t.is(after.body.toString(), 'path=after')
})

// ---------------------------------------------------------------------------
// wss://
// ---------------------------------------------------------------------------

function wsRoutes(app: App) {
  app.ws('/echo', {
    maxPayloadLength: 4 * MiB,
    message: (ws, m) => void ws.send(m),
  })
  app.get('/', (req, res) => res.text('http too'))
}

function openWss(port: number, path = '/echo'): Promise<Client> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { ca: certs.caPem, perMessageDeflate: false, maxPayload: 8 * MiB })
  const client = new Client(ws)
  return withTimeout(
    new Promise<Client>((resolve, reject) => {
      ws.once('open', () => resolve(client))
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)))
    }),
    PATIENCE_MS,
    'a wss:// client to open',
  )
}

test('wss:// with the ws client: text and binary echo, and a clean close', async (t) => {
  const { port } = await useTlsApp(t, wsRoutes)
  const c = await openWss(port)
  t.teardown(() => c.ws.terminate())
  await c.send('hello over wss')
  t.is(await c.nextText(), 'hello over wss')
  const bin = randomBytes(1000)
  await c.send(bin, { binary: true })
  const back = await c.next()
  t.true(back.isBinary)
  t.deepEqual(back.data, bin)
  c.close(1000, 'bye')
  const closed = await c.waitClosed()
  t.is(closed.code, 1000)
  // the plain routes answer on the same TLS listener
  t.is((await httpsRequest(port)).body.toString(), 'http too')
})

test('wss:// big messages: 1 MiB text and 3 MiB binary echoed intact', async (t) => {
  const { port } = await useTlsApp(t, wsRoutes)
  const c = await openWss(port)
  t.teardown(() => c.ws.terminate())
  const text = 'abcdefghij'.repeat(MiB / 10 + 1).slice(0, MiB)
  await c.send(text)
  const back = await c.nextText(60_000)
  t.is(back.length, MiB)
  t.is(sha256(back), sha256(text))
  const bin = randomBytes(3 * MiB)
  await c.send(bin, { binary: true })
  const b = await c.next(60_000)
  t.true(b.isBinary)
  t.is(sha256(b.data), sha256(bin))
})

test('wss:// many messages both ways on several sockets, in order', async (t) => {
  const { port } = await useTlsApp(t, wsRoutes)
  const clients = await Promise.all([0, 1, 2, 3].map(() => openWss(port)))
  t.teardown(() => clients.forEach((c) => c.ws.terminate()))
  await Promise.all(
    clients.map(async (c, k) => {
      for (let i = 0; i < 300; i++) c.ws.send(`${k}:${i}`)
      const got = await c.messages.count(300, `client ${k}: 300 echoes`, 60_000)
      t.deepEqual(
        got.map((m) => m.text),
        Array.from({ length: 300 }, (_, i) => `${k}:${i}`),
      )
    }),
  )
})
