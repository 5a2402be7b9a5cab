// Request data stays the request's own for as long as the request object lives: the inline
// driver writes batches of heads one after the other into shared arenas and never over a
// request already handed to JS, and a batch with body bytes gets buffers of its own.
import test from 'ava'
import { RawClient, deferred, rawReq, useApp, withTimeout } from './helpers.ts'

test('thousands of requests held across an await keep their own method, path, params, query and headers', async (t) => {
  // Sent in waves, each one let go only once the handlers of the last have run: many small
  // batches (as a server sees them), some 300 KiB of heads, several arenas filled and let go
  // while every request is still held.
  const waves = 20
  const perWave = 100
  const total = waves * perWave
  const release = deferred()
  let arrived = 0
  let waveDone = deferred()
  const { port } = await useApp(
    t,
    (app) => {
      app.get('/item/:id', async (req, res) => {
        arrived++
        if (arrived % perWave === 0) waveDone.resolve()
        await release.promise
        res.json({ method: req.method, url: req.url, id: req.params.id, q: req.query.q, tag: req.header('x-tag'), headers: req.headers['x-tag'] })
      })
    },
    { maxPendingRequests: 4 * total },
  )
  // 125 per connection in all: under the engine's 128 requests in flight per connection.
  const clients = await Promise.all(Array.from({ length: 16 }, () => RawClient.connect(port)))
  const url = (n: number) => `/item/${n}?q=${'q'.repeat(n % 17)}${n}`
  const tag = (n: number) => `tag-${n}-${'t'.repeat(n % 23)}`
  try {
    const sent: number[][] = clients.map(() => [])
    for (let w = 0; w < waves; w++) {
      waveDone = deferred()
      for (let k = 0; k < perWave; k++) {
        const n = w * perWave + k
        const ci = n % clients.length
        sent[ci].push(n)
        clients[ci].socket.write(rawReq('GET', url(n), { 'x-tag': tag(n) }))
      }
      await withTimeout(waveDone.promise, 20_000, `wave ${w} to reach the handlers`)
    }
    release.resolve()
    for (const [ci, c] of clients.entries()) {
      const responses = await c.readResponses(sent[ci].length, { ms: 60_000 })
      for (const [k, r] of responses.entries()) {
        const n = sent[ci][k]
        t.deepEqual(JSON.parse(r.body.toString()), { method: 'GET', url: url(n), id: String(n), q: `${'q'.repeat(n % 17)}${n}`, tag: tag(n), headers: tag(n) })
      }
    }
  } finally {
    for (const c of clients) c.socket.destroy()
  }
})

test('a body chunk holds that body only, not the heads of other requests', async (t) => {
  const seen: Buffer[] = []
  const { port } = await useApp(t, (app) => {
    app.get('/', (req, res) => res.text('ok'))
    app.post('/up', async (req, res) => {
      for await (const chunk of req) seen.push(Buffer.from((chunk as Buffer).buffer))
      res.text('stored')
    })
  })
  const c = await RawClient.connect(port)
  try {
    const secret = 'x-secret: do-not-leak-into-bodies'
    c.socket.write(Buffer.concat([rawReq('GET', '/', { 'x-secret': 'do-not-leak-into-bodies' }), rawReq('POST', '/up', { 'content-length': '5' }, 'hello')]))
    const [a, b] = await c.readResponses(2)
    t.is(a.body.toString(), 'ok')
    t.is(b.body.toString(), 'stored')
    t.true(seen.length > 0)
    for (const whole of seen) t.false(whole.toString('latin1').includes(secret.split(': ')[1]), 'a body chunk’s memory holds another request’s header')
  } finally {
    c.socket.destroy()
  }
})
