// node:http for the streaming benchmark: the same routes as harrier.mjs, SSE written by hand.
import http from 'node:http'

const CHUNK = Buffer.alloc(64 * 1024, 120)
const TOTAL = 64 * 2 ** 20
const streams = new Set()
let tick = 0
setInterval(() => {
  const line = `data: ${++tick}\n\n`
  for (const res of streams) res.write(line)
}, 100)

const server = http.createServer((req, res) => {
  if (req.url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write(':\n\n')
    streams.add(res)
    res.on('close', () => streams.delete(res))
  } else if (req.url === '/download') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    let sent = 0
    const pump = () => {
      while (sent < TOTAL) {
        sent += CHUNK.length
        if (!res.write(CHUNK)) return res.once('drain', pump)
      }
      res.end()
    }
    pump()
  } else {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
    res.end('Hello, World!')
  }
})
server.keepAliveTimeout = 120_000
server.listen(Number(process.env.PORT), '127.0.0.1')
