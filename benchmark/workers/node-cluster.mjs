// node:http under node:cluster: WORKERS processes on PORT (the primary hands connections out
// round-robin, Node's default on Linux).
import cluster from 'node:cluster'
import http from 'node:http'
import { burn } from './burn.mjs'

if (cluster.isPrimary) {
  for (let i = 0; i < Number(process.env.WORKERS ?? 1); i++) cluster.fork()
} else {
  http
    .createServer((req, res) => {
      const body = req.url === '/burn' ? String(burn(req.url.length)) : 'Hello, World!'
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    .listen(Number(process.env.PORT), '127.0.0.1')
}
