// WebSocket: the handshake, subprotocols, the `upgrade` hook, echo of text and binary
// messages, and the socket's API (send's return value, close, terminate, readyState,
// protocol, remoteAddress, params, data), with real `ws` clients and hand-made handshakes.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'
import { HttpError } from 'harrier'
import { assertBuilt, node, root, tempDir } from './distribution.ts'
import { PATIENCE_MS, deferred, rawRequest, sha256, useApp, withTimeout } from './helpers.ts'
import { OP, RawWs, Recorder, acceptFor, asciiOf, frame, frameLength, handshakeRequest, openClient, useClient, useRaw } from './ws-helpers.ts'

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

test('the handshake answers 101 with the Sec-WebSocket-Accept of RFC 6455 and opens the socket', async (t) => {
  const opened = deferred<void>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      open(ws) {
        opened.resolve()
        ws.send('hi')
      },
    })
  })
  // the key and accept of RFC 6455 section 1.3
  const c = await RawWs.handshake(port, '/', {}, 'dGhlIHNhbXBsZSBub25jZQ==')
  t.teardown(() => c.destroy())
  const r = c.response!
  t.is(r.status, 101, r.head)
  t.is(r.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.is(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.is(r.headers['upgrade']?.toLowerCase(), 'websocket')
  t.is(r.headers['connection']?.toLowerCase(), 'upgrade')
  t.false('sec-websocket-protocol' in r.headers, 'no subprotocol was asked for')
  t.false('content-length' in r.headers && r.headers['content-length'] !== '0', 'a 101 has no body')
  await withTimeout(opened.promise, PATIENCE_MS, 'open to run')
  const f = await c.nextFrame()
  t.is(f.opcode, OP.TEXT)
  t.true(f.fin)
  t.false(f.masked, 'server frames are not masked')
  t.is(f.payload.toString(), 'hi')
})

test('a random key gets its own accept, and the ws client opens', async (t) => {
  const { port } = await useApp(t, (app) => {
    app.ws('/', { message: (ws, m) => void ws.send(m) })
  })
  for (let i = 0; i < 3; i++) {
    const key = randomBytes(16).toString('base64')
    const c = await RawWs.handshake(port, '/', {}, key)
    t.is(c.response!.status, 101)
    t.is(c.response!.headers['sec-websocket-accept'], acceptFor(key))
    c.destroy()
  }
  const client = await useClient(t, port)
  await client.send('ping?')
  t.is(await client.nextText(), 'ping?')
})

test('subprotocol: the first of the server protocols that the client offers is chosen', async (t) => {
  const seen = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      protocols: ['chat.v2', 'chat.v1'],
      open(ws) {
        seen.push(ws.protocol)
      },
      message(ws) {
        ws.send(`protocol=${ws.protocol}`)
      },
    })
  })
  const c = await useClient(t, port, '/', { protocols: ['chat.v1', 'chat.v2'] })
  t.is(c.ws.protocol, 'chat.v2', 'the server order wins, not the client order')
  await c.send('?')
  t.is(await c.nextText(), 'protocol=chat.v2')

  const only1 = await useClient(t, port, '/', { protocols: ['chat.v0', 'chat.v1'] })
  t.is(only1.ws.protocol, 'chat.v1')

  // hand-made, to see the header itself
  const raw = await useRaw(t, port, '/', { 'Sec-WebSocket-Protocol': 'x, chat.v1, chat.v2' })
  t.is(raw.response!.headers['sec-websocket-protocol'], 'chat.v2')
  await seen.count(3)
  t.deepEqual(seen.items, ['chat.v2', 'chat.v1', 'chat.v2'])
})

test('subprotocol: none in common opens the connection without Sec-WebSocket-Protocol', async (t) => {
  const seen = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      protocols: ['chat.v2', 'chat.v1'],
      open(ws) {
        seen.push(ws.protocol)
        ws.send(`protocol=[${ws.protocol}]`)
      },
    })
  })
  const raw = await useRaw(t, port, '/', { 'Sec-WebSocket-Protocol': 'chat.v3, mqtt' })
  t.is(raw.response!.status, 101)
  t.false('sec-websocket-protocol' in raw.response!.headers, raw.response!.head)
  const f = await raw.nextFrame()
  t.is(f.payload.toString(), 'protocol=[]')

  // a ws client that offers nothing opens too
  const c = await useClient(t, port)
  t.is(c.ws.protocol, '')
  t.is(await c.nextText(), 'protocol=[]')
  await seen.count(2)
  t.deepEqual(seen.items, ['', ''])
})

// ---------------------------------------------------------------------------
// The upgrade hook
// ---------------------------------------------------------------------------

test('upgrade throwing HttpError(401) answers 401 with its message, no upgrade, open never runs', async (t) => {
  let opens = 0
  let upgrades = 0
  const { port } = await useApp(t, (app) => {
    app.ws('/chat/:room', {
      upgrade: async (req) => {
        upgrades++
        const user = req.header('x-user')
        if (!user) throw new HttpError(401, 'who are you?')
        return { user }
      },
      open(ws) {
        opens++
        ws.send(`hello ${ws.data.user}`)
      },
    })
  })
  const r = await rawRequest(port, handshakeRequest('/chat/lobby'))
  const res = r.responses[0]
  t.is(res.status, 401)
  t.is(res.body.toString(), 'who are you?')
  t.false('sec-websocket-accept' in res.headers)
  t.not(res.headers['upgrade']?.toLowerCase(), 'websocket')
  t.is(upgrades, 1)

  // the ws client sees the refusal
  const refused = await openClient(port, '/chat/lobby').then(
    () => 'opened',
    (e: Error) => e.message,
  )
  t.is(refused, 'unexpected response 401')

  // and with the header the same route opens
  const c = await useClient(t, port, '/chat/lobby', { headers: { 'x-user': 'alice' } })
  t.is(await c.nextText(), 'hello alice')
  t.is(opens, 1, 'open ran only for the accepted upgrade')
  t.is(upgrades, 3)
})

test('an async upgrade that resolves later answers 101 then, and what it returned is ws.data', async (t) => {
  const upgradeStarted = new Recorder<number>()
  const datas = new Recorder<unknown>()
  const { port } = await useApp(t, (app) => {
    app.ws('/chat/:room', {
      upgrade: async (req) => {
        upgradeStarted.push(performance.now())
        await new Promise((r) => setTimeout(r, 20))
        return { user: req.header('x-user'), room: req.params.room, n: 42 }
      },
      open(ws) {
        datas.push(ws.data)
        ws.send(JSON.stringify(ws.data))
      },
      message(ws) {
        ws.send(JSON.stringify(ws.data))
      },
    })
  })
  const c = await RawWs.handshake(port, '/chat/lobby', { 'x-user': 'bob' })
  t.teardown(() => c.destroy())
  const answered = performance.now()
  t.is(c.response!.status, 101, c.response!.head)
  await upgradeStarted.count(1)
  t.true(answered - upgradeStarted.items[0] >= 15, `the 101 waited for upgrade (${(answered - upgradeStarted.items[0]).toFixed(1)} ms)`)
  const f = await c.nextFrame()
  t.deepEqual(JSON.parse(f.payload.toString()), { user: 'bob', room: 'lobby', n: 42 })
  await datas.count(1)
  t.deepEqual(datas.items[0], { user: 'bob', room: 'lobby', n: 42 })
  // ws.data is the same object in later callbacks
  await c.send({ opcode: OP.TEXT, payload: 'again' })
  t.deepEqual(JSON.parse((await c.nextFrame()).payload.toString()), { user: 'bob', room: 'lobby', n: 42 })
})

test('upgrade throwing a plain Error answers 500 and does not upgrade', async (t) => {
  let opens = 0
  const errors: unknown[] = []
  const { port } = await useApp(t, (app) => {
    app.onError = (e) => void errors.push(e)
    app.ws('/', {
      upgrade: () => {
        throw new Error('boom')
      },
      open() {
        opens++
      },
    })
    app.ws('/async', {
      upgrade: async () => {
        await new Promise((r) => setTimeout(r, 5))
        throw new Error('async boom')
      },
      open() {
        opens++
      },
    })
  })
  for (const p of ['/', '/async']) {
    const r = await rawRequest(port, handshakeRequest(p))
    t.is(r.responses[0].status, 500, p)
    t.false('sec-websocket-accept' in r.responses[0].headers, p)
  }
  t.is(opens, 0)
})

test('without an upgrade hook ws.data is undefined and params come from the path', async (t) => {
  const seen = new Recorder<{ data: unknown; params: Record<string, string> }>()
  const { port } = await useApp(t, (app) => {
    app.ws('/rooms/:room/users/:user', {
      open(ws) {
        seen.push({ data: ws.data, params: { ...ws.params } })
      },
    })
  })
  await useClient(t, port, '/rooms/lobby/users/alice?x=1')
  await seen.count(1)
  t.is(seen.items[0].data, undefined)
  t.deepEqual(seen.items[0].params, { room: 'lobby', user: 'alice' })
})

// ---------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------

const SIZES = [0, 125, 126, 65535, 65536, 2 ** 20]

for (const size of SIZES) {
  test(`echo of ${size} B: text stays text, binary stays binary, byte-exact, send returns the frame length`, async (t) => {
    const got = new Recorder<{ kind: string; sha: string; sent: number }>()
    const { port } = await useApp(t, (app) => {
      app.ws('/', {
        message(ws, m) {
          const kind = typeof m === 'string' ? 'string' : Buffer.isBuffer(m) ? 'Buffer' : `other:${Object.prototype.toString.call(m)}`
          const sha = sha256(typeof m === 'string' ? Buffer.from(m) : (m as Buffer))
          got.push({ kind, sha, sent: ws.send(m) })
        },
      })
    })
    const c = await useClient(t, port)
    const text = asciiOf(size, size)
    // binary bytes that are not valid UTF-8 at all, so a text path would mangle them
    const bin = Buffer.alloc(size)
    for (let i = 0; i < size; i++) bin[i] = (i * 131 + 0xc0 + (i >> 8)) & 0xff

    await c.send(text)
    const e1 = await c.next()
    t.false(e1.isBinary, 'the echo of text is text')
    t.is(e1.data.length, size)
    t.is(sha256(e1.data), sha256(text))

    await c.send(bin, { binary: true })
    const e2 = await c.next()
    t.true(e2.isBinary, 'the echo of binary is binary')
    t.is(e2.data.length, size)
    t.is(sha256(e2.data), sha256(bin))

    await got.count(2)
    t.deepEqual(got.items, [
      { kind: 'string', sha: sha256(text), sent: frameLength(size) },
      { kind: 'Buffer', sha: sha256(bin), sent: frameLength(size) },
    ])
  })
}

test('a text message with multi-byte UTF-8 arrives as the same string', async (t) => {
  const got = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      message(ws, m) {
        got.push(typeof m === 'string' ? m : `binary:${m.length}`)
        ws.send(m)
      },
    })
  })
  const c = await useClient(t, port)
  const s = 'κόσμε · 日本語 · 🦀 · ü'
  await c.send(s)
  t.is(await c.nextText(), s)
  await got.count(1)
  t.is(got.items[0], s)
})

test('binary messages read together stay apart: each kept, changed by the handler, and the next ones intact', async (t) => {
  // Two sockets each write 120 binary frames (1 B to 3 KiB, text frames among them) in one
  // write: the server reads them together. The handler keeps every message and zeroes it
  // after noting its digest: no message may see another's bytes, or be seen by another.
  const sizes = Array.from({ length: 120 }, (_, k) => 1 + ((k * 997) % 3000))
  const kept = new Map<string, Buffer[]>()
  const digests = new Map<string, string[]>()
  const done = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/:who', {
      message(ws, m) {
        const who = ws.params.who
        if (typeof m === 'string') {
          if (m === 'end') done.push(who)
          return
        }
        if (!kept.has(who)) kept.set(who, [])
        if (!digests.has(who)) digests.set(who, [])
        kept.get(who)!.push(m)
        digests.get(who)!.push(sha256(m))
        m.fill(0)
      },
    })
  })
  const payloads = (seed: number) => sizes.map((n, k) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + k * 7 + seed) & 0xff)))
  const clients = await Promise.all(['a', 'b'].map((who) => useRaw(t, port, `/${who}`)))
  const sent = [payloads(1), payloads(2)]
  await Promise.all(
    clients.map((c, n) => {
      const frames: Buffer[] = []
      sent[n].forEach((p, k) => {
        frames.push(frame({ opcode: OP.BINARY, payload: p }))
        if (k % 17 === 0) frames.push(frame({ opcode: OP.TEXT, payload: `text ${k}` }))
      })
      frames.push(frame({ opcode: OP.TEXT, payload: 'end' }))
      return c.write(Buffer.concat(frames))
    }),
  )
  await done.count(2)
  for (const [n, who] of ['a', 'b'].entries()) {
    t.deepEqual(digests.get(who), sent[n].map((p) => sha256(p)), `${who}: every message as sent`)
    const messages = kept.get(who)!
    t.deepEqual(messages.map((m) => m.length), sizes)
    t.true(messages.every((m) => m.every((b) => b === 0)), `${who}: each kept message holds only what its handler wrote`)
  }
})

test("a binary message's memory (message.buffer) holds its own socket's messages only", async (t) => {
  // Three sockets each write 24 binary messages of 4 KiB, every byte of them the socket's
  // own marker, in one write: the server reads them into batches past 64 KiB, some of one
  // socket's messages alone (handed to JS in memory of their own), some mixed with another
  // socket's, or with text (copied out per socket). Whatever a message shares memory with,
  // no byte of another socket may be reachable through message.buffer.
  const markers = { a: 0x0a, b: 0x0b, c: 0x0c } as const
  const foreign = new Map<string, number>()
  const received = new Map<string, number>()
  const done = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/:who', {
      message(ws, m) {
        const who = ws.params.who as keyof typeof markers
        if (typeof m === 'string') {
          if (m === 'end') done.push(who)
          return
        }
        received.set(who, (received.get(who) ?? 0) + 1)
        const all = new Uint8Array(m.buffer, 0, m.buffer.byteLength)
        let others = 0
        for (const byte of all) if (byte !== markers[who]) others++
        if (others > 0) foreign.set(who, (foreign.get(who) ?? 0) + others)
      },
    })
  })
  const clients = await Promise.all(Object.keys(markers).map((who) => useRaw(t, port, `/${who}`)))
  await Promise.all(
    Object.values(markers).map((marker, n) => {
      const frames: Buffer[] = []
      for (let k = 0; k < 24; k++) {
        frames.push(frame({ opcode: OP.BINARY, payload: Buffer.alloc(4096, marker) }))
        // The third socket's text among its binary messages: its batches are never its binary messages alone.
        if (n === 2 && k % 5 === 0) frames.push(frame({ opcode: OP.TEXT, payload: `text ${k}` }))
      }
      frames.push(frame({ opcode: OP.TEXT, payload: 'end' }))
      return clients[n].write(Buffer.concat(frames))
    }),
  )
  await done.count(3)
  for (const who of Object.keys(markers)) t.is(received.get(who), 24, `${who}: every message arrived`)
  t.deepEqual(Object.fromEntries(foreign), {}, 'bytes of another socket (or of text) reachable through message.buffer')
})

test('send takes string, Buffer, Uint8Array and ArrayBuffer; only a string is sent as text', async (t) => {
  const sent = deferred<number[]>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      open(ws) {
        const u8 = new Uint8Array([1, 2, 3, 255])
        const view = new Uint8Array(new Uint8Array([9, 9, 7, 8, 9, 9]).buffer, 2, 2) // an offset view: only [7, 8]
        const ab = new Uint8Array([4, 5, 6]).buffer
        sent.resolve([ws.send('text'), ws.send(Buffer.from('buf')), ws.send(u8), ws.send(view), ws.send(ab), ws.send(''), ws.send(Buffer.alloc(0))])
      },
    })
  })
  const c = await useClient(t, port)
  const want: Array<[boolean, number[] | string]> = [
    [false, 'text'],
    [true, [...Buffer.from('buf')]],
    [true, [1, 2, 3, 255]],
    [true, [7, 8]],
    [true, [4, 5, 6]],
    [false, ''],
    [true, []],
  ]
  for (const [isBinary, content] of want) {
    const m = await c.next()
    t.is(m.isBinary, isBinary, JSON.stringify(content))
    if (typeof content === 'string') t.is(m.text, content)
    else t.deepEqual([...m.data], content)
  }
  t.deepEqual(await sent.promise, [6, 5, 6, 4, 5, 2, 2], 'send returns header + payload length, > 0 even when empty')
})

// ---------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------

test('ws.close(4000, "done") from the server: the client gets 4000 "done" and close runs', async (t) => {
  const closes = new Recorder<{ code: number; reason: string; state: number }>()
  const after = deferred<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      message(ws) {
        ws.close(4000, 'done')
      },
      close(ws, code, reason) {
        closes.push({ code, reason, state: ws.readyState })
        after.resolve(ws.send('too late'))
      },
    })
  })
  const c = await useClient(t, port)
  await c.send('bye please')
  const info = await c.waitClosed()
  t.deepEqual(info, { code: 4000, reason: 'done' })
  await closes.count(1)
  t.deepEqual(closes.items, [{ code: 4000, reason: 'done', state: 3 }])
  t.is(await after.promise, 0, 'send on a closed socket returns 0')
  t.is(c.messages.length, 0, 'nothing arrives after the close')
})

test('a client close 1000 "bye" is echoed and the close callback gets (1000, "bye")', async (t) => {
  const closes = new Recorder<[number, string]>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      close(ws, code, reason) {
        closes.push([code, reason])
      },
    })
  })
  const c = await useClient(t, port)
  c.close(1000, 'bye')
  t.deepEqual(await c.waitClosed(), { code: 1000, reason: 'bye' })
  await closes.count(1)
  t.deepEqual(closes.items, [[1000, 'bye']])
})

test('terminate() drops the TCP connection: the client sees 1006', async (t) => {
  const closes = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      message(ws, m) {
        if (m === 'die') ws.terminate()
        else ws.send(m)
      },
      close(ws, code) {
        closes.push(code)
      },
    })
  })
  const c = await useClient(t, port)
  await c.send('x')
  t.is(await c.nextText(), 'x')
  await c.send('die')
  t.is((await c.waitClosed()).code, 1006)
  await closes.count(1)
  t.is(closes.length, 1, 'the close callback runs once')

  // a raw client sees no close frame, only the end of the connection
  const raw = await useRaw(t, port)
  await raw.send({ opcode: OP.TEXT, payload: 'die' })
  await raw.waitForClose()
  t.false(
    raw.frames.some((f) => f.opcode === OP.CLOSE),
    'terminate sends no close frame',
  )
})

// ---------------------------------------------------------------------------
// The socket's properties
// ---------------------------------------------------------------------------

test('readyState, protocol, remoteAddress, params, subscriptions and bufferedAmount in each callback', async (t) => {
  type Seen = { where: string; readyState: number; protocol: string; remoteAddress: string; params: Record<string, string>; buffered: unknown }
  const seen = new Recorder<Seen>()
  const closedSend = deferred<unknown[]>()
  const { port } = await useApp(t, (app) => {
    app.ws('/chat/:room', {
      protocols: ['chat.v1'],
      open(ws) {
        seen.push({ where: 'open', readyState: ws.readyState, protocol: ws.protocol, remoteAddress: ws.remoteAddress, params: { ...ws.params }, buffered: typeof ws.bufferedAmount })
      },
      message(ws) {
        seen.push({ where: 'message', readyState: ws.readyState, protocol: ws.protocol, remoteAddress: ws.remoteAddress, params: { ...ws.params }, buffered: typeof ws.bufferedAmount })
        ws.send('ok')
      },
      close(ws) {
        seen.push({ where: 'close', readyState: ws.readyState, protocol: ws.protocol, remoteAddress: ws.remoteAddress, params: { ...ws.params }, buffered: typeof ws.bufferedAmount })
        // nothing throws on a closed socket
        const results: unknown[] = []
        try {
          results.push(ws.send('x'), ws.send(Buffer.from('y'), true))
          ws.subscribe('t')
          results.push(ws.isSubscribed('t'))
          ws.unsubscribe('t')
          ws.publish('t', 'z')
          ws.close(1000)
          ws.terminate()
          results.push('no throw')
        } catch (e) {
          results.push(`threw: ${(e as Error).message}`)
        }
        closedSend.resolve(results)
      },
    })
  })
  const c = await useClient(t, port, '/chat/lobby', { protocols: 'chat.v1' })
  await c.send('hi')
  t.is(await c.nextText(), 'ok')
  c.close(1000)
  await c.waitClosed()
  await seen.count(3)
  const base = { protocol: 'chat.v1', remoteAddress: '127.0.0.1', params: { room: 'lobby' }, buffered: 'number' }
  t.deepEqual(seen.items, [
    { where: 'open', readyState: 1, ...base },
    { where: 'message', readyState: 1, ...base },
    { where: 'close', readyState: 3, ...base },
  ])
  const results = await withTimeout(closedSend.promise, PATIENCE_MS, 'the close callback')
  t.is(results[0], 0)
  t.is(results[1], 0)
  t.is(results[results.length - 1], 'no throw')
})

test('routes: a ws route and an http route side by side; an unknown path is 404', async (t) => {
  const { port, base } = await useApp(t, (app) => {
    app.get('/http', (req, res) => res.text('plain'))
    app.ws('/ws', { message: (ws, m) => void ws.send(m) })
  })
  const r = await fetch(`${base}/http`, { signal: AbortSignal.timeout(PATIENCE_MS) })
  t.is(await r.text(), 'plain')
  const c = await useClient(t, port, '/ws')
  await c.send('echo')
  t.is(await c.nextText(), 'echo')
  const miss = await rawRequest(port, handshakeRequest('/nope'))
  t.is(miss.responses[0].status, 404, 'a handshake to a path without a ws route')
  t.false('sec-websocket-accept' in miss.responses[0].headers)
})

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

const TYPES_EXAMPLE = `
import { App, HttpError, type WebSocket } from 'harrier'

const app = new App()
app.ws('/chat/:room', {
  upgrade: async (req) => {
    const user = req.header('x-user')
    if (!user) throw new HttpError(401, 'who are you?')
    return { user }
  },
  open(ws) {
    const room: string = ws.params.room
    const user: string = ws.data.user
    // @ts-expect-error: no such param
    ws.params.nope
    ws.subscribe(\`room:\${room}\`)
    const n: number = ws.send(\`hello \${user}\`)
    ws.send(Buffer.from('x'), true)
    ws.send(new Uint8Array(2))
    ws.send(new ArrayBuffer(2))
    // @ts-expect-error: not sendable
    ws.send({ not: 'data' })
    const p: string = ws.protocol
    const subs: string[] = ws.subscriptions
    const rs: number = ws.readyState
    const b: number = ws.bufferedAmount
    const a: string = ws.remoteAddress
    const s: boolean = ws.isSubscribed('x')
    ws.unsubscribe('x')
    ws.publish('x', 'y', false)
    void [n, p, subs, rs, b, a, s]
  },
  message(ws, message) {
    const m: string | Buffer = message
    ws.publish(\`room:\${ws.params.room}\`, m)
  },
  drain(ws) {
    ws.close(1000, 'bye')
  },
  close(ws, code, reason) {
    const c: number = code
    const r: string = reason
    ws.terminate()
    void [c, r]
  },
  maxPayloadLength: 16 * 2 ** 20,
  idleTimeout: 0.5,
  backpressureLimit: 2 ** 20,
  closeOnBackpressureLimit: false,
  perMessageDeflate: { threshold: 1024 },
  protocols: ['chat.v2', 'chat.v1'],
})
app.ws('/plain', { perMessageDeflate: true, message: (ws, m) => void ws.send(m) })
// @ts-expect-error: idleTimeout is a number of seconds
app.ws('/bad', { idleTimeout: '2m' })
const queued: number = app.publish('room:lobby', 'server news')
const count: number = app.subscriberCount('room:lobby')
function greet(ws: WebSocket<{ user: string }, { room: string }>): number {
  return ws.send(ws.data.user + ws.params.room)
}
void [queued, count, greet]
`

test('types: app.ws, WebSocket<Data, Params> and the options type-check (strict), and misuse does not', async (t) => {
  t.timeout(90_000)
  assertBuilt()
  const dir = tempDir(t, 'ws-types')
  fs.writeFileSync(path.join(dir, 'ws.ts'), TYPES_EXAMPLE)
  // a tsconfig like __test__/types/tsconfig.json, with 'harrier' mapped to this package
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        types: ['node'],
        typeRoots: [path.join(root, 'node_modules', '@types')],
        paths: { harrier: [path.join(root, 'index.d.ts')] },
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
        skipLibCheck: true,
      },
      files: ['ws.ts'],
    }),
  )
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = await node([tsc, '-p', path.join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir, timeout: 85_000 })
  t.is(r.code, 0, `tsc exited with ${r.code}\n${r.stdout}\n${r.stderr}`)
})
