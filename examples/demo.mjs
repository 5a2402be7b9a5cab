// The demo site: `npm run demo`, then open http://localhost:3000 (PORT and HOST override).
import { App } from 'harrier'

const app = new App()

app.use(async (req, res, next) => {
  res.header('x-powered-by', 'harrier')
  await next()
})

const page = `<!doctype html>
<meta charset="utf-8">
<title>harrier demo</title>
<h1>harrier</h1>
<p>An HTTP server for Node.js with a Rust engine. Try:</p>
<ul>
  <li><a href="/hello">/hello</a>: plain text</li>
  <li><a href="/json">/json</a>: JSON</li>
  <li><a href="/users/42?q=harrier">/users/42?q=harrier</a>: a route param and the query</li>
  <li><a href="/stream">/stream</a>: a streamed (chunked) response, one line every 100 ms</li>
  <li><code>curl -d 'any body' http://localhost:PORT/echo</code>: echoes the request body</li>
  <li><a href="/nope">/nope</a>: a 404 answered by the engine without calling JavaScript</li>
</ul>
<h2>Chat (WebSocket, pub/sub fanned out by the engine)</h2>
<p>Open this page in two tabs and talk.</p>
<div id="log" style="border:1px solid #ccc;height:12em;overflow:auto;padding:.3em;font-family:monospace"></div>
<form id="say"><input id="text" autocomplete="off" placeholder="say something" style="width:20em"> <button>send</button></form>
<script>
  const log = document.getElementById('log')
  const line = (s) => { const p = document.createElement('div'); p.textContent = s; log.append(p); log.scrollTop = log.scrollHeight }
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/chat/lobby')
  ws.onmessage = (e) => line(e.data)
  ws.onclose = (e) => line('(closed: ' + e.code + ')')
  document.getElementById('say').onsubmit = (e) => {
    e.preventDefault()
    const text = document.getElementById('text')
    if (text.value) { ws.send(text.value); line('you: ' + text.value); text.value = '' }
  }
</script>`

app.get('/', (req, res) => res.header('content-type', 'text/html; charset=utf-8').send(page))
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
