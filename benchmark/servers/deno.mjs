// Deno.serve, with the suite's routes. Run with the `deno` binary (npm package `deno`):
//   deno run --allow-net --allow-env benchmark/servers/deno.mjs      (listens on 127.0.0.1:$PORT)
//
// WebSocket routes through Deno.upgradeWebSocket: GET /ws/echo sends every message back
// (socket.send(e.data): text as text, binary as binary), GET /ws/broadcast sends every
// message to every open socket of the route (a Set; Deno has no pub/sub), the sender too.
// Deno's WebSocket server has no permessage-deflate: it never accepts the extension.
//
// TLS (the tls scenarios): when the suite sets BENCH_TLS_CERT and BENCH_TLS_KEY (PEM file
// paths; the suite then runs deno with --allow-read), Deno.serve({ cert, key }) with the
// PEM text of each, Deno's TLS defaults.
//
// The static scenarios' files (the suite sets BENCH_STATIC_DIR for those only, and runs deno
// with --allow-read) under /static/, as Deno's docs serve a file: Deno.open, then a Response
// of the file's readable stream with its length.
const HELLO = 'Hello, World!'
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }

const broadcast = new Set()
const STATIC_DIR = Deno.env.get('BENCH_STATIC_DIR')
const notFound = () => new Response('Not Found', { status: 404, headers: TEXT })

async function sendFile(req, name) {
  if (!name || name.includes('/') || name.startsWith('.')) return notFound()
  let file
  try {
    file = await Deno.open(`${STATIC_DIR}/${name}`, { read: true })
  } catch {
    return notFound()
  }
  const info = await file.stat()
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(info.size) }
  if (req.method === 'HEAD') {
    file.close()
    return new Response(null, { headers })
  }
  return new Response(file.readable, { headers })
}

function upgrade(req, route) {
  // Idle WebSockets stay open for the idle scenario (Deno pings after idleTimeout seconds).
  const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 120 })
  socket.binaryType = 'arraybuffer'
  if (route === 'echo') {
    socket.onmessage = (e) => socket.send(e.data)
  } else {
    socket.onopen = () => broadcast.add(socket)
    socket.onclose = () => broadcast.delete(socket)
    socket.onmessage = (e) => {
      for (const s of broadcast) if (s.readyState === 1) s.send(e.data)
    }
  }
  socket.onerror = () => {}
  return response
}

function handler(req) {
  // req.url is absolute: find the path after the authority without building a URL object.
  const url = req.url
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const mark = url.indexOf('?', start)
  const path = mark === -1 ? url.slice(start) : url.slice(start, mark)
  const method = req.method
  if (method === 'GET' || method === 'HEAD') {
    if (path === '/ws/echo' || path === '/ws/broadcast') {
      if ((req.headers.get('upgrade') ?? '').toLowerCase() === 'websocket') return upgrade(req, path === '/ws/echo' ? 'echo' : 'broadcast')
      return new Response('Upgrade Required', { status: 426, headers: TEXT })
    }
    if (path === '/') return new Response(HELLO, { headers: TEXT })
    if (STATIC_DIR && path.startsWith('/static/')) return sendFile(req, path.slice('/static/'.length))
    if (path === '/json') return new Response(JSON.stringify({ message: HELLO }), { headers: JSON_TYPE })
    if (path.startsWith('/users/') && path.indexOf('/', 7) === -1 && path.length > 7) {
      const query = new URLSearchParams(mark === -1 ? '' : url.slice(mark + 1))
      const id = decodeURIComponent(path.slice(7))
      return new Response(JSON.stringify({ id, q: query.get('q') ?? undefined }), { headers: JSON_TYPE })
    }
  } else if (method === 'POST' && path === '/echo') {
    return req.arrayBuffer().then(
      (body) => new Response(body, { headers: { 'content-type': req.headers.get('content-type') ?? 'application/octet-stream' } }),
    )
  }
  return notFound()
}

const port = Number(Deno.env.get('PORT'))
const certFile = Deno.env.get('BENCH_TLS_CERT')
const tls = certFile ? { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(Deno.env.get('BENCH_TLS_KEY')) } : {}
const scheme = certFile ? 'https' : 'http'
Deno.serve({ port, hostname: '127.0.0.1', ...tls, onListen: () => console.log(`Deno.serve listening on ${scheme}://127.0.0.1:${port}/`) }, handler)
