// Fastify, with the suite's routes. Listens on 127.0.0.1:$PORT.
// JSON answers go through response schemas (fast-json-stringify), as Fastify recommends.
import Fastify from 'fastify'

const app = Fastify({ logger: false, keepAliveTimeout: 120_000 })

// POST /echo takes any body as raw bytes.
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 16 * 1024 * 1024 }, (req, body, done) => done(null, body))

app.get('/', (req, reply) => {
  reply.type('text/plain; charset=utf-8').send('Hello, World!')
})
app.get(
  '/json',
  { schema: { response: { 200: { type: 'object', properties: { message: { type: 'string' } } } } } },
  () => ({ message: 'Hello, World!' }),
)
app.get(
  '/users/:id',
  { schema: { response: { 200: { type: 'object', properties: { id: { type: 'string' }, q: { type: 'string' } } } } } },
  (req) => ({ id: req.params.id, q: req.query.q }),
)
app.post('/echo', (req, reply) => {
  reply.type(req.headers['content-type'] ?? 'application/octet-stream').send(req.body ?? Buffer.alloc(0))
})

const port = Number(process.env.PORT)
await app.listen({ port, host: '127.0.0.1' })
console.log(`fastify listening on http://127.0.0.1:${port}/`)
