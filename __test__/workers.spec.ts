// serve({ module, workers }): handlers on several worker threads behind one port. Each
// worker imports __test__/fixtures/workers/app.ts and serves its App with the inline driver on
// a listener of its own (SO_REUSEPORT). Two workers both serve (new connections spread by
// the kernel), a crash in one restarts it while the other answers, an import failure rejects
// serve() and leaves nothing listening, close() drains requests in flight on both, pub/sub
// and subscriber counts cross workers, and the figures and health cover them all.
import { spawn } from 'node:child_process'
import net from 'node:net'
import test from 'ava'
import { App, serve, type Served } from 'harrier'
import { PATIENCE_MS, RawClient, deferred, fetchT, tryConnect, waitUntil, withTimeout } from './helpers.ts'
import { type Client, openClient } from './ws-helpers.ts'

const APP = new URL('./fixtures/workers/app.ts', import.meta.url)
const LONG = 60_000

interface TeardownContext {
  teardown(fn: () => unknown): void
}

async function useServe(t: TeardownContext, options: Partial<Parameters<typeof serve>[0]> = {}): Promise<Served> {
  const served = await withTimeout(serve({ module: APP, workers: 2, port: 0, host: '127.0.0.1', signals: false, ...options }), LONG, 'serve() to resolve')
  t.teardown(() => withTimeout(served.close(), LONG, 'close() to resolve'))
  return served
}

/** A GET on a new connection (closed after it): which worker answered. */
async function idOnNewConnection(port: number, path = '/id'): Promise<string> {
  const res = await fetchT(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } })
  return res.text()
}

/** Keep-alive connections, one to each worker (new ones until the kernel gave one to each). */
async function connectionPerWorker(port: number, workers = 2): Promise<Map<string, RawClient>> {
  const found = new Map<string, RawClient>()
  for (let i = 0; i < 400 && found.size < workers; i++) {
    const c = await RawClient.connect(port)
    await c.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\n')
    const id = (await c.readResponse()).body.toString()
    if (found.has(id)) c.destroy()
    else found.set(id, c)
  }
  if (found.size < workers) throw new Error(`only workers ${[...found.keys()]} were reached`)
  return found
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

test('two workers both serve one port: workerId 0 and 1 across 200 new connections; the figures say how the kernel spread them', async (t) => {
  t.timeout(LONG * 2)
  const served = await useServe(t)
  t.is(served.workers, 2)
  t.true(served.port > 0)
  t.is(App.workerId, null, 'the main thread is no worker')
  const seen = new Map<string, number>()
  for (let i = 0; i < 200; i++) {
    const id = await idOnNewConnection(served.port)
    seen.set(id, (seen.get(id) ?? 0) + 1)
  }
  t.deepEqual([...seen.keys()].sort(), ['0', '1'], JSON.stringify([...seen]))
  const figures = served.metrics()
  t.deepEqual(
    figures.workers.map((w) => w.id),
    [0, 1],
  )
  for (const w of figures.workers) {
    t.is(w.requests, seen.get(String(w.id)), `worker ${w.id} answered what it was seen answering`)
    t.true(w.accepted >= w.requests)
  }
  t.log('spread of 200 connections:', figures.workers.map((w) => `worker ${w.id}: ${w.accepted}`).join(', '))
})

test("balance: 'handoff': one accept point hands new connections to the workers in turn; close() leaves the port refusing", async (t) => {
  t.timeout(LONG * 2)
  const served = await withTimeout(serve({ module: APP, workers: 2, port: 0, host: '127.0.0.1', signals: false, balance: 'handoff' }), LONG, 'serve() to resolve')
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push(await idOnNewConnection(served.port))
  // In turn from the first, whichever that was.
  t.deepEqual(ids, ids.map((_, i) => (i % 2 === 0 ? ids[0] : ids[1])), ids.join(''))
  t.not(ids[0], ids[1])
  t.deepEqual(
    served.metrics().workers.map((w) => w.accepted),
    [10, 10],
  )
  await withTimeout(served.close(), LONG, 'close() to resolve')
  t.is(await tryConnect(served.port), 'ECONNREFUSED')
})

test("balance: 'handoff': the port outlives a crash of the worker that bound it; the restarted worker is handed connections again", async (t) => {
  t.timeout(LONG * 2)
  const heard = deferred<number>()
  const served = await useServe(t, { balance: 'handoff', restartDelay: 1000, onError: (_, w) => heard.resolve(w.workerId) })
  let crashed = false
  for (let i = 0; i < 4 && !crashed; i++) {
    const c = await RawClient.connect(served.port)
    await c.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\n')
    if ((await c.readResponse()).body.toString() === '0') {
      await c.write('GET /crash HTTP/1.1\r\nhost: x\r\n\r\n')
      await c.waitForClose()
      crashed = true
    }
    c.destroy()
  }
  t.true(crashed, 'worker 0, the founder, was reached within two connections')
  t.is(await withTimeout(heard.promise, PATIENCE_MS, 'onError to hear of the crash'), 0)
  // While it is gone (the restart waits a second), every new connection is answered: the
  // accept point is the group's, not the founder's (a refused connection would throw).
  for (let i = 0; i < 4; i++) t.regex(await idOnNewConnection(served.port), /^[01]$/)
  await waitUntil(() => served.restarts()[0] === 1, PATIENCE_MS, 'worker 0 to be restarted')
  const seen = new Set<string>()
  for (let i = 0; i < 4; i++) seen.add(await idOnNewConnection(served.port))
  t.deepEqual([...seen].sort(), ['0', '1'])
})

test('balance must be reuseport or handoff', (t) => {
  t.throws(() => new App({ balance: 'random' as 'handoff' }), { instanceOf: RangeError, message: /balance must be 'reuseport' or 'handoff', got random/ })
})

test("a worker that crashes while serving fails its in-flight requests, is restarted, onError hears of it, the other serves on", async (t) => {
  t.timeout(LONG * 2)
  const heard = deferred<{ error: unknown; workerId: number }>()
  const served = await useServe(t, { restartDelay: 200, onError: (error, w) => heard.resolve({ error, workerId: w.workerId }) })
  const conns = await connectionPerWorker(served.port)
  t.teardown(() => conns.forEach((c) => c.destroy()))
  const victim = conns.get('1')!
  const survivor = conns.get('0')!
  // A request in flight on worker 1 when it goes.
  await victim.write('GET /hold?token=never HTTP/1.1\r\nhost: x\r\n\r\n')
  const other = await RawClient.connect(served.port)
  t.teardown(() => other.destroy())
  // Whichever worker this lands on, ask until worker 1 took /crash.
  let crashed = false
  for (let i = 0; i < 200 && !crashed; i++) {
    const c = await RawClient.connect(served.port)
    await c.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\n')
    const id = (await c.readResponse()).body.toString()
    if (id === '1') {
      await c.write('GET /crash HTTP/1.1\r\nhost: x\r\n\r\n')
      crashed = true
    }
    c.destroy()
  }
  t.true(crashed)
  const { error, workerId } = await withTimeout(heard.promise, PATIENCE_MS, 'onError to hear of the crash')
  t.is(workerId, 1)
  t.regex(String(error), /worker 1 exited with code 7/)
  await victim.waitForClose()
  t.is(victim.unread.toString(), '', 'the in-flight request got no answer: its connection closed')
  // The survivor answers on its open connection, and new connections reach a worker.
  await survivor.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\n')
  t.is((await survivor.readResponse()).body.toString(), '0')
  // Worker 1 comes back (restarted after the back-off) and serves again.
  await waitUntil(() => served.restarts()[1] === 1, PATIENCE_MS, 'worker 1 to be restarted')
  const seen = new Set<string>()
  for (const deadline = Date.now() + PATIENCE_MS; seen.size < 2 && Date.now() < deadline; ) seen.add(await idOnNewConnection(served.port))
  t.deepEqual([...seen].sort(), ['0', '1'])
  t.deepEqual(served.restarts(), [0, 1])
})

test('one serve(): { module } starts workers, { fetch } serves on this thread, both at once is refused; a fetch handler mounted in the module runs on every worker', async (t) => {
  t.timeout(LONG * 2)
  const served = await useServe(t, { module: new URL('./fixtures/workers/fetch-app.ts', import.meta.url) })
  const seen = new Set<string>()
  for (let i = 0; i < 400 && seen.size < 2; i++) seen.add(await idOnNewConnection(served.port, '/'))
  t.deepEqual([...seen].sort(), ['fetch from worker 0', 'fetch from worker 1'])
  const app = await serve({ fetch: () => new Response('here'), port: 0, host: '127.0.0.1', signals: false })
  t.teardown(() => app.close())
  t.true(app instanceof App)
  t.is(await (await fetchT(`http://127.0.0.1:${app.port}/`)).text(), 'here')
  const both = { fetch: () => new Response(''), module: APP, port: 0 } as unknown as Parameters<typeof serve>[0]
  await t.throwsAsync(serve(both), { instanceOf: TypeError, message: /not both/ })
})

test('a module that throws at import: serve() rejects with its error', async (t) => {
  t.timeout(LONG)
  const error = await t.throwsAsync(serve({ module: new URL('./fixtures/workers/throws.ts', import.meta.url), workers: 2, port: 0, host: '127.0.0.1', signals: false }))
  t.is(error?.message, 'boom at import')
})

test('a module that throws at import in the second worker: serve() rejects and the first stops listening', async (t) => {
  t.timeout(LONG)
  const port = await freePort()
  const error = await t.throwsAsync(serve({ module: new URL('./fixtures/workers/throws-in-1.ts', import.meta.url), workers: 2, port, host: '127.0.0.1', signals: false }))
  t.is(error?.message, 'boom at import in worker 1')
  t.is(await tryConnect(port), 'ECONNREFUSED', 'nothing listens on the port')
})

test('close() with requests in flight on both workers: both are answered, then the port refuses', async (t) => {
  t.timeout(LONG * 2)
  const served = await withTimeout(serve({ module: APP, workers: 2, port: 0, host: '127.0.0.1', signals: false }), LONG, 'serve() to resolve')
  const conns = await connectionPerWorker(served.port)
  t.teardown(() => conns.forEach((c) => c.destroy()))
  const token = `close-${process.pid}-${Math.random()}`
  for (const c of conns.values()) await c.write(`GET /hold?token=${token} HTTP/1.1\r\nhost: x\r\n\r\n`)
  // Both requests are in the handlers before the drain begins, and held until it has.
  await waitUntil(() => served.metrics().total.requests.inFlight === 2, PATIENCE_MS, 'both requests in flight')
  const closed = served.close()
  const release = new BroadcastChannel('harrier-workers-fixture')
  release.postMessage(token)
  release.close()
  const answers = await Promise.all([...conns].map(async ([id, c]) => [id, (await c.readResponse()).body.toString()]))
  t.deepEqual(answers.sort(), [
    ['0', 'held 0'],
    ['1', 'held 1'],
  ])
  await withTimeout(closed, LONG, 'close() to resolve')
  t.is(await tryConnect(served.port), 'ECONNREFUSED')
})

test('an uncaught exception in a worker: onError hears that error, the worker is restarted', async (t) => {
  t.timeout(LONG * 2)
  const heard = deferred<{ error: unknown; workerId: number }>()
  const served = await useServe(t, { restartDelay: 100, onError: (error, w) => heard.resolve({ error, workerId: w.workerId }) })
  let thrownBy = ''
  for (let i = 0; i < 200 && thrownBy === ''; i++) {
    const c = await RawClient.connect(served.port)
    await c.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\n')
    const id = (await c.readResponse()).body.toString()
    if (id === '0') {
      await c.write('GET /throw HTTP/1.1\r\nhost: x\r\n\r\n')
      thrownBy = id
      await c.waitForClose()
    }
    c.destroy()
  }
  const { error, workerId } = await withTimeout(heard.promise, PATIENCE_MS, 'onError to hear of the exception')
  t.is(workerId, 0)
  t.true(error instanceof Error)
  t.is((error as Error).message, 'thrown out of worker 0')
  await waitUntil(() => served.restarts()[0] === 1, PATIENCE_MS, 'worker 0 to be restarted')
  const seen = new Set<string>()
  for (const deadline = Date.now() + PATIENCE_MS; seen.size < 2 && Date.now() < deadline; ) seen.add(await idOnNewConnection(served.port))
  t.deepEqual([...seen].sort(), ['0', '1'])
})

test('SIGTERM drains every worker: requests in flight on both are answered, then the process exits by the signal', async (t) => {
  t.timeout(LONG * 2)
  const child = spawn(process.execPath, [new URL('./fixtures/workers/serve-until-signal.mjs', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d
        const m = /listening (\d+)/.exec(stdout)
        if (m) resolve(Number(m[1]))
      })
      child.on('exit', () => reject(new Error(`the child exited before listening: ${stderr}`)))
    }),
    LONG,
    'the child to listen',
  )
  const conns = await connectionPerWorker(port)
  t.teardown(() => conns.forEach((c) => c.destroy()))
  const inFlight = new Promise<void>((resolve) => child.stdout.on('data', () => /in flight 2\n/.test(stdout) && resolve()))
  for (const c of conns.values()) await c.write('GET /hold?token=signal HTTP/1.1\r\nhost: x\r\n\r\n')
  await withTimeout(inFlight, PATIENCE_MS, 'both requests in flight')
  child.kill('SIGTERM')
  const answers = await Promise.all([...conns].map(async ([id, c]) => [id, (await c.readResponse()).body.toString()]))
  t.deepEqual(answers.sort(), [
    ['0', 'held 0'],
    ['1', 'held 1'],
  ])
  t.deepEqual(await withTimeout(exited, LONG, 'the child to exit'), { code: null, signal: 'SIGTERM' }, stderr)
})

test('pub/sub across workers: ws.publish and app.publish reach subscribers on every worker; subscriberCount counts all', async (t) => {
  t.timeout(LONG * 2)
  const served = await useServe(t)
  const byWorker = new Map<string, Client>()
  const extra: Client[] = []
  t.teardown(() => [...byWorker.values(), ...extra].forEach((c) => c.ws.terminate()))
  for (let i = 0; i < 400 && byWorker.size < 2; i++) {
    const c = await openClient(served.port, '/ws')
    const hello = await c.nextText()
    const id = hello.replace('hello from ', '')
    if (byWorker.has(id)) extra.push(c)
    else byWorker.set(id, c)
  }
  const a = byWorker.get('0')!
  const b = byWorker.get('1')!
  t.truthy(a && b, 'a client on each worker')
  const total = 2 + extra.length
  // Every worker counts every subscriber, its own and the other's (as soon as both engines
  // applied the subscriptions).
  const countsByWorker = async () => {
    const counts = new Map<string, string>()
    for (let i = 0; i < 400 && counts.size < 2; i++) {
      const c = await RawClient.connect(served.port)
      await c.write('GET /id HTTP/1.1\r\nhost: x\r\n\r\nGET /count/room HTTP/1.1\r\nhost: x\r\n\r\n')
      const [id, count] = await c.readResponses(2)
      counts.set(id.body.toString(), count.body.toString())
      c.destroy()
    }
    return Object.fromEntries(counts)
  }
  let counts = await countsByWorker()
  for (const deadline = Date.now() + PATIENCE_MS; JSON.stringify(counts) !== JSON.stringify({ 0: String(total), 1: String(total) }) && Date.now() < deadline; ) counts = await countsByWorker()
  t.deepEqual(counts, { 0: String(total), 1: String(total) })
  // ws.publish on worker 0 reaches the subscriber on worker 1 (and the sender is left out).
  await a.send('hi')
  t.is(await b.nextText(), '0 says hi')
  await b.send('hey')
  t.is(await a.nextText(), '1 says hey')
  // app.publish from a request on either worker reaches both.
  const published = await idOnNewConnection(served.port, '/publish/room?m=all')
  t.is(published, String(total), 'publish counts the subscribers of every worker')
  const [fromA, fromB] = await Promise.all([a.nextText(), b.nextText()])
  t.regex(fromA, /^app [01]: all$/)
  t.is(fromA, fromB)
})

test('metrics and health cover every worker: app.metrics() in a worker and served.metrics() sum them; health says draining on all once close() began', async (t) => {
  t.timeout(LONG * 2)
  const served = await withTimeout(serve({ module: APP, workers: 2, port: 0, host: '127.0.0.1', signals: false, drainDelay: 3000 }), LONG, 'serve() to resolve')
  const seen = new Set<string>()
  for (let i = 0; i < 400 && seen.size < 2; i++) seen.add(await idOnNewConnection(served.port))
  const before = served.metrics().total.requests.total
  // Both workers, asked for their app.metrics(), report the sum, not their own share.
  const reports = new Map<number, { requests: number; workers: number }>()
  for (let i = 0; i < 400 && reports.size < 2; i++) {
    const r = (await (await fetchT(`http://127.0.0.1:${served.port}/metrics`, { headers: { connection: 'close' } })).json()) as { worker: number; requests: number; workers: number }
    reports.set(r.worker, r)
  }
  for (const [worker, r] of reports) {
    t.is(r.workers, 2, `worker ${worker} sees both`)
    t.true(r.requests >= before, `worker ${worker}: ${r.requests} counts the ${before} both answered before`)
  }
  const after = served.metrics()
  t.is(
    after.total.requests.total,
    after.workers.reduce((n, w) => n + w.requests, 0),
  )
  t.true(after.workers.every((w) => w.requests > 0))
  // Health: ok on both, then draining on both as soon as close() is called.
  for (let i = 0; i < 10; i++) t.is((await fetchT(`http://127.0.0.1:${served.port}/health`, { headers: { connection: 'close' } })).status, 200)
  const closed = served.close()
  const statuses = new Set<number>()
  const accepted = () => served.metrics().workers.map((w) => w.accepted)
  const start = accepted()
  for (let i = 0; i < 20; i++) statuses.add((await fetchT(`http://127.0.0.1:${served.port}/health`, { headers: { connection: 'close' } })).status)
  const end = accepted()
  t.deepEqual([...statuses], [503])
  t.true(end.every((n, i) => n > start[i]), `both workers answered health while draining: ${start} -> ${end}`)
  await withTimeout(closed, LONG, 'close() to resolve')
})
