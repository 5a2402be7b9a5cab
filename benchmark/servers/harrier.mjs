// harrier, with the suite's routes. Listens on 127.0.0.1:$PORT. Needs `npm run build`.
//
// App options come from the environment, over the defaults below: HARRIER_IO_THREADS=2
// gives { ioThreads: 2 }, HARRIER_DRIVER=threads { driver: 'threads' }, and so on for any
// option (numbers and true/false are converted, anything else is passed as a string).
//
// WebSocket routes (the ws scenarios), where the build has app.ws:
//   GET /ws/echo       every message sent back as received: ws.send(m)
//   GET /ws/broadcast  subscribed to topic 'b' on open; every message published to 'b'
//                      with app.publish (every subscriber, the sender too)
// both with idleTimeout 120 s and maxPayloadLength 16 MiB (as Bun's), and
// perMessageDeflate on when BENCH_WS_DEFLATE=1. The suite sets BENCH_WS=1 in the ws
// scenarios: a build without app.ws then fails to start, saying so.
//
// TLS (the tls scenarios): when the suite sets BENCH_TLS_CERT and BENCH_TLS_KEY (PEM file
// paths), the same routes are served over TLS: app.listen({ port, host, tls: { cert, key } }).
// With HARRIER_DRIVER=threads the engine does TLS on its I/O threads, with the inline
// driver on the JS thread. A build without TLS ignores the option and serves plaintext;
// the suite then fails the measurement, saying so.
import { App } from '../../index.mjs'

// As for the peers: idle keep-alive connections stay open for the idle scenario (the
// default closes them after 5 s), and 10,000 of them must fit under the connection cap.
const options = { keepAliveTimeout: 120_000, maxConnections: 100_000 }
for (const [key, raw] of Object.entries(process.env)) {
  if (!key.startsWith('HARRIER_') || raw === undefined) continue
  const name = key
    .slice('HARRIER_'.length)
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
  options[name] = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw
}

const app = new App(options)
app.get('/', (req, res) => res.text('Hello, World!'))
app.get('/json', (req, res) => res.json({ message: 'Hello, World!' }))
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }))
app.post('/echo', async (req, res) =>
  res.header('content-type', req.header('content-type') ?? 'application/octet-stream').send(Buffer.from(await req.arrayBuffer())),
)
// The static scenarios' files (the suite sets BENCH_STATIC_DIR for those only), served by
// the engine with app.static's defaults.
if (process.env.BENCH_STATIC_DIR) app.static('/static', process.env.BENCH_STATIC_DIR)
app.onError = (error) => console.error(error)

const wsDeflate = process.env.BENCH_WS_DEFLATE === '1'
const hasWs = typeof app.ws === 'function' && typeof app.publish === 'function'
if (hasWs) {
  const ws = { idleTimeout: 120, maxPayloadLength: 16 * 1024 * 1024, perMessageDeflate: wsDeflate }
  app.ws('/ws/echo', {
    ...ws,
    message(socket, message) {
      socket.send(message)
    },
  })
  app.ws('/ws/broadcast', {
    ...ws,
    open(socket) {
      socket.subscribe('b')
    },
    message(socket, message) {
      app.publish('b', message)
    },
  })
} else if (process.env.BENCH_WS === '1') {
  throw new Error('this build of harrier has no app.ws / app.publish (WebSocket support): the ws scenarios cannot run')
}

const port = Number(process.env.PORT)
const tls = process.env.BENCH_TLS_CERT ? { cert: process.env.BENCH_TLS_CERT, key: process.env.BENCH_TLS_KEY } : null
await app.listen({ port, host: '127.0.0.1', ...(tls ? { tls } : {}) })
console.log(
  `harrier listening on ${tls ? 'https' : 'http'}://127.0.0.1:${port}/, driver ${app.driver ?? 'threads'}` +
    // The I/O backend, where this build reports one (HARRIER_IO); an older build ignores the option.
    `${app.io !== undefined ? `, io ${app.io}` : options.io !== undefined ? ', io not reported by this build' : ''}` +
    `, options ${JSON.stringify(options)}` +
    `${process.env.BENCH_STATIC_DIR ? `, static ${process.env.BENCH_STATIC_DIR}` : ''}` +
    `${hasWs ? `, ws /ws/echo /ws/broadcast, permessage-deflate ${wsDeflate ? 'on' : 'off'}` : ''}`,
)
