// Every public API of harrier, as a user's TypeScript code uses it. Never run: it is
// type-checked (strict) by __test__/types.spec.ts with the tsconfig.json next to it.
// The lines after `// @ts-expect-error` must NOT type-check; tsc fails if one does.
import { App, HttpError, Request, Response } from 'harrier'
import type { AppOptions, ErrorHook, Handler, Http2Options, Listening, ListenOptions, Middleware, Next, RouteParams } from 'harrier'

// ---------------------------------------------------------------------------
// App and its options
// ---------------------------------------------------------------------------

const options: AppOptions = { driver: 'auto', ioThreads: 2, handlerTimeout: 30_000, drainTimeout: 5_000 }
const app = new App(options)
new App()
new App({})
new App({ driver: 'inline' })
new App({ driver: 'threads', ioThreads: 4 })
new App({ http2: false })
const http2: Http2Options = { maxConcurrentStreams: 100, initialWindowSize: 2 ** 20, maxHeaderListSize: 16384 }
new App({ http2 })
// @ts-expect-error: not an HTTP/2 option
new App({ http2: { maxStreams: 10 } })
const driver: 'inline' | 'threads' = app.driver

// @ts-expect-error: not a driver
new App({ driver: 'fibers' })
// @ts-expect-error: a number of milliseconds
new App({ handlerTimeout: '30s' })
// @ts-expect-error: no such option
new App({ threads: 4 })

// ---------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------

const poweredBy: Middleware = async (req, res, next) => {
  res.header('x-powered-by', 'harrier')
  await next()
}
app.use(poweredBy)
app.use('/api', async (req, res, next: Next) => {
  const started = Date.now()
  await next()
  console.log(req.method, req.path, Date.now() - started)
})
app.use((req, res, next) => (req.header('authorization') ? next() : res.status(401).text('Unauthorized')))
// @ts-expect-error: middleware is a function
app.use('/api', 'nope')

// ---------------------------------------------------------------------------
// Routes: every method, params typed from the path
// ---------------------------------------------------------------------------

app.get('/', (req, res) => res.text('Hello, World!'))

app.get('/users/:id', (req, res) => {
  const id: string = req.params.id
  // @ts-expect-error: '/users/:id' has no :nope
  req.params.nope
  res.json({ id, q: req.query.q })
})

app.get('/files/*', (req) => req.params['*'])
app.get('/files/*', (req, res) => res.text(req.params['*']))

app.get('/orgs/:org/repos/:repo/*', (req, res) => {
  const params: { org: string; repo: string; '*': string } = req.params
  res.json(params)
})

app.get('/plain', (req, res) => {
  // @ts-expect-error: a path without params gives no params
  req.params.id
  res.end()
})

app.post('/echo', async (req, res) =>
  res
    .header('content-type', req.header('content-type') ?? 'application/octet-stream')
    .send(Buffer.from(await req.arrayBuffer())),
)
app.put('/things/:id', async (req, res) => {
  const body = await req.json<{ name: string }>()
  res.status(201).json({ id: req.params.id, name: body.name })
})
app.patch('/things/:id', async (req, res) => res.send(await req.text()))
app.delete('/things/:id', (req, res) => res.status(204).end())
app.head('/ping', (req, res) => res.end())
app.options('/ping', (req, res) => res.header('allow', ['GET', 'HEAD', 'OPTIONS']).end())
app.all('/any/:what', (req, res) => res.text(`${req.method} ${req.params.what}`))

// several handlers; route methods chain
app
  .get('/chain/:id', poweredBy, (req, res, next) => next(), (req, res) => res.text(req.params.id))
  .post('/chain/:id', (req, res) => res.text(req.params.id))

// a handler declared on its own, typed from its path
const showPost: Handler<RouteParams<'/posts/:slug'>> = (req, res) => res.text(req.params.slug)
app.get('/posts/:slug', showPost)
// @ts-expect-error: this handler wants :slug, the path gives :id
app.get('/posts/:id', showPost)

// a path that is not a literal type: any param name, each a string
const dynamicPath: string = '/dynamic/:name'
app.get(dynamicPath, (req, res) => res.text(req.params['name'] ?? ''))

// @ts-expect-error: a route needs a string path
app.get(42, (req, res) => res.end())

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

app.post('/request/:id', async (req, res) => {
  const method: string = req.method
  const url: string = req.url
  const path: string = req.path
  const id: string = req.params.id
  const q: string | string[] | undefined = req.query.q
  const type: string | undefined = req.header('Content-Type')
  const headers: Record<string, string> = req.headers
  const version: '1.0' | '1.1' | '2.0' = req.httpVersion
  const aborted: boolean = req.aborted
  const signal: AbortSignal = req.signal
  signal.addEventListener('abort', () => console.log('client went away'))
  let size = 0
  for await (const chunk of req) {
    const bytes: Buffer = chunk
    size += bytes.length
  }
  res.json({ method, url, path, id, q, type, headers, version, aborted, size })
})
app.post('/bodies', async (req) => {
  const text: string = await req.text()
  const json: unknown = await req.json()
  const typed: { a: number } = await req.json<{ a: number }>()
  const buffer: ArrayBuffer = await req.arrayBuffer()
  return { text, json, typed, buffer }
})

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

app.get('/response', (req, res) => {
  const chained: Response = res.status(200).header('x-a', 'a').header('x-n', 1).header('set-cookie', ['a=1', 'b=2'])
  const value: string | undefined = chained.getHeader('x-a')
  res.removeHeader('x-n')
  const sent: boolean = res.headersSent
  const finished: boolean = res.finished
  res.json({ value, sent, finished })
})
app.get('/text', (req, res) => res.text('text'))
app.get('/json', (req, res) => res.json({ ok: true }))
app.get('/send', (req, res) => {
  res.send('a string')
  res.send(Buffer.from('a buffer'))
  res.send(new Uint8Array([1, 2, 3]))
})
app.get('/stream', (req, res) => {
  const more: boolean = res.write('a')
  res.write(new Uint8Array([0x62]))
  res.end(more ? 'c' : undefined)
})
app.get('/end', (req, res) => res.end())

app.get('/wrong', (req, res) => {
  // @ts-expect-error: a status is a number
  res.status('200')
  // @ts-expect-error: send takes a string, a Buffer or a Uint8Array
  res.send(42)
  // @ts-expect-error: text takes a string
  res.text({ a: 1 })
  // @ts-expect-error: a header value is a string, a number or a list of strings
  res.header('x-a', { a: 1 })
})

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

app.get('/admin', () => {
  throw new HttpError(403, 'Forbidden')
})
app.get('/teapot', () => {
  const error = new HttpError(418)
  const status: number = error.status
  const message: string = error.message
  const isError: Error = error
  throw Object.assign(isError, { status, message })
})
const onError: ErrorHook = (error, req) => console.error(req.method, req.url, error)
app.onError = onError
app.onError = (error: unknown, req: Request) => console.error(req.path, error instanceof HttpError ? error.status : error)
app.onError = null

// the classes are values too
function describe(req: unknown, res: unknown): string {
  return `${req instanceof Request ? req.method : '-'} ${res instanceof Response ? res.finished : '-'}`
}
console.log(describe(null, null), driver)

// ---------------------------------------------------------------------------
// listen and close
// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const listenOptions: ListenOptions = { port: 0, host: '127.0.0.1', signals: false }
  const listening: Listening = await app.listen(listenOptions)
  const { port, host }: { port: number; host: string } = listening
  console.log(`http://${host}:${port}`)
  const closed: Promise<void> = app.close()
  await closed

  const other = new App()
  await other.listen()
  await other.listen({ port: 3000 })
  await other.close()
  // @ts-expect-error: the port is a number
  await other.listen({ port: '3000' })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
