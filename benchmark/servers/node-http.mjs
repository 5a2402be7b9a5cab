// Baseline for the benchmark: the same route as servers/harrier.mjs, written
// with node:http. Listens on 127.0.0.1:$PORT.
import http from 'node:http'

const body = 'Hello, World!'
const port = Number(process.env.PORT)

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    })
    res.end(body)
    return
  }
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 9 })
  res.end('Not Found')
})

server.listen(port, '127.0.0.1', () => {
  console.log(`node:http listening on http://127.0.0.1:${port}/`)
})
