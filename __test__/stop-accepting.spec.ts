// close() stops accepting before it returns, wherever it is called from: a connection
// attempted after the call is refused, while requests in flight still get their answers.
// (Under the threads driver the I/O threads close their listeners before close() returns;
// under the inline driver, the turn under way, if close() is called from a handler, closes
// it before it ends.)
import test from 'ava'
import { PATIENCE_MS, closeApp, deferred, fetchT, startApp, tryConnect, withTimeout } from './helpers.ts'

test('a connection attempted right after close() is refused, and the request in flight is answered', async (t) => {
  const started = deferred()
  const finish = deferred()
  const { app, base, port } = await startApp((app) => {
    app.get('/slow', async (req, res) => {
      started.resolve()
      await finish.promise
      res.text('done')
    })
  })
  const response = fetchT(`${base}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }))
  await withTimeout(started.promise, PATIENCE_MS, 'the handler to start')
  const closed = app.close()
  const attempt = tryConnect(port)
  t.is(await attempt, 'ECONNREFUSED')
  finish.resolve()
  t.deepEqual(await response, { status: 200, body: 'done' })
  await withTimeout(closed, PATIENCE_MS, 'close() to resolve')
})

for (const [when, stop] of [
  ['by a handler, before it returns', async (close: () => void) => close()],
  ['after an await in a handler', async (close: () => void) => {
    await Promise.resolve()
    close()
  }],
] as const) {
  test(`close() called ${when} refuses the next connection`, async (t) => {
    let attempt: Promise<string> | undefined
    let closed: Promise<void> | undefined
    const { app, base, port } = await startApp((app) => {
      app.get('/stop', async (req, res) => {
        await stop(() => {
          closed = app.close()
          attempt = tryConnect(port)
        })
        res.text('stopping')
      })
    })
    try {
      const r = await fetchT(`${base}/stop`)
      t.is(await r.text(), 'stopping')
      t.truthy(attempt)
      t.is(await attempt, 'ECONNREFUSED')
    } finally {
      await withTimeout(closed ?? app.close(), PATIENCE_MS, 'close() to resolve')
    }
  })
}

test('many closes under load: no connection attempted after close() is accepted', async (t) => {
  // Each round: clients keep requesting while close() is called; an attempt after it must be
  // refused, every request must be answered or refused (none left hanging).
  for (let round = 0; round < 10; round++) {
    const { app, base, port } = await startApp((app) => {
      app.get('/', (req, res) => res.text('hi'))
    })
    const load = Array.from({ length: 8 }, () => fetchT(`${base}/`).then((r) => r.text(), (e: Error) => e.name))
    const closed = app.close()
    t.is(await tryConnect(port), 'ECONNREFUSED', `round ${round}`)
    for (const outcome of await Promise.all(load)) t.true(outcome === 'hi' || outcome === 'TypeError', `round ${round}: ${outcome}`)
    await closeApp(app)
    await closed
  }
})
