// Bun.serve, with the suite's routes on Bun's own router. Run with the `bun` binary
// (npm package `bun`): bun benchmark/servers/bun.mjs      (listens on 127.0.0.1:$PORT)
//
// WebSocket routes (server.upgrade from fetch; one websocket handler for both, told apart
// by the data given to upgrade): GET /ws/echo sends every message back as received,
// GET /ws/broadcast subscribes each connection to topic 'b' and publishes every message
// to it with server.publish (every subscriber, the sender too). BENCH_WS_DEFLATE=1 turns
// on permessage-deflate (and asks send/publish to compress).
//
// TLS (the tls scenarios): when the suite sets BENCH_TLS_CERT and BENCH_TLS_KEY (PEM file
// paths), Bun.serve's `tls: { cert, key }` with Bun.file of each, Bun's TLS defaults.
//
// The static scenarios' files (the suite sets BENCH_STATIC_DIR for those only) under
// /static/, as Bun's docs serve a file: a Response of Bun.file (sendfile(2) in plaintext).
const HELLO = 'Hello, World!'
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }

const port = Number(process.env.PORT)
const STATIC_DIR = process.env.BENCH_STATIC_DIR
const deflate = process.env.BENCH_WS_DEFLATE === '1'
const WS_ROUTES = { '/ws/echo': 'echo', '/ws/broadcast': 'broadcast' }
const tls = process.env.BENCH_TLS_CERT ? { cert: Bun.file(process.env.BENCH_TLS_CERT), key: Bun.file(process.env.BENCH_TLS_KEY) } : undefined
const notFound = () => new Response('Not Found', { status: 404, headers: TEXT })

async function sendFile(name) {
  if (!name || name.includes('/') || name.startsWith('.')) return notFound()
  const file = Bun.file(`${STATIC_DIR}/${name}`)
  if (!(await file.exists())) return notFound()
  return new Response(file, { headers: { 'content-type': 'application/octet-stream' } })
}

const server = Bun.serve({
  port,
  hostname: '127.0.0.1',
  ...(tls ? { tls } : {}),
  // Idle keep-alive connections stay open for the idle scenario (the default is 10 s).
  idleTimeout: 120,
  routes: {
    // Handlers, not static Responses: a static Response would be answered without JS.
    '/': { GET: () => new Response(HELLO, { headers: TEXT }) },
    '/json': { GET: () => Response.json({ message: HELLO }, { headers: JSON_TYPE }) },
    '/users/:id': {
      GET: (req) => {
        const url = req.url
        const mark = url.indexOf('?')
        const query = new URLSearchParams(mark === -1 ? '' : url.slice(mark + 1))
        return Response.json({ id: req.params.id, q: query.get('q') ?? undefined }, { headers: JSON_TYPE })
      },
    },
    '/echo': {
      POST: async (req) =>
        new Response(await req.arrayBuffer(), {
          headers: { 'content-type': req.headers.get('content-type') ?? 'application/octet-stream' },
        }),
    },
  },
  fetch(req, server) {
    const url = req.url
    const start = url.indexOf('/', url.indexOf('//') + 2)
    const mark = url.indexOf('?', start)
    const path = mark === -1 ? url.slice(start) : url.slice(start, mark)
    const route = WS_ROUTES[path]
    if (route && server.upgrade(req, { data: { route } })) return undefined
    if (STATIC_DIR && path.startsWith('/static/') && (req.method === 'GET' || req.method === 'HEAD')) {
      return sendFile(path.slice('/static/'.length))
    }
    return notFound()
  },
  websocket: {
    idleTimeout: 120,
    maxPayloadLength: 16 * 1024 * 1024,
    perMessageDeflate: deflate,
    open(ws) {
      if (ws.data.route === 'broadcast') ws.subscribe('b')
    },
    message(ws, message) {
      if (ws.data.route === 'echo') ws.send(message, deflate)
      else server.publish('b', message, deflate)
    },
  },
})
console.log(`Bun.serve listening on ${tls ? 'https' : 'http'}://127.0.0.1:${port}/, permessage-deflate ${deflate ? 'on' : 'off'}`)
