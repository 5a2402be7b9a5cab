// The Hono app of the fetch-hono tests (not a spec file): Hono's own middleware and helpers,
// the same module served by harrier (in the test's process) and by @hono/node-server (in a
// child process, __test__/hono-node-server.ts), so that the answers can be compared.

import { Hono } from 'hono'
import { basicAuth } from 'hono/basic-auth'
import { getCookie, setCookie } from 'hono/cookie'
import { cors } from 'hono/cors'
import { etag } from 'hono/etag'
import { HTTPException } from 'hono/http-exception'
import { logger } from 'hono/logger'
import { stream, streamSSE, streamText } from 'hono/streaming'

/** `log` receives hono/logger's lines. */
export function honoApp(log: (line: string) => void = () => {}) {
  const app = new Hono()
  app.use(logger(log))
  app.use('/api/*', cors({ origin: ['https://a.example'], allowMethods: ['GET', 'POST', 'PUT'], exposeHeaders: ['x-total'], maxAge: 600, credentials: true }))
  app.use('/etag/*', etag())
  app.use('/admin/*', basicAuth({ username: 'ada', password: 'lovelace' }))

  app.get('/', (c) => c.text('Hello, World!'))
  app.get('/json', (c) => c.json({ message: 'Hello, World!', list: [1, 2, 3] }))
  app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), q: c.req.query('q'), all: c.req.queries('tag') ?? null }))
  app.get('/html', (c) => c.html('<h1>hi</h1>'))
  app.get('/status', (c) => c.text('created', 201, { 'x-custom': 'yes' }))
  app.get('/redirect', (c) => c.redirect('/users/1', 301))
  app.get('/headers', (c) => c.json({ ua: c.req.header('user-agent') ?? null, accept: c.req.header('accept') ?? null, custom: c.req.header('x-custom') ?? null }))
  app.get('/api/items', (c) => {
    c.header('x-total', '2')
    return c.json([{ id: 1 }, { id: 2 }])
  })
  app.post('/api/items', async (c) => c.json({ created: await c.req.json() }, 201))
  app.get('/etag/doc', (c) => c.text('a document whose etag is its digest'))
  app.get('/admin/panel', (c) => c.text('secret panel'))
  app.post('/form', async (c) => {
    const body = await c.req.parseBody({ all: true })
    const out: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(body)) {
      const one = async (v: unknown) => (v instanceof File ? { file: v.name, type: v.type, size: v.size, text: await v.text() } : v)
      out[name] = Array.isArray(value) ? await Promise.all(value.map(one)) : await one(value)
    }
    return c.json(out)
  })
  app.post('/echo', async (c) => c.body(await c.req.arrayBuffer(), 200, { 'content-type': c.req.header('content-type') ?? 'application/octet-stream' }))
  app.get('/cookies', (c) => {
    setCookie(c, 'session', 'abc', { path: '/', httpOnly: true, sameSite: 'Lax' })
    setCookie(c, 'theme', 'dark', { maxAge: 3600 })
    return c.json({ got: getCookie(c) })
  })
  app.get('/stream', (c) =>
    stream(c, async (s) => {
      for (const part of ['alpha ', 'beta ', 'gamma']) {
        await s.write(part)
        await s.sleep(1)
      }
    }),
  )
  app.get('/text-stream', (c) =>
    streamText(c, async (s) => {
      await s.writeln('line one')
      await s.sleep(1)
      await s.write('line two')
    }),
  )
  app.get('/sse', (c) =>
    streamSSE(c, async (s) => {
      for (let id = 1; id <= 3; id++) {
        await s.writeSSE({ id: String(id), event: 'tick', data: `tick ${id}` })
        await s.sleep(1)
      }
    }),
  )
  app.get('/boom', () => {
    throw new Error('boom')
  })
  app.onError((error, c) => (error instanceof HTTPException ? error.getResponse() : c.text(`handled: ${error.message}`, 500)))
  app.notFound((c) => c.text(`no route for ${c.req.path}`, 404))
  return app
}
