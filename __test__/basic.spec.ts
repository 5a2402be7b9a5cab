// Routing, middleware and response basics over fetch.
import test from 'ava'
import { IMF_FIXDATE, fetchT, useApp } from './helpers.ts'

test('GET / answers hello text with content-type, date and middleware header', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.use(async (req, res, next) => {
      res.header('x-powered-by', 'harrier')
      await next()
    })
    app.get('/', (req, res) => res.text('Hello, World!'))
  })
  const r = await fetchT(`${base}/`)
  t.is(r.status, 200)
  t.is(await r.text(), 'Hello, World!')
  t.is(r.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(r.headers.get('content-length'), '13')
  t.is(r.headers.get('x-powered-by'), 'harrier')
  const date = r.headers.get('date')
  t.truthy(date, 'a Date header is present')
  t.regex(date!, IMF_FIXDATE)
  t.true(Math.abs(Date.parse(date!) - Date.now()) < 5000, `date ${date} is close to now`)
})

test('JSON response with route params and query', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }))
  })
  const r = await fetchT(`${base}/users/42?q=hello`)
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8')
  t.deepEqual(await r.json(), { id: '42', q: 'hello' })

  const r2 = await fetchT(`${base}/users/abc`)
  t.is(r2.status, 200)
  t.deepEqual(await r2.json(), { id: 'abc' }, 'q is undefined (omitted by JSON) without a query string')
})

test('request path, url, method, query and several params', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/orgs/:org/repos/:repo', (req, res) =>
      res.json({ method: req.method, url: req.url, path: req.path, params: { ...req.params }, query: { ...req.query } }),
    )
  })
  const r = await fetchT(`${base}/orgs/acme/repos/rocket?a=1&b=two`)
  t.is(r.status, 200)
  t.deepEqual(await r.json(), {
    method: 'GET',
    url: '/orgs/acme/repos/rocket?a=1&b=two',
    path: '/orgs/acme/repos/rocket',
    params: { org: 'acme', repo: 'rocket' },
    query: { a: '1', b: 'two' },
  })
})

test('query values are percent-decoded', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/q', (req, res) => res.json({ q: req.query.q, 'x y': req.query['x y'] }))
  })
  const r = await fetchT(`${base}/q?q=a%20b%26c&x%20y=%C3%A9`)
  t.is(r.status, 200)
  t.deepEqual(await r.json(), { q: 'a b&c', 'x y': 'é' })
})

test('trailing wildcard captures the rest of the path', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/files/*', (req, res) => res.text(req.params['*']))
  })
  const r = await fetchT(`${base}/files/a/b/c.txt`)
  t.is(r.status, 200)
  t.is(await r.text(), 'a/b/c.txt')
  const r2 = await fetchT(`${base}/files/readme`)
  t.is(r2.status, 200)
  t.is(await r2.text(), 'readme')
  const r3 = await fetchT(`${base}/files/x/y?z=1`)
  t.is(await r3.text(), 'x/y', 'the query is not part of the wildcard')
})

test('put, patch, delete, options and post routes', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/m', (req, res) => res.text('post'))
    app.put('/m', (req, res) => res.text('put'))
    app.patch('/m', (req, res) => res.text('patch'))
    app.delete('/m', (req, res) => res.text('delete'))
    app.options('/m', (req, res) => res.status(204).header('allow', 'POST, PUT, PATCH, DELETE, OPTIONS').send(''))
  })
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const r = await fetchT(`${base}/m`, { method })
    t.is(r.status, 200, method)
    t.is(await r.text(), method.toLowerCase(), method)
  }
  const o = await fetchT(`${base}/m`, { method: 'OPTIONS' })
  t.is(o.status, 204)
  t.is(o.headers.get('allow'), 'POST, PUT, PATCH, DELETE, OPTIONS')
  t.is(await o.text(), '')
})

test('all() matches every method', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.all('/any', (req, res) => res.text(`any:${req.method}`))
  })
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    const r = await fetchT(`${base}/any`, { method })
    t.is(r.status, 200, method)
    t.is(await r.text(), `any:${method}`, method)
  }
})

test('explicit head() route', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.head('/h', (req, res) => res.status(200).header('x-head', 'yes').send(''))
  })
  const r = await fetchT(`${base}/h`, { method: 'HEAD' })
  t.is(r.status, 200)
  t.is(r.headers.get('x-head'), 'yes')
  t.is(await r.text(), '')
})

test('unknown path answers 404', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/', (req, res) => res.text('root'))
    app.get('/users/:id', (req, res) => res.text('user'))
  })
  for (const path of ['/nope', '/users', '/users/1/extra', '/root']) {
    const r = await fetchT(`${base}${path}`)
    t.is(r.status, 404, path)
    await r.arrayBuffer()
  }
  const p = await fetchT(`${base}/nope`, { method: 'POST', body: 'x' })
  t.is(p.status, 404)
  await p.arrayBuffer()
})

test('known path with another method answers 405 with Allow', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/thing', (req, res) => res.text('get'))
    app.post('/thing', (req, res) => res.text('post'))
    app.delete('/only-delete', (req, res) => res.text('deleted'))
  })
  const r = await fetchT(`${base}/thing`, { method: 'PUT', body: 'x' })
  t.is(r.status, 405)
  await r.arrayBuffer()
  const allow = r.headers.get('allow')
  t.truthy(allow, 'Allow header present')
  const methods = allow!.split(',').map((m) => m.trim().toUpperCase())
  for (const m of ['GET', 'HEAD', 'POST']) t.true(methods.includes(m), `Allow "${allow}" includes ${m}`)
  for (const m of ['PUT', 'PATCH', 'DELETE']) t.false(methods.includes(m), `Allow "${allow}" excludes ${m}`)

  const d = await fetchT(`${base}/only-delete`)
  t.is(d.status, 405)
  await d.arrayBuffer()
  const dm = (d.headers.get('allow') ?? '').split(',').map((m) => m.trim().toUpperCase())
  t.true(dm.includes('DELETE'), `Allow "${d.headers.get('allow')}" includes DELETE`)
  t.false(dm.includes('GET'))
  t.false(dm.includes('HEAD'), 'HEAD is only implied by GET routes')
})

test('middleware does not run for 404s', async (t) => {
  let calls = 0
  const { base } = await useApp(t, (app) => {
    app.use(async (req, res, next) => {
      calls++
      await next()
    })
    app.get('/', (req, res) => res.text('ok'))
  })
  const miss = await fetchT(`${base}/does-not-exist`)
  t.is(miss.status, 404)
  await miss.arrayBuffer()
  t.is(calls, 0)
  const hit = await fetchT(`${base}/`)
  t.is(hit.status, 200)
  t.is(await hit.text(), 'ok')
  t.is(calls, 1)
})

test('global middleware runs in order before the handler', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.use((req, res, next) => {
      res.header('x-order', 'first')
      return next()
    })
    app.use(async (req, res, next) => {
      await new Promise((r) => setTimeout(r, 10))
      res.header('x-second', 'yes')
      await next()
    })
    app.get('/', (req, res) => res.text('done'))
  })
  const r = await fetchT(`${base}/`)
  t.is(r.status, 200)
  t.is(await r.text(), 'done')
  t.is(r.headers.get('x-order'), 'first')
  t.is(r.headers.get('x-second'), 'yes')
})

test('prefix middleware only runs under its prefix', async (t) => {
  const seen: string[] = []
  const { base } = await useApp(t, (app) => {
    app.use('/admin', (req, res, next) => {
      seen.push(req.path)
      res.header('x-admin', 'yes')
      return next()
    })
    app.get('/admin', (req, res) => res.text('admin root'))
    app.get('/admin/panel', (req, res) => res.text('panel'))
    app.get('/admin/users/:id', (req, res) => res.text(`user ${req.params.id}`))
    app.get('/public', (req, res) => res.text('public'))
    app.get('/', (req, res) => res.text('home'))
  })
  const cases: Array<[string, string, boolean]> = [
    ['/admin', 'admin root', true],
    ['/admin/panel', 'panel', true],
    ['/admin/users/7', 'user 7', true],
    ['/public', 'public', false],
    ['/', 'home', false],
  ]
  for (const [path, body, admin] of cases) {
    const r = await fetchT(`${base}${path}`)
    t.is(r.status, 200, path)
    t.is(await r.text(), body, path)
    t.is(r.headers.get('x-admin'), admin ? 'yes' : null, path)
  }
  t.deepEqual(seen, ['/admin', '/admin/panel', '/admin/users/7'])
})

test('prefix middleware respects path segment boundaries', async (t) => {
  let calls = 0
  const { base } = await useApp(t, (app) => {
    app.use('/admin', (req, res, next) => {
      calls++
      return next()
    })
    app.get('/administrator', (req, res) => res.text('not admin'))
    app.get('/admin-tools', (req, res) => res.text('not admin either'))
  })
  const r = await fetchT(`${base}/administrator`)
  t.is(r.status, 200)
  t.is(await r.text(), 'not admin')
  const r2 = await fetchT(`${base}/admin-tools`)
  t.is(await r2.text(), 'not admin either')
  t.is(calls, 0, '/admin middleware must not run for /administrator or /admin-tools')
})

test('middleware that answers without next() short-circuits', async (t) => {
  let handlerCalls = 0
  const { base } = await useApp(t, (app) => {
    app.use('/guarded', (req, res, next) => {
      if (req.header('authorization') === 'Bearer ok') return next()
      res.status(401).header('www-authenticate', 'Bearer').text('nope')
    })
    app.get('/guarded/x', (req, res) => {
      handlerCalls++
      res.text('secret')
    })
  })
  const denied = await fetchT(`${base}/guarded/x`)
  t.is(denied.status, 401)
  t.is(denied.headers.get('www-authenticate'), 'Bearer')
  t.is(await denied.text(), 'nope')
  t.is(handlerCalls, 0)

  const allowed = await fetchT(`${base}/guarded/x`, { headers: { authorization: 'Bearer ok' } })
  t.is(allowed.status, 200)
  t.is(await allowed.text(), 'secret')
  t.is(handlerCalls, 1)
})

test('route-level handler chain with next()', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get(
      '/chain',
      (req, res, next) => {
        res.header('x-step', '1')
        return next()
      },
      async (req, res, next) => {
        await new Promise((r) => setTimeout(r, 5))
        res.header('x-step2', '2')
        await next()
      },
      (req, res) => res.text('end of chain'),
    )
  })
  const r = await fetchT(`${base}/chain`)
  t.is(r.status, 200)
  t.is(await r.text(), 'end of chain')
  t.is(r.headers.get('x-step'), '1')
  t.is(r.headers.get('x-step2'), '2')
})

test('status() and header() are chainable', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/items', (req, res) =>
      res.status(201).header('x-a', '1').header('X-Mixed-Case', 'Value').header('location', '/items/9').json({ id: 9 }),
    )
    app.get('/teapot', (req, res) => res.status(418).text('short and stout'))
  })
  const r = await fetchT(`${base}/items`, { method: 'POST' })
  t.is(r.status, 201)
  t.is(r.headers.get('x-a'), '1')
  t.is(r.headers.get('x-mixed-case'), 'Value')
  t.is(r.headers.get('location'), '/items/9')
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8')
  t.deepEqual(await r.json(), { id: 9 })

  const tp = await fetchT(`${base}/teapot`)
  t.is(tp.status, 418)
  t.is(await tp.text(), 'short and stout')
})

test('default content-types for text, json, send(Buffer), send(Uint8Array) and send(string)', async (t) => {
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const { base } = await useApp(t, (app) => {
    app.get('/text', (req, res) => res.text('héllo'))
    app.get('/json', (req, res) => res.json({ a: [1, 2, { b: null }], s: 'é' }))
    app.get('/buffer', (req, res) => res.send(bytes))
    app.get('/u8', (req, res) => res.send(new Uint8Array([1, 2, 3])))
    app.get('/string', (req, res) => res.send('plain string'))
    app.get('/custom', (req, res) => res.header('content-type', 'text/html; charset=utf-8').send('<b>hi</b>'))
  })
  const text = await fetchT(`${base}/text`)
  t.is(text.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(await text.text(), 'héllo')
  t.is(text.headers.get('content-length'), String(Buffer.byteLength('héllo')))

  const json = await fetchT(`${base}/json`)
  t.is(json.headers.get('content-type'), 'application/json; charset=utf-8')
  t.deepEqual(await json.json(), { a: [1, 2, { b: null }], s: 'é' })

  const buf = await fetchT(`${base}/buffer`)
  t.is(buf.status, 200)
  t.true((buf.headers.get('content-type') ?? '').startsWith('application/octet-stream'), `got ${buf.headers.get('content-type')}`)
  t.is(buf.headers.get('content-length'), '256')
  t.true(Buffer.from(await buf.arrayBuffer()).equals(bytes), 'binary body intact')

  const u8 = await fetchT(`${base}/u8`)
  t.true((u8.headers.get('content-type') ?? '').startsWith('application/octet-stream'), `got ${u8.headers.get('content-type')}`)
  t.deepEqual([...new Uint8Array(await u8.arrayBuffer())], [1, 2, 3])

  const str = await fetchT(`${base}/string`)
  t.regex(str.headers.get('content-type') ?? '', /^text\//, `got ${str.headers.get('content-type')}`)
  t.is(await str.text(), 'plain string')

  const custom = await fetchT(`${base}/custom`)
  t.is(custom.headers.get('content-type'), 'text/html; charset=utf-8', 'an explicit content-type is kept')
  t.is(await custom.text(), '<b>hi</b>')
})

test('request headers are case-insensitive and listed in lower case', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/h', (req, res) =>
      res.json({
        a: req.header('X-Custom-Thing'),
        b: req.header('x-custom-thing'),
        missing: req.header('x-missing') ?? 'undefined',
        fromObject: req.headers['x-custom-thing'],
        names: Object.keys(req.headers).filter((k) => k.startsWith('x-')),
      }),
    )
  })
  const r = await fetchT(`${base}/h`, { headers: { 'X-Custom-Thing': 'v1' } })
  t.deepEqual(await r.json(), { a: 'v1', b: 'v1', missing: 'undefined', fromObject: 'v1', names: ['x-custom-thing'] })
})
