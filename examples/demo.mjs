// The demo site: `npm run demo`, then open http://localhost:3000 (PORT and HOST override).
//
//   /                 this landing page (examples/demo.html), answered by JavaScript
//   /assets/*         its stylesheet, script and images (examples/public/), served by the engine
//   /_harrier         the live dashboard, /metrics (Prometheus) and /health, answered by the engine
//   /chat/:room       a WebSocket chat room, fanned out by the engine's pub/sub
//   /clock            the server's clock, pushed once a second as Server-Sent Events
//   /hello /json /users/:id /echo /stream    a few routes to try
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { App } from 'harrier'

const app = new App()

// Runs for every request that reaches JavaScript; what the engine answers itself (the
// assets, the dashboard, /metrics, /health, 404s) never comes here, so it has no such header.
app.use(async (req, res, next) => {
  res.header('x-powered-by', 'harrier')
  await next()
})

app.static('/assets', fileURLToPath(new URL('./public/', import.meta.url)))
app.dashboard('/_harrier')
app.metricsRoute('/metrics')
app.healthRoute('/health')

const page = readFileSync(new URL('./demo.html', import.meta.url), 'utf8')
app.get('/', (req, res) => res.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-cache').send(page))

app.get('/hello', (req, res) => res.text('Hello, World!'))
app.get('/json', (req, res) => res.json({ message: 'Hello, World!', at: new Date().toISOString() }))
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q ?? null }))
app.post('/echo', async (req, res) =>
  res.header('content-type', req.header('content-type') ?? 'application/octet-stream').send(Buffer.from(await req.arrayBuffer())),
)
app.get('/stream', async (req, res) => {
  for (let i = 1; i <= 5 && !req.signal.aborted; i++) {
    res.write(`line ${i}\n`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  res.end('done\n')
})

// An EventSource that reconnects says which tick it saw last: the count goes on from there.
app.get('/clock', (req, res) => {
  const events = res.eventStream({ retry: 2000, heartbeat: 15000 })
  let id = Number(req.lastEventId) || 0
  const tick = () => events.send({ id: String(++id), event: 'tick', data: JSON.stringify({ now: new Date().toISOString() }) })
  tick()
  const timer = setInterval(tick, 1000)
  events.closed.then(() => clearInterval(timer))
})

let guests = 0
app.ws('/chat/:room', {
  upgrade: () => ({ name: `guest ${++guests}` }),
  open(ws) {
    ws.subscribe(ws.params.room)
    ws.send(`welcome, ${ws.data.name}: ${app.subscriberCount(ws.params.room) - 1} other(s) here`)
    ws.publish(ws.params.room, `${ws.data.name} joined`)
  },
  message(ws, message) {
    ws.publish(ws.params.room, `${ws.data.name}: ${message}`)
  },
  close(ws) {
    app.publish(ws.params.room, `${ws.data.name} left`)
  },
  maxPayloadLength: 4096,
})

const { port, host } = await app.listen()
console.log(`harrier demo listening on http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`)
