// Bun.serve and Deno.serve for the streaming benchmark (the same file runs on both): SSE and
// the 64 MiB download as ReadableStreams, pulled as the client takes them.
const CHUNK = new Uint8Array(64 * 1024).fill(120)
const TOTAL = 64 * 2 ** 20
const encoder = new TextEncoder()
const streams = new Set()
let tick = 0
setInterval(() => {
  const line = encoder.encode(`data: ${++tick}\n\n`)
  for (const c of streams) {
    try {
      c.enqueue(line)
    } catch {
      streams.delete(c)
    }
  }
}, 100)

function handle(req) {
  const path = new URL(req.url).pathname
  if (path === '/sse') {
    let me
    const body = new ReadableStream({
      start(c) {
        me = c
        c.enqueue(encoder.encode(':\n\n'))
        streams.add(c)
      },
      cancel() {
        streams.delete(me)
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
  }
  if (path === '/download') {
    let sent = 0
    const body = new ReadableStream({
      pull(c) {
        if (sent >= TOTAL) return c.close()
        sent += CHUNK.length
        c.enqueue(CHUNK)
      },
    }, { highWaterMark: 1 })
    return new Response(body, { headers: { 'content-type': 'application/octet-stream' } })
  }
  return new Response('Hello, World!', { headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

const port = Number(globalThis.process?.env?.PORT ?? globalThis.Deno?.env.get('PORT'))
if (globalThis.Bun) Bun.serve({ port, hostname: '127.0.0.1', idleTimeout: 0, fetch: handle })
else Deno.serve({ port, hostname: '127.0.0.1', onListen() {} }, handle)
