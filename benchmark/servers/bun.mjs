// Bun.serve, with the suite's routes on Bun's own router. Run with the `bun` binary
// (npm package `bun`): bun benchmark/servers/bun.mjs      (listens on 127.0.0.1:$PORT)
const HELLO = 'Hello, World!'
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }

const port = Number(process.env.PORT)
Bun.serve({
  port,
  hostname: '127.0.0.1',
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
  fetch: () => new Response('Not Found', { status: 404, headers: TEXT }),
})
console.log(`Bun.serve listening on http://127.0.0.1:${port}/`)
