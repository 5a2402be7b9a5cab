// listen/close lifecycle, client aborts, request data across awaits, process exit.
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import test from 'ava'
import { App } from 'harrier'
import {
  PATIENCE_MS,
  RawClient,
  closeApp,
  deferred,
  fetchT,
  rawReq,
  rawRequest,
  sleep,
  startApp,
  tryConnect,
  useApp,
  withTimeout,
} from './helpers.ts'

// ava runs from the project root; __dirname exists when tsx compiles this file as CommonJS
const here = typeof __dirname === 'string' ? __dirname : path.join(process.cwd(), '__test__')
const root = path.resolve(here, '..')

test('listen resolves with the real port and host', async (t) => {
  const app = new App()
  app.get('/', (req, res) => res.text('up'))
  try {
    const addr = await withTimeout(Promise.resolve(app.listen({ port: 0, host: '127.0.0.1', signals: false })), PATIENCE_MS, 'listen')
    t.is(typeof addr.port, 'number')
    t.true(addr.port > 0 && addr.port < 65536, `port ${addr.port}`)
    t.is(addr.host, '127.0.0.1')
    t.is(await tryConnect(addr.port), 'connected')
    const r = await fetchT(`http://127.0.0.1:${addr.port}/`)
    t.is(r.status, 200)
    t.is(await r.text(), 'up')
  } finally {
    await closeApp(app)
  }
})

for (const ioThreads of [1, 4]) {
  test(`an app with ioThreads: ${ioThreads} serves concurrent connections`, async (t) => {
    const { base } = await useApp(
      t,
      (app) => {
        app.get('/n/:n', async (req, res) => {
          await sleep(5)
          res.text(req.params.n)
        })
      },
      { ioThreads },
    )
    const bodies = await Promise.all(
      Array.from({ length: 32 }, (_, i) => fetchT(`${base}/n/${i}`).then((r) => r.text())),
    )
    t.deepEqual(
      bodies,
      Array.from({ length: 32 }, (_, i) => String(i)),
    )
  })
}

test('listen rejects when the port is already in use', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const port = (blocker.address() as net.AddressInfo).port
  const app = new App()
  app.get('/', (req, res) => res.text('x'))
  let outcome: string
  try {
    const addr = await withTimeout(Promise.resolve(app.listen({ port, host: '127.0.0.1', signals: false })), PATIENCE_MS, 'listen to settle')
    outcome = `resolved with ${JSON.stringify(addr)}`
    await closeApp(app).catch(() => {})
  } catch (e) {
    outcome = (e as Error).message.startsWith('timed out') ? (e as Error).message : 'rejected'
  }
  t.is(outcome, 'rejected')
})

test('client disconnect mid-handler aborts req.signal', async (t) => {
  const started = deferred()
  const result = deferred<{ abortedAtStart: boolean; aborted: boolean; eventFired: boolean }>()
  const { port } = await useApp(t, (app) => {
    app.get('/wait', async (req, res) => {
      const abortedAtStart = req.signal.aborted
      started.resolve()
      let eventFired = false
      await new Promise<void>((resolve) => {
        // only so that a missing abort fails the test rather than hanging it
        const timer = setTimeout(resolve, PATIENCE_MS)
        const onAbort = () => {
          eventFired = true
          clearTimeout(timer)
          resolve()
        }
        if (req.signal.aborted) onAbort()
        else req.signal.addEventListener('abort', onAbort, { once: true })
      })
      result.resolve({ abortedAtStart, aborted: req.signal.aborted, eventFired })
      try {
        res.text('nobody is listening')
      } catch {
        // answering an aborted request may throw; that is acceptable
      }
    })
    app.get('/', (req, res) => res.text('alive'))
  })
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(rawReq('GET', '/wait'))
  await withTimeout(started.promise, PATIENCE_MS, 'the handler to start')
  await sleep(20)
  client.destroy()
  const seen = await withTimeout(result.promise, 2 * PATIENCE_MS, 'the handler to finish')
  t.false(seen.abortedAtStart, 'not aborted while the client was connected')
  t.true(seen.eventFired, 'the abort event fired')
  t.true(seen.aborted, 'req.signal.aborted is true after the client disconnected')

  // the server is unaffected
  const r = await fetchT(`http://127.0.0.1:${port}/`)
  t.is(await r.text(), 'alive')
})

test('req.signal is not aborted for a request that is answered normally', async (t) => {
  const flags = deferred<boolean[]>()
  const { base } = await useApp(t, (app) => {
    app.post('/ok', async (req, res) => {
      const a = req.signal.aborted
      await req.text()
      await sleep(30)
      const b = req.signal.aborted
      res.text('ok')
      flags.resolve([a, b])
    })
  })
  const r = await fetchT(`${base}/ok`, { method: 'POST', body: 'data' })
  t.is(r.status, 200)
  t.is(await r.text(), 'ok')
  t.deepEqual(await withTimeout(flags.promise, PATIENCE_MS, 'flags'), [false, false])
})

test('request data stays intact across an await while other requests are served', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/delayed/:id', async (req, res) => {
      await sleep(50)
      const body = await req.text()
      res.json({
        method: req.method,
        url: req.url,
        path: req.path,
        id: req.params.id,
        q: req.query.q,
        token: req.header('x-token'),
        tokenFromObject: req.headers['x-token'],
        bodyLength: body.length,
        bodyStart: body.slice(0, 12),
      })
    })
    app.post('/noise/:id', async (req, res) => {
      res.header('x-noise', req.params.id).json({ id: req.params.id, body: await req.text() })
    })
  })
  const delayed = Array.from({ length: 5 }, (_, i) => {
    const id = `d${i}`
    const body = `body-of-${id}:` + 'z'.repeat(i === 4 ? 200_000 : 100 * i)
    return fetchT(`${base}/delayed/${id}?q=query-${id}`, {
      method: 'POST',
      headers: { 'x-token': `token-${id}`, 'content-type': 'text/plain' },
      body,
    }).then(async (r) => ({ status: r.status, json: await r.json(), body }))
  })
  await sleep(10)
  const noise = Array.from({ length: 40 }, (_, i) =>
    fetchT(`${base}/noise/n${i}?q=other`, { method: 'POST', headers: { 'x-token': `noise-${i}` }, body: `noise body ${i}` }).then(
      async (r) => ({ status: r.status, json: await r.json() }),
    ),
  )
  const [d, n] = await Promise.all([Promise.all(delayed), Promise.all(noise)])
  d.forEach((res, i) => {
    const id = `d${i}`
    t.is(res.status, 200)
    t.deepEqual(res.json, {
      method: 'POST',
      url: `/delayed/${id}?q=query-${id}`,
      path: `/delayed/${id}`,
      id,
      q: `query-${id}`,
      token: `token-${id}`,
      tokenFromObject: `token-${id}`,
      bodyLength: res.body.length,
      bodyStart: res.body.slice(0, 12),
    })
  })
  n.forEach((res, i) => {
    t.is(res.status, 200)
    t.deepEqual(res.json, { id: `n${i}`, body: `noise body ${i}` })
  })
})

test('request data stays intact across an await with pipelined requests on the same connection', async (t) => {
  const { port } = await useApp(t, (app) => {
    app.post('/delayed/:id', async (req, res) => {
      await sleep(50)
      res.json({ id: req.params.id, path: req.path, token: req.header('x-token'), body: await req.text() })
    })
    app.post('/quick/:id', async (req, res) => {
      res.json({ id: req.params.id, path: req.path, token: req.header('x-token'), body: await req.text() })
    })
  })
  const bytes = Buffer.concat([
    rawReq('POST', '/delayed/first', { 'X-Token': 'tok-first', 'Content-Length': '10' }, 'first-body'),
    rawReq('POST', '/quick/second', { 'X-Token': 'tok-second', 'Content-Length': '11' }, 'second-body'),
    rawReq('POST', '/quick/third', { 'X-Token': 'tok-third', 'Transfer-Encoding': 'chunked' }, '5\r\nthird\r\n0\r\n\r\n'),
  ])
  const { responses } = await rawRequest(port, bytes, { until: 3 })
  t.deepEqual(
    responses.map((r) => JSON.parse(r.body.toString())),
    [
      { id: 'first', path: '/delayed/first', token: 'tok-first', body: 'first-body' },
      { id: 'second', path: '/quick/second', token: 'tok-second', body: 'second-body' },
      { id: 'third', path: '/quick/third', token: 'tok-third', body: 'third' },
    ],
  )
})

test('close() lets an in-flight request finish and resolves after it', async (t) => {
  const started = deferred()
  let answeredAt = 0
  const { app, base } = await startApp((app) => {
    app.get('/slow', async (req, res) => {
      started.resolve()
      await sleep(300)
      answeredAt = Date.now()
      res.text('done')
    })
  })
  let closeP: Promise<void> | undefined
  try {
    const responseP = fetchT(`${base}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }))
    await withTimeout(started.promise, PATIENCE_MS, 'the handler to start')
    let closedAt = 0
    closeP = Promise.resolve(app.close()).then(() => {
      closedAt = Date.now()
    })
    const r = await responseP
    t.is(r.status, 200)
    t.is(r.body, 'done')
    await withTimeout(closeP, PATIENCE_MS, 'close() to resolve')
    t.true(answeredAt > 0)
    t.true(closedAt >= answeredAt, 'close() resolved after the in-flight request was answered')
  } finally {
    if (closeP) await withTimeout(closeP, PATIENCE_MS, 'close() to resolve')
    else await closeApp(app)
  }
})

test('new connections are refused while close() waits for an in-flight request', async (t) => {
  const started = deferred()
  const { app, base, port } = await startApp((app) => {
    app.get('/slow', async (req, res) => {
      started.resolve()
      await sleep(400)
      res.text('done')
    })
  })
  let closeP: Promise<void> | undefined
  try {
    const responseP = fetchT(`${base}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }))
    await withTimeout(started.promise, PATIENCE_MS, 'the handler to start')
    closeP = Promise.resolve(app.close())
    // close() stops accepting before it returns: no wait is needed before the connect.
    t.is(await tryConnect(port), 'ECONNREFUSED')
    const r = await responseP
    t.is(r.status, 200)
    t.is(r.body, 'done')
  } finally {
    if (closeP) await withTimeout(closeP, PATIENCE_MS, 'close() to resolve')
    else await closeApp(app)
  }
})

test('after close() resolves new connections are refused', async (t) => {
  const { app, base, port } = await startApp((app) => {
    app.get('/', (req, res) => res.text('hi'))
  })
  const r = await fetchT(`${base}/`)
  t.is(await r.text(), 'hi')
  await closeApp(app)
  t.is(await tryConnect(port), 'ECONNREFUSED')
  await t.throwsAsync(fetchT(`${base}/`, {}, 2000))
})

test('close() closes idle keep-alive connections', async (t) => {
  // A keep-alive timeout far past any delay of a loaded machine: a close() that waited for it
  // is told apart from a late one.
  const { app, port } = await startApp(
    (app) => {
      app.get('/', (req, res) => res.text('hi'))
    },
    { keepAliveTimeout: 60_000 },
  )
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  let closeP: Promise<void> | undefined
  try {
    await client.write(rawReq('GET', '/'))
    const r = await client.readResponse()
    t.is(r.status, 200)
    t.true(await client.staysOpen(50), 'idle keep-alive connection before close()')
    const t0 = Date.now()
    closeP = closeApp(app)
    const [socketClosed, closeResolved] = await Promise.allSettled([client.waitForClose(), closeP])
    t.is(socketClosed.status, 'fulfilled', 'the idle socket was closed by the server')
    t.is(closeResolved.status, 'fulfilled', 'close() resolved')
    t.true(Date.now() - t0 < 10_000, 'close() does not wait for the keep-alive timeout')
  } finally {
    if (!closeP) await closeApp(app)
  }
})

test('close() closes connections that never sent a request', async (t) => {
  // One I/O thread, so one listener, which accepts in order: an answer on a connection made
  // after the silent one shows that the silent one was accepted. (A fixed pause did not, on a
  // loaded machine; close() then reset it in the listen backlog, which proves nothing.)
  const { app, port } = await startApp(
    (app) => {
      app.get('/', (req, res) => res.text('hi'))
    },
    { ioThreads: 1 },
  )
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  const after = await RawClient.connect(port)
  t.teardown(() => after.destroy())
  let closeP: Promise<void> | undefined
  try {
    await after.write(rawReq('GET', '/'))
    t.is((await after.readResponse()).status, 200)
    closeP = closeApp(app)
    const [socketClosed, closeResolved] = await Promise.allSettled([client.waitForClose(), closeP])
    t.is(socketClosed.status, 'fulfilled', 'the silent socket was closed by the server')
    t.is(closeResolved.status, 'fulfilled', 'close() resolved')
    t.is(client.received.length, 0, 'nothing was sent on the silent connection')
  } finally {
    if (!closeP) await closeApp(app)
  }
})

interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  body: string
  status: number
}

/** Runs a fixture that listens and serves one request; returns once the child exited by itself. */
async function runChild(fixture: string, args: string[], doRequest: boolean): Promise<ChildResult> {
  const child = spawn(process.execPath, [path.join(here, 'fixtures', fixture), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // 'close' (not 'exit'): fires after the child exited and its stdout/stderr were fully read
    child.once('close', (code, signal) => resolve({ code, signal })),
  )
  try {
    let status = 0
    let body = ''
    if (doRequest) {
      const port = await withTimeout(
        new Promise<number>((resolve, reject) => {
          const check = () => {
            const m = /listening (\d+)/.exec(stdout)
            if (m) resolve(Number(m[1]))
          }
          child.stdout.on('data', check)
          exited.then(({ code }) => reject(new Error(`child exited early with ${code}: ${stderr}`)))
          check()
        }),
        PATIENCE_MS,
        'the child to listen',
      )
      const r = await fetchT(`http://127.0.0.1:${port}/`)
      status = r.status
      body = await r.text()
    }
    const { code, signal } = await withTimeout(exited, PATIENCE_MS, `the child to exit by itself (stdout: ${stdout}, stderr: ${stderr})`)
    return { code, signal, stdout, stderr, body, status }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

test('an ESM child process serves one request, closes and exits by itself with code 0', async (t) => {
  const r = await runChild('serve-once.mjs', ['request'], true)
  t.is(r.status, 200)
  t.is(r.body, 'from esm child')
  t.is(r.code, 0, `stderr: ${r.stderr}`)
  t.regex(r.stdout, /closed/)
})

test('an ESM child process that listens and closes without requests exits by itself', async (t) => {
  const r = await runChild('serve-once.mjs', ['idle'], false)
  t.is(r.code, 0, `stderr: ${r.stderr}`)
  t.regex(r.stdout, /listening \d+\nclosed/)
})

test('require("harrier") works in a CommonJS child process that serves, closes and exits', async (t) => {
  const r = await runChild('serve-once.cjs', [], true)
  t.is(r.status, 200)
  t.is(r.body, 'from cjs child')
  t.is(r.code, 0, `stderr: ${r.stderr}`)
  t.regex(r.stdout, /closed/)
})
