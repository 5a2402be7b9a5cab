// harrier for the streaming benchmark (benchmark/streaming.mjs): GET /sse an event stream
// fed by one 100 ms timer for every open stream, GET /download 64 MiB written from JS in
// 64 KiB chunks with backpressure. Listens on 127.0.0.1:$PORT.
import { App } from '../../index.mjs'

const CHUNK = Buffer.alloc(64 * 1024, 120)
const TOTAL = 64 * 2 ** 20
const streams = new Set()
let tick = 0
setInterval(() => {
  const data = String(++tick)
  for (const s of streams) s.send({ data })
}, 100)

const app = new App({ keepAliveTimeout: 120_000, maxConnections: 100_000, driver: process.env.HARRIER_DRIVER, io: process.env.HARRIER_IO })
app.get('/', (req, res) => res.text('Hello, World!'))
app.get('/sse', (req, res) => {
  const s = res.eventStream()
  streams.add(s)
  s.closed.then(() => streams.delete(s))
})
app.get('/download', async (req, res) => {
  res.header('content-type', 'application/octet-stream')
  for (let sent = 0; sent < TOTAL && !req.aborted; sent += CHUNK.length) {
    if (!res.write(CHUNK)) await res.drained()
  }
  res.end()
})
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1', signals: true })
