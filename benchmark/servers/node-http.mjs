// node:http, with the suite's routes. Listens on 127.0.0.1:$PORT.
// TLS (the tls scenarios): when the suite sets BENCH_TLS_CERT and BENCH_TLS_KEY (PEM file
// paths), node:https with that certificate and Node's TLS defaults, the same handler.
import { createReadStream, readFileSync, stat } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { join } from 'node:path'
import { pipeline } from 'node:stream'

const HELLO = 'Hello, World!'
const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE = 'application/json; charset=utf-8'

// The static scenarios' files (the suite sets BENCH_STATIC_DIR for those only), as a
// plain node:http server sends a file: stat, then fs.createReadStream piped to the answer.
const STATIC_DIR = process.env.BENCH_STATIC_DIR

function sendFile(req, res, name) {
  if (!name || name.includes('/') || name.includes('\\') || name.startsWith('.')) return send(res, 404, TEXT, 'Not Found')
  const file = join(STATIC_DIR, name)
  stat(file, (error, info) => {
    if (error || !info.isFile()) return send(res, 404, TEXT, 'Not Found')
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': info.size,
      'last-modified': info.mtime.toUTCString(),
    })
    if (req.method === 'HEAD') return res.end()
    pipeline(createReadStream(file), res, () => {})
  })
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const tls = process.env.BENCH_TLS_CERT ? { cert: readFileSync(process.env.BENCH_TLS_CERT), key: readFileSync(process.env.BENCH_TLS_KEY) } : null

function handler(req, res) {
  const url = req.url
  const mark = url.indexOf('?')
  const path = mark === -1 ? url : url.slice(0, mark)
  if (req.method === 'GET' || req.method === 'HEAD') {
    if (path === '/') return send(res, 200, TEXT, HELLO)
    if (STATIC_DIR && path.startsWith('/static/')) return sendFile(req, res, path.slice('/static/'.length))
    if (path === '/json') return send(res, 200, JSON_TYPE, JSON.stringify({ message: HELLO }))
    if (path.startsWith('/users/') && path.indexOf('/', 7) === -1 && path.length > 7) {
      const query = new URLSearchParams(mark === -1 ? '' : url.slice(mark + 1))
      const id = decodeURIComponent(path.slice(7))
      return send(res, 200, JSON_TYPE, JSON.stringify({ id, q: query.get('q') ?? undefined }))
    }
  } else if (req.method === 'POST' && path === '/echo') {
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      res.writeHead(200, {
        'content-type': req.headers['content-type'] ?? 'application/octet-stream',
        'content-length': body.length,
      })
      res.end(body)
    })
    return
  }
  send(res, 404, TEXT, 'Not Found')
}

const server = tls ? https.createServer(tls, handler) : http.createServer(handler)

// Idle keep-alive connections stay open for the idle scenario (the default is 5 s).
server.keepAliveTimeout = 120_000
const port = Number(process.env.PORT)
server.listen(port, '127.0.0.1', () => console.log(`node:${tls ? 'https' : 'http'} listening on ${tls ? 'https' : 'http'}://127.0.0.1:${port}/`))
