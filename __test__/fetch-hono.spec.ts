// A real Hono app (hono/cors, hono/etag, hono/basic-auth, hono/logger, hono/streaming,
// hono/cookie, c.req.parseBody() for multipart) answers the same over harrier's serve() as over
// @hono/node-server, request by request: status, headers (less date, connection, keep-alive)
// and body. @hono/node-server runs in a child process, with its defaults.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import test from 'ava'
import { serve } from 'harrier'
import { PATIENCE_MS, type ParsedResponse, deferred, rawRequest, withTimeout } from './helpers.ts'
import { honoApp } from './hono-app.ts'

const logLines: string[] = []

/**
 * Headers a server writes on its own, whatever the app says; the framing (content-length or
 * chunked) is checked on its own below: @hono/node-server sends a body-less answer chunked.
 */
const IGNORED = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])

const STREAMED = new Set(['stream', 'streamText', 'streamSSE'])

/** `text/plain; charset=UTF-8` (@hono/node-server's default) and `text/plain;charset=UTF-8` (the platform's) are one type. */
function normalType(value: string): string {
  return value.replace(/;\s*/g, ';').toLowerCase()
}

function comparable(r: ParsedResponse) {
  const headers: Record<string, string> = {}
  for (const [rawName, value] of r.rawHeaders) {
    const name = rawName.toLowerCase()
    if (IGNORED.has(name)) continue
    const v = name === 'content-type' ? normalType(value) : value
    headers[name] = headers[name] === undefined ? v : `${headers[name]}\n${v}`
  }
  return { status: r.status, headers, body: r.body.toString('latin1') }
}

const BOUNDARY = '----harrier-hono-test'
const multipart = Buffer.from(
  [
    `--${BOUNDARY}`,
    'Content-Disposition: form-data; name="title"',
    '',
    'a title',
    `--${BOUNDARY}`,
    'Content-Disposition: form-data; name="tag"',
    '',
    'one',
    `--${BOUNDARY}`,
    'Content-Disposition: form-data; name="tag"',
    '',
    'two',
    `--${BOUNDARY}`,
    'Content-Disposition: form-data; name="upload"; filename="notes.txt"',
    'Content-Type: text/plain',
    '',
    'the notes, line 1\r\nline 2',
    `--${BOUNDARY}--`,
    '',
  ].join('\r\n'),
)

interface Case {
  name: string
  method?: string
  path: string
  headers?: Record<string, string>
  body?: string | Buffer
  /**
   * Headers only @hono/node-server sends, where it departs from the platform: it gives a
   * stream body without a content-type `text/plain`, where `new Response(stream)` (and so
   * Bun, Deno and harrier) has none.
   */
  nodeServerOnly?: string[]
}

const auth = `Basic ${Buffer.from('ada:lovelace').toString('base64')}`

const CASES: Case[] = [
  { name: 'text', path: '/' },
  { name: 'json', path: '/json' },
  { name: 'param and query', path: '/users/42?q=hello&tag=a&tag=b' },
  { name: 'percent-encoded param', path: '/users/a%20b?q=%C3%A9' },
  { name: 'html', path: '/html' },
  { name: 'status and header', path: '/status' },
  { name: 'redirect', path: '/redirect' },
  { name: 'request headers', path: '/headers', headers: { 'User-Agent': 'compare/1', Accept: 'application/json', 'X-Custom': 'v' } },
  { name: 'not found', path: '/nowhere' },
  { name: 'error handler', path: '/boom' },
  { name: 'cors preflight', method: 'OPTIONS', path: '/api/items', headers: { Origin: 'https://a.example', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'x-thing' } },
  { name: 'cors simple', path: '/api/items', headers: { Origin: 'https://a.example' } },
  { name: 'cors other origin', path: '/api/items', headers: { Origin: 'https://b.example' } },
  { name: 'cors POST json', method: 'POST', path: '/api/items', headers: { Origin: 'https://a.example', 'Content-Type': 'application/json' }, body: '{"name":"x","n":1}' },
  { name: 'etag', path: '/etag/doc' },
  { name: 'etag 304', path: '/etag/doc', headers: { 'If-None-Match': '__ETAG__' } },
  { name: 'basic auth missing', path: '/admin/panel' },
  { name: 'basic auth wrong', path: '/admin/panel', headers: { Authorization: `Basic ${Buffer.from('ada:babbage').toString('base64')}` } },
  { name: 'basic auth right', path: '/admin/panel', headers: { Authorization: auth } },
  { name: 'multipart parseBody', method: 'POST', path: '/form', headers: { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` }, body: multipart },
  { name: 'urlencoded parseBody', method: 'POST', path: '/form', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=two+words&b=again' },
  { name: 'echo', method: 'POST', path: '/echo', headers: { 'Content-Type': 'application/x-thing' }, body: Buffer.from([0, 1, 2, 3, 255]) },
  { name: 'cookies', path: '/cookies', headers: { Cookie: 'a=1; b=two%20words' } },
  { name: 'stream', path: '/stream', nodeServerOnly: ['content-type'] },
  { name: 'streamText', path: '/text-stream' },
  { name: 'streamSSE', path: '/sse' },
  { name: 'HEAD', method: 'HEAD', path: '/' },
]

function requestBytes(c: Case, etag: string): Buffer {
  const body = c.body === undefined ? null : Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body)
  const lines = [`${c.method ?? 'GET'} ${c.path} HTTP/1.1`, 'Host: compare.test', 'Connection: close']
  for (const [name, value] of Object.entries(c.headers ?? {})) lines.push(`${name}: ${value.replace('__ETAG__', etag)}`)
  if (body !== null) lines.push(`Content-Length: ${body.length}`)
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body ?? Buffer.alloc(0)])
}

async function ask(port: number, c: Case, etag: string): Promise<ParsedResponse> {
  const { responses } = await rawRequest(port, requestBytes(c, etag), { max: 1, methods: [c.method ?? 'GET'] })
  if (responses.length !== 1) throw new Error(`${c.name}: no answer`)
  return responses[0]
}

async function startNodeServer(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import=tsx', new URL('./hono-node-server.ts', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] })
  const port = deferred<number>()
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
    const m = /listening (\d+)/.exec(out)
    if (m) port.resolve(Number(m[1]))
  })
  child.on('exit', (code) => port.reject(new Error(`@hono/node-server exited with ${code}`)))
  return { port: await withTimeout(port.promise, PATIENCE_MS * 2, '@hono/node-server to listen'), child }
}

test('a Hono app answers the same over harrier as over @hono/node-server, request by request', async (t) => {
  const [node, harrier] = await Promise.all([
    startNodeServer(),
    serve({ fetch: honoApp((line) => logLines.push(line)).fetch, port: 0, host: '127.0.0.1', signals: false }),
  ])
  t.teardown(async () => {
    node.child.stdin!.end()
    await once(node.child, 'exit')
  })
  t.teardown(() => harrier.close())
  // The etag both give the document (the digest of its body), for the conditional request.
  const etag = (await ask(harrier.port!, CASES.find((c) => c.name === 'etag')!, '')).headers.etag
  t.truthy(etag)
  for (const c of CASES) {
    const [expected, got] = await Promise.all([ask(node.port, c, etag), ask(harrier.port!, c, etag)])
    const e = comparable(expected)
    const g = comparable(got)
    for (const name of c.nodeServerOnly ?? []) {
      t.truthy(e.headers[name], `${c.name}: @hono/node-server sends ${name}`)
      delete e.headers[name]
    }
    t.deepEqual(g, e, `${c.name}: ${c.method ?? 'GET'} ${c.path}`)
    // harrier's framing: a Hono stream is chunked, anything else has its length.
    if (STREAMED.has(c.name)) t.is(got.headers['transfer-encoding'], 'chunked', c.name)
    else if (c.method !== 'HEAD' && got.status !== 304 && got.status !== 204) t.is(got.headers['content-length'], String(got.body.length), c.name)
  }
  // hono/logger saw every request, over harrier too (its colours taken out).
  const plain = logLines.map((l) => l.replace(/\x1b\[\d+m/g, ''))
  t.true(plain.includes('<-- GET /users/42?q=hello&tag=a&tag=b'), plain.join('\n'))
  t.true(plain.some((l) => /^--> GET \/ 200 \d+m?s$/.test(l)), plain.join('\n'))
  t.true(plain.some((l) => /^--> GET \/admin\/panel 401 \d+m?s$/.test(l)), plain.join('\n'))
})
