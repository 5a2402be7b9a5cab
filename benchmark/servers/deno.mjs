// Deno.serve, with the suite's routes. Run with the `deno` binary (npm package `deno`):
//   deno run --allow-net --allow-env benchmark/servers/deno.mjs      (listens on 127.0.0.1:$PORT)
const HELLO = 'Hello, World!'
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }

function handler(req) {
  // req.url is absolute: find the path after the authority without building a URL object.
  const url = req.url
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const mark = url.indexOf('?', start)
  const path = mark === -1 ? url.slice(start) : url.slice(start, mark)
  const method = req.method
  if (method === 'GET' || method === 'HEAD') {
    if (path === '/') return new Response(HELLO, { headers: TEXT })
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
  return new Response('Not Found', { status: 404, headers: TEXT })
}

const port = Number(Deno.env.get('PORT'))
Deno.serve({ port, hostname: '127.0.0.1', onListen: () => console.log(`Deno.serve listening on http://127.0.0.1:${port}/`) }, handler)
