// node:http, with the suite's routes. Listens on 127.0.0.1:$PORT.
import http from 'node:http'

const HELLO = 'Hello, World!'
const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE = 'application/json; charset=utf-8'

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const server = http.createServer((req, res) => {
  const url = req.url
  const mark = url.indexOf('?')
  const path = mark === -1 ? url : url.slice(0, mark)
  if (req.method === 'GET' || req.method === 'HEAD') {
    if (path === '/') return send(res, 200, TEXT, HELLO)
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
})

// Idle keep-alive connections stay open for the idle scenario (the default is 5 s).
server.keepAliveTimeout = 120_000
const port = Number(process.env.PORT)
server.listen(port, '127.0.0.1', () => console.log(`node:http listening on http://127.0.0.1:${port}/`))
