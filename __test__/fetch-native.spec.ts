// What the web-standard work added to harrier's own Request and Response: req.cookies,
// req.formData(), req.remoteAddress, res.cookie() and res.clearCookie() with their checks.

import test from 'ava'
import { fetchT, rawReq, rawRequest, useApp } from './helpers.ts'

test('req.cookies: parsed once, when first read; quoted and percent-encoded values; the first of a repeated name', async (t) => {
  let same = false
  const { base } = await useApp(t, (app) => {
    app.get('/', (req, res) => {
      const cookies = req.cookies
      same = cookies === req.cookies
      res.json({ ...cookies })
    })
  })
  const r = await fetchT(`${base}/`, { headers: { cookie: 'a=1; b="quoted"; c=two%20words; a=second; bad; d=; e=x=y; f=%zz' } })
  t.deepEqual(await r.json(), { a: '1', b: 'quoted', c: 'two words', d: '', e: 'x=y', f: '%zz' })
  t.true(same, 'the same object on every read')
  t.deepEqual(await (await fetchT(`${base}/`)).json(), {}, 'no Cookie header: no cookies')
})

test('res.cookie() and res.clearCookie(): one Set-Cookie line each, with every attribute', async (t) => {
  const expires = new Date(Date.UTC(2030, 0, 2, 3, 4, 5))
  const { port } = await useApp(t, (app) => {
    app.get('/', (req, res) => {
      res
        .cookie('session', 'a value; with=chars', { httpOnly: true, secure: true, sameSite: 'strict', path: '/', maxAge: 3600 })
        .cookie('theme', 'dark', { expires, domain: 'example.com' })
        .cookie('__Host-id', '42', { secure: true, path: '/', partitioned: true, sameSite: 'none' })
        .cookie('raw', 'abc123', { encode: false, sameSite: 'Lax' })
        .clearCookie('old', { path: '/app' })
      res.text('ok')
    })
  })
  const { responses } = await rawRequest(port, rawReq('GET', '/', { Connection: 'close' }), { max: 1 })
  const lines = responses[0].rawHeaders.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)
  t.deepEqual(lines, [
    'session=a%20value%3B%20with%3Dchars; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Strict',
    'theme=dark; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Domain=example.com',
    '__Host-id=42; Path=/; Secure; SameSite=None; Partitioned',
    'raw=abc123; SameSite=Lax',
    'old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app',
  ])
})

test('res.cookie() refuses bad names, values and options with a TypeError', async (t) => {
  const errors: string[] = []
  const { base } = await useApp(t, (app) => {
    app.get('/', (req, res) => {
      const bad: Array<[string, unknown, Record<string, unknown>?]> = [
        ['bad name', 'v'],
        ['semi;colon', 'v'],
        ['', 'v'],
        ['n', 42],
        ['n', 'has space', { encode: false }],
        ['n', 'v', { maxAge: 1.5 }],
        ['n', 'v', { expires: new Date('nope') }],
        ['n', 'v', { expires: 'tomorrow' }],
        ['n', 'v', { domain: 'bad domain' }],
        ['n', 'v', { path: '/a;b' }],
        ['n', 'v', { sameSite: 'sometimes' }],
        ['n', 'v', { sameSite: 'none' }],
        ['n', 'v', { partitioned: true }],
        ['n', 'v', { httpOnly: 'yes' }],
        ['__Secure-n', 'v'],
        ['__Host-n', 'v', { secure: true, path: '/x' }],
      ]
      for (const [name, value, options] of bad) {
        try {
          res.cookie(name, value as string, options as never)
          errors.push(`accepted ${name}`)
        } catch (e) {
          errors.push(e instanceof TypeError ? 'TypeError' : String(e))
        }
      }
      res.text('done')
    })
  })
  t.is(await (await fetchT(`${base}/`)).text(), 'done')
  t.deepEqual(errors, Array(16).fill('TypeError'))
})

test('res.cookie() after the head is sent throws', async (t) => {
  let error: unknown
  const { base } = await useApp(t, (app) => {
    app.get('/', (req, res) => {
      res.write('started')
      try {
        res.cookie('late', '1')
      } catch (e) {
        error = e
      }
      res.end()
    })
  })
  await (await fetchT(`${base}/`)).text()
  t.regex((error as Error).message, /after the response head was sent/)
})

test('req.formData(): multipart (fields and files) and urlencoded; another type rejects with a TypeError', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/form', async (req, res) => {
      try {
        const form = await req.formData()
        const out: Record<string, unknown[]> = {}
        for (const [name, value] of form) (out[name] ??= []).push(typeof value === 'string' ? value : { name: value.name, type: value.type, text: await value.text() })
        res.json(out)
      } catch (e) {
        res.status(400).text(`${(e as Error).name}: ${(e as Error).message}`)
      }
    })
  })
  const form = new FormData()
  form.append('a', 'one')
  form.append('a', 'two')
  form.append('doc', new Blob(['file body'], { type: 'text/markdown' }), 'readme.md')
  t.deepEqual(await (await fetchT(`${base}/form`, { method: 'POST', body: form })).json(), {
    a: ['one', 'two'],
    doc: [{ name: 'readme.md', type: 'text/markdown', text: 'file body' }],
  })
  t.deepEqual(await (await fetchT(`${base}/form`, { method: 'POST', body: new URLSearchParams('x=1&y=a+b&x=%C3%A9') })).json(), { x: ['1', 'é'], y: ['a b'] })
  const bad = await fetchT(`${base}/form`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
  t.is(bad.status, 400)
  t.regex(await bad.text(), /^TypeError: harrier: formData\(\) needs a multipart\/form-data or application\/x-www-form-urlencoded body/)
})
