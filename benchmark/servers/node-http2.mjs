// node:http2, with the suite's HTTP/2 routes: GET / (the hello), GET /json and, in the
// static scenarios, GET /static/<file>. Listens on 127.0.0.1:$PORT.
// Cleartext: http2.createServer, h2c by prior knowledge (node:http2 has no HTTP/1.1 there).
// TLS (BENCH_TLS_CERT, BENCH_TLS_KEY: PEM file paths): http2.createSecureServer, h2 by ALPN,
// Node's TLS defaults. The same file runs under Bun (the bun-http2 server), whose node:http2
// implements these calls.
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import { join } from 'node:path'

const HELLO = 'Hello, World!'
const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE = 'application/json; charset=utf-8'
const STATIC_DIR = process.env.BENCH_STATIC_DIR

function send(stream, status, type, body) {
  stream.respond({ ':status': status, 'content-type': type, 'content-length': Buffer.byteLength(body) })
  stream.end(body)
}

// respondWithFile is node:http2's own way to send a file (it stats it and streams it).
function sendFile(stream, name) {
  if (!name || name.includes('/') || name.includes('\\') || name.startsWith('.')) return send(stream, 404, TEXT, 'Not Found')
  stream.respondWithFile(
    join(STATIC_DIR, name),
    { 'content-type': 'application/octet-stream' },
    {
      statCheck: (stat, headers) => {
        headers['last-modified'] = stat.mtime.toUTCString()
      },
      onError: () => (stream.headersSent ? stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR) : send(stream, 404, TEXT, 'Not Found')),
    },
  )
}

function onStream(stream, headers) {
  const method = headers[':method']
  const url = headers[':path'] ?? '/'
  const mark = url.indexOf('?')
  const path = mark === -1 ? url : url.slice(0, mark)
  if (method === 'GET' || method === 'HEAD') {
    if (path === '/') return send(stream, 200, TEXT, HELLO)
    if (path === '/json') return send(stream, 200, JSON_TYPE, JSON.stringify({ message: HELLO }))
    if (STATIC_DIR && path.startsWith('/static/')) return sendFile(stream, path.slice('/static/'.length))
  }
  send(stream, 404, TEXT, 'Not Found')
}

const tls = process.env.BENCH_TLS_CERT ? { cert: readFileSync(process.env.BENCH_TLS_CERT), key: readFileSync(process.env.BENCH_TLS_KEY) } : null
// The -c1 -m100 scenario needs 100 concurrent streams on one connection (Node's default allows more).
const settings = { maxConcurrentStreams: 1000 }
const server = tls ? http2.createSecureServer({ ...tls, settings }) : http2.createServer({ settings })
server.on('stream', onStream)
server.on('sessionError', () => {})
// Idle sessions stay open, as the other servers' keep-alive connections do.
server.setTimeout(120_000)
const port = Number(process.env.PORT)
const runtime = typeof Bun === 'undefined' ? `node ${process.version}` : `bun ${Bun.version}`
server.listen(port, '127.0.0.1', () => console.log(`node:http2 (${runtime}) listening on ${tls ? 'h2 https' : 'h2c http'}://127.0.0.1:${port}/`))
