// node:http with the `ws` package: the WebSocket routes only (plus GET /, the suite's
// readiness check). Listens on 127.0.0.1:$PORT. BENCH_WS_DEFLATE=1 turns on
// permessage-deflate (ws's defaults: messages of 1 KiB and more are compressed).
//
//   GET /ws/echo       every message sent back as received (text as text, binary as binary)
//   GET /ws/broadcast  every message sent to every connection on the route (the sender too),
//                      by iterating the WebSocketServer's clients (ws has no pub/sub)
import http from 'node:http'
import { WebSocketServer } from 'ws'

const deflate = process.env.BENCH_WS_DEFLATE === '1'
const options = { noServer: true, perMessageDeflate: deflate, maxPayload: 16 * 1024 * 1024 }
const echo = new WebSocketServer({ ...options, clientTracking: false })
const broadcast = new WebSocketServer(options)

echo.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})
broadcast.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of broadcast.clients) {
      if (client.readyState === 1) client.send(data, { binary: isBinary })
    }
  })
})

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 13 })
    return res.end('Hello, World!')
  }
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 9 })
  res.end('Not Found')
})
server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0]
  const wss = path === '/ws/echo' ? echo : path === '/ws/broadcast' ? broadcast : null
  if (!wss) {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})

// Idle keep-alive connections stay open (the default is 5 s); WebSockets have no timeout in ws.
server.keepAliveTimeout = 120_000
const port = Number(process.env.PORT)
server.listen(port, '127.0.0.1', () =>
  console.log(`node:http + ws listening on http://127.0.0.1:${port}/, permessage-deflate ${deflate ? 'on' : 'off'}`),
)
