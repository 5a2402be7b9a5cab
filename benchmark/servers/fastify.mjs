// Fastify, with the suite's routes. Listens on 127.0.0.1:$PORT.
// JSON answers go through response schemas (fast-json-stringify), as Fastify recommends.
// TLS (the tls scenarios): when the suite sets BENCH_TLS_CERT and BENCH_TLS_KEY (PEM file
// paths), Fastify's `https` option (node:https underneath).
import { readFileSync } from 'node:fs'

import Fastify from 'fastify'

const https = process.env.BENCH_TLS_CERT ? { cert: readFileSync(process.env.BENCH_TLS_CERT), key: readFileSync(process.env.BENCH_TLS_KEY) } : null
const app = Fastify({ logger: false, keepAliveTimeout: 120_000, ...(https ? { https } : {}) })

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
console.log(`fastify listening on ${https ? 'https' : 'http'}://127.0.0.1:${port}/`)
