// WebSocket: the life of a socket over time. idleTimeout (a ping, then the end of a silent
// peer; a peer that answers stays), backpressure (send's -1, drain, closeOnBackpressureLimit)
// and app.close() with sockets open (1001 for every one).
import test from 'ava'
import type { WebSocket } from 'harrier'
import { PATIENCE_MS, closeApp, deferred, sleep, startApp, useApp, withTimeout } from './helpers.ts'
import { OP, RawWs, Recorder, frameLength, openClient, useClient, useRaw } from './ws-helpers.ts'

// ---------------------------------------------------------------------------
// idleTimeout
// ---------------------------------------------------------------------------

test('idleTimeout: a silent raw client gets a ping by ~0.5 s and, never answering, is dropped by ~1 s with 1006', async (t) => {
  const closes = new Recorder<{ code: number; at: number }>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      idleTimeout: 1,
      close(ws, code) {
        closes.push({ code, at: performance.now() })
      },
    })
  })
  const c = await useRaw(t, port)
  const opened = performance.now()
  const ping = await c.nextFrame(PATIENCE_MS, 'the idle ping')
  const pingAt = performance.now() - opened
  t.is(ping.opcode, OP.PING)
  t.true(pingAt >= 400, `the ping came after ${pingAt.toFixed(0)} ms, not before 400 ms`)
  t.true(pingAt < 5000, `the ping came after ${pingAt.toFixed(0)} ms`)
  // no pong: the server gives up on the connection
  await c.waitForClose()
  const closedAt = c.closedAt! - opened
  t.true(closedAt >= 400, `closed after ${closedAt.toFixed(0)} ms, not before 400 ms`)
  t.true(closedAt >= pingAt, 'the ping came before the end')
  t.true(closedAt < 10_000, `closed after ${closedAt.toFixed(0)} ms`)
  await closes.count(1)
  t.is(closes.items[0].code, 1006)
})

test('idleTimeout: a raw client that answers each ping with a pong stays open', async (t) => {
  const closes = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      idleTimeout: 1,
      message: (ws, m) => void ws.send(m),
      close: (ws, code) => void closes.push(code),
    })
  })
  const c = await useRaw(t, port)
  // answer three pings in a row: 1.5 s or more, longer than the idle timeout
  for (let i = 0; i < 3; i++) {
    const f = await c.nextFrame(PATIENCE_MS, `ping #${i + 1}`)
    t.is(f.opcode, OP.PING)
    await c.send({ opcode: OP.PONG, payload: f.payload })
  }
  t.true(c.isOpen)
  await c.send({ opcode: OP.TEXT, payload: 'still here' })
  let f = await c.nextFrame()
  while (f.opcode === OP.PING) {
    await c.send({ opcode: OP.PONG, payload: f.payload })
    f = await c.nextFrame()
  }
  t.is(f.payload.toString(), 'still here')
  t.is(closes.length, 0)
})

test('idleTimeout: a ws client (which answers pings) stays open for 3x idleTimeout', async (t) => {
  const closes = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      idleTimeout: 1,
      message: (ws, m) => void ws.send(m),
      close: (ws, code) => void closes.push(code),
    })
  })
  const c = await useClient(t, port)
  const started = performance.now()
  await c.pings.count(1, 'a ping from the server')
  // the connection must outlive three idle timeouts; only time can show that
  await sleep(Math.max(0, 3000 - (performance.now() - started)))
  t.is(c.closeInfo, undefined, 'still open')
  t.is(closes.length, 0)
  t.true(c.pings.length >= 2, `pinged ${c.pings.length} times in 3 s`)
  await c.send('alive')
  t.is(await c.nextText(), 'alive')
})

test('idleTimeout: traffic from the client keeps it alive without pongs', async (t) => {
  const closes = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      idleTimeout: 1,
      message: (ws, m) => void ws.send(m),
      close: (ws, code) => void closes.push(code),
    })
  })
  const c = await useRaw(t, port)
  // a message every 300 ms for 2.4 s; the echo is awaited so each round trip really happened
  for (let i = 0; i < 8; i++) {
    await c.send({ opcode: OP.TEXT, payload: `m${i}` })
    await c.waitFor(() => c.frames.some((f) => f.opcode === OP.TEXT && f.payload.toString() === `m${i}`), PATIENCE_MS, `echo m${i}`)
    await sleep(300)
  }
  t.true(c.isOpen)
  t.is(closes.length, 0)
})

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

// The two backpressure tests are serial: ava runs them before the concurrent tests of this
// file, so the MiBs they push through loopback never delay the idle-timeout tests' timers.
const CHUNK = 16 * 1024
const MAX_TOTAL = 64 * 2 ** 20

function numbered(i: number): Buffer {
  const b = Buffer.alloc(CHUNK, i & 0xff)
  b.writeUInt32BE(i, 0)
  return b
}

test.serial('backpressure: send returns -1 over backpressureLimit, drain fires once per excursion, everything arrives in order', async (t) => {
  t.timeout(120_000)
  const opened = deferred<WebSocket>()
  const drains = new Recorder<number>()
  const closes = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      backpressureLimit: 64 * 1024,
      open: (ws) => opened.resolve(ws),
      drain: (ws) => void drains.push(ws.bufferedAmount),
      close: (ws, code) => void closes.push(code),
    })
  })
  const c = await useRaw(t, port)
  c.countOnly = true
  const ws = await withTimeout(opened.promise, PATIENCE_MS, 'open')
  let sent = 0
  // two excursions over the limit, each ended by the client reading again
  for (const round of [1, 2]) {
    c.socket.pause()
    const results: number[] = []
    let r = 0
    while (results.length * CHUNK < MAX_TOTAL) {
      r = ws.send(numbered(sent++))
      results.push(r)
      if (r === -1) break
      // let the engine write what it can, so the kernel's buffers fill first
      if (results.length % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    t.is(r, -1, `round ${round}: send returned -1 within ${MAX_TOTAL} bytes (after ${results.length} sends)`)
    t.deepEqual(
      results.slice(0, -1).filter((x) => x !== frameLength(CHUNK)),
      [],
      `round ${round}: every send before returned the frame length`,
    )
    t.true(ws.bufferedAmount > 64 * 1024, `round ${round}: bufferedAmount ${ws.bufferedAmount} is over the limit`)
    t.is(drains.length, round - 1, `round ${round}: no drain while the client reads nothing`)
    // the client reads again
    c.socket.resume()
    await drains.count(round, `drain #${round}`)
    await c.waitFor(() => c.bytes >= sent * frameLength(CHUNK), 60_000, `${sent * frameLength(CHUNK)} bytes`)
    t.is(drains.length, round, `round ${round}: drain fired once for one excursion over the limit`)
    t.true(drains.items[round - 1] <= 64 * 1024, `bufferedAmount ${drains.items[round - 1]} in drain is under the limit`)
  }
  const frames = c.parseCollected()
  t.is(frames.length, sent)
  const wrong = frames.findIndex((f, i) => f.opcode !== OP.BINARY || f.payload.length !== CHUNK || f.payload.readUInt32BE(0) !== i || f.payload[CHUNK - 1] !== (i & 0xff))
  t.is(wrong, -1, `frame ${wrong} is not message ${wrong}`)
  // below the limit now: send works as before, no further drain
  t.is(ws.send('after'), frameLength(5))
  t.is(drains.length, 2)
  t.is(closes.length, 0)
  t.true(c.isOpen)
})

test.serial('closeOnBackpressureLimit: send returns 0 once over the limit and the socket gets closed', async (t) => {
  t.timeout(120_000)
  const opened = deferred<WebSocket>()
  const closes = new Recorder<number>()
  const drains = new Recorder<void>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      backpressureLimit: 64 * 1024,
      closeOnBackpressureLimit: true,
      open: (ws) => opened.resolve(ws),
      drain: () => void drains.push(),
      close: (ws, code) => void closes.push(code),
    })
  })
  const c = await useRaw(t, port)
  c.countOnly = true
  c.socket.pause()
  const ws = await withTimeout(opened.promise, PATIENCE_MS, 'open')
  const results: number[] = []
  let r = 1
  while (results.length * CHUNK < MAX_TOTAL) {
    r = ws.send(numbered(results.length))
    results.push(r)
    if (r <= 0) break
    if (results.length % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.is(r, 0, `send returned 0 within ${MAX_TOTAL} bytes (after ${results.length} sends)`)
  t.false(results.includes(-1), 'never -1 with closeOnBackpressureLimit')
  await closes.count(1, 'the close callback')
  t.is(ws.readyState, 3)
  t.is(ws.send('more'), 0, 'a closed socket sends nothing')
  c.socket.resume()
  await c.waitForClose()
  t.is(drains.length, 0)
})

test('bufferedAmount is 0 on an idle socket that reads', async (t) => {
  const opened = deferred<WebSocket>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', { open: (ws) => opened.resolve(ws), message: (ws, m) => void ws.send(m) })
  })
  const c = await useClient(t, port)
  const ws = await withTimeout(opened.promise, PATIENCE_MS, 'open')
  await c.send('x')
  t.is(await c.nextText(), 'x')
  t.is(ws.bufferedAmount, 0)
})

// ---------------------------------------------------------------------------
// app.close() with sockets open
// ---------------------------------------------------------------------------

test('app.close() with open sockets: every client gets close 1001, answers, and close() resolves', async (t) => {
  const closes = new Recorder<number>()
  const opens = new Recorder<void>()
  const { app, port } = await startApp((app) => {
    app.ws('/', {
      open: () => void opens.push(),
      message: (ws, m) => void ws.send(m),
      close: (ws, code) => void closes.push(code),
    })
  })
  let closed = false
  t.teardown(async () => {
    if (!closed) await closeApp(app)
  })
  const clients = await Promise.all([0, 1, 2, 3, 4].map(() => openClient(port)))
  t.teardown(() => clients.forEach((c) => c.ws.terminate()))
  const raw = await RawWs.open(port)
  t.teardown(() => raw.destroy())
  await opens.count(6)
  await clients[0].send('x')
  t.is(await clients[0].nextText(), 'x')

  const closing = closeApp(app)
  // the raw client answers the close by hand
  const close = await raw.closeFrame()
  t.is(close.code, 1001)
  await raw.send({ opcode: OP.CLOSE, payload: close.frame.payload })
  const infos = await Promise.all(clients.map((c) => c.waitClosed()))
  for (const info of infos) t.is(info.code, 1001)
  await closing
  closed = true
  await closes.count(6)
  t.deepEqual(closes.items, [1001, 1001, 1001, 1001, 1001, 1001])
  await raw.waitForClose()
})

test('app.close() resolves even when a client never answers the close', async (t) => {
  const closes = new Recorder<number>()
  const { app, port } = await startApp((app) => {
    app.ws('/', { close: (ws, code) => void closes.push(code) })
  })
  const raw = await RawWs.open(port)
  t.teardown(() => raw.destroy())
  const closing = closeApp(app)
  t.is((await raw.closeFrame()).code, 1001)
  // no answer
  await closing
  await raw.waitForClose()
  await closes.count(1)
  t.is(closes.length, 1)
})
