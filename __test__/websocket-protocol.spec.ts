// WebSocket: bad input over raw sockets. Handshakes the server must refuse (426, 400, 405,
// with no JS callback run), fragmentation with control frames in between, and frames the
// server must fail the connection for (1002, 1007, 1009), each time checking that the
// server's other connections are unharmed and that `close` heard the code it closed with.
import { randomBytes } from 'node:crypto'
import zlib from 'node:zlib'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { PATIENCE_MS, rawReq, rawRequest, useApp, waitUntil } from './helpers.ts'
import { OP, RawWs, Recorder, closePayload, frame, handshakeRequest, useClient, useRaw, type FrameOptions } from './ws-helpers.ts'

const key = () => randomBytes(16).toString('base64')

// ---------------------------------------------------------------------------
// Refused handshakes
// ---------------------------------------------------------------------------

async function refusingApp(t: ExecutionContext) {
  const calls: string[] = []
  const started = await useApp(t, (app) => {
    app.ws('/ws', {
      upgrade: () => {
        calls.push('upgrade')
        return {}
      },
      open() {
        calls.push('open')
      },
    })
  })
  return { ...started, calls }
}

test('a GET without Upgrade: websocket / Connection: upgrade answers 426 with upgrade: websocket', async (t) => {
  const { port, calls } = await refusingApp(t)
  const cases: Record<string, string> = {
    'no upgrade headers at all': rawReq('GET', '/ws').toString('latin1'),
    'no Upgrade': handshakeRequest('/ws', { Upgrade: '' }),
    'Upgrade: h2c': handshakeRequest('/ws', { Upgrade: 'h2c' }),
    'no Connection': handshakeRequest('/ws', { Connection: '' }),
    'Connection: keep-alive': handshakeRequest('/ws', { Connection: 'keep-alive' }),
  }
  for (const [what, req] of Object.entries(cases)) {
    const r = await rawRequest(port, req)
    t.is(r.responses[0].status, 426, what)
    t.is(r.responses[0].headers['upgrade']?.toLowerCase(), 'websocket', what)
    t.false('sec-websocket-accept' in r.responses[0].headers, what)
  }
  t.deepEqual(calls, [], 'neither upgrade nor open ran')
})

test('Connection: keep-alive, Upgrade and a mixed-case Upgrade: WebSocket are accepted', async (t) => {
  const { port, calls } = await refusingApp(t)
  const c = await useRaw(t, port, '/ws', { Connection: 'keep-alive, Upgrade', Upgrade: 'WebSocket' })
  t.is(c.response!.status, 101)
  await waitUntil(() => calls.length === 2, PATIENCE_MS, 'upgrade and open')
  t.deepEqual(calls, ['upgrade', 'open'])
})

test('Sec-WebSocket-Version other than 13 answers 426 with sec-websocket-version: 13', async (t) => {
  const { port, calls } = await refusingApp(t)
  for (const v of ['8', '12', '14', '0', 'abc']) {
    const r = await rawRequest(port, handshakeRequest('/ws', { 'Sec-WebSocket-Version': v }))
    t.is(r.responses[0].status, 426, `version ${JSON.stringify(v)}`)
    t.is(r.responses[0].headers['sec-websocket-version'], '13', `version ${JSON.stringify(v)}`)
  }
  t.deepEqual(calls, [])
})

test('a missing or malformed Sec-WebSocket-Key answers 400', async (t) => {
  const { port, calls } = await refusingApp(t)
  const keys: Record<string, string> = {
    missing: '',
    'base64 of 15 bytes': randomBytes(15).toString('base64'),
    'base64 of 17 bytes': randomBytes(17).toString('base64'),
    'not base64': '!!!!!!!!!!!!!!!!!!!!!!==',
    'plain text': 'hello',
  }
  for (const [what, k] of Object.entries(keys)) {
    const r = await rawRequest(port, handshakeRequest('/ws', { 'Sec-WebSocket-Key': k }))
    t.is(r.responses[0].status, 400, what)
    t.false('sec-websocket-accept' in r.responses[0].headers, what)
  }
  t.deepEqual(calls, [])
})

test('a handshake with a body (Content-Length > 0) answers 400', async (t) => {
  const { port, calls } = await refusingApp(t)
  const r = await rawRequest(port, handshakeRequest('/ws', { 'Content-Length': '5' }) + 'hello')
  t.is(r.responses[0].status, 400)
  t.false('sec-websocket-accept' in r.responses[0].headers)
  t.deepEqual(calls, [])
})

test('a POST to a ws path answers 405 with Allow: GET', async (t) => {
  const { port, calls } = await refusingApp(t)
  const r = await rawRequest(port, rawReq('POST', '/ws', { 'Content-Length': '0' }))
  t.is(r.responses[0].status, 405)
  const allow = (r.responses[0].headers['allow'] ?? '').split(',').map((m) => m.trim().toUpperCase())
  t.true(allow.includes('GET'), `Allow: ${r.responses[0].headers['allow']}`)
  // even when it carries the upgrade headers
  const h = handshakeRequest('/ws').replace(/^GET /, 'POST ')
  const r2 = await rawRequest(port, h)
  t.is(r2.responses[0].status, 405)
  t.deepEqual(calls, [])
})

// ---------------------------------------------------------------------------
// Fragmentation
// ---------------------------------------------------------------------------

test('a fragmented message with pings between the fragments: message gets it once, each ping its pong', async (t) => {
  const got = new Recorder<{ kind: string; value: string }>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', {
      message(ws, m) {
        got.push({ kind: typeof m === 'string' ? 'string' : 'Buffer', value: typeof m === 'string' ? m : m.toString('hex') })
      },
    })
  })
  const c = await useRaw(t, port)
  await c.write(
    Buffer.concat([
      frame({ fin: false, opcode: OP.TEXT, payload: 'Hello, ' }),
      frame({ opcode: OP.PING, payload: 'ping-1' }),
      frame({ fin: false, opcode: OP.CONT, payload: 'fragmented ' }),
      frame({ opcode: OP.PING, payload: '' }),
    ]),
  )
  const p1 = await c.nextFrame()
  t.is(p1.opcode, OP.PONG)
  t.is(p1.payload.toString(), 'ping-1')
  const p2 = await c.nextFrame()
  t.is(p2.opcode, OP.PONG)
  t.is(p2.payload.length, 0)
  t.is(got.length, 0, 'no message before the last fragment')
  await c.send({ opcode: OP.CONT, payload: 'world' })
  await got.count(1)

  // binary, split in three, a 125-byte ping in between
  const bin = randomBytes(300)
  const pingPayload = randomBytes(125)
  await c.write(
    Buffer.concat([
      frame({ fin: false, opcode: OP.BINARY, payload: bin.subarray(0, 100) }),
      frame({ fin: false, opcode: OP.CONT, payload: bin.subarray(100, 200) }),
      frame({ opcode: OP.PING, payload: pingPayload }),
      frame({ opcode: OP.CONT, payload: bin.subarray(200) }),
    ]),
  )
  await got.count(2)
  const p3 = await c.nextFrame()
  t.is(p3.opcode, OP.PONG)
  t.deepEqual(p3.payload, pingPayload)
  t.deepEqual(got.items, [
    { kind: 'string', value: 'Hello, fragmented world' },
    { kind: 'Buffer', value: bin.toString('hex') },
  ])
  t.true(c.isOpen)
})

test('a message of exactly maxPayloadLength, in fragments, is accepted', async (t) => {
  const got = new Recorder<number>()
  const { port } = await useApp(t, (app) => {
    app.ws('/', { maxPayloadLength: 1024, message: (ws, m) => void got.push(m.length) })
  })
  const c = await useRaw(t, port)
  await c.send({ opcode: OP.BINARY, payload: Buffer.alloc(1024, 1) })
  await c.write(Buffer.concat([frame({ fin: false, opcode: OP.BINARY, payload: Buffer.alloc(600, 2) }), frame({ opcode: OP.CONT, payload: Buffer.alloc(424, 3) })]))
  await got.count(2)
  t.deepEqual(got.items, [1024, 1024])
  t.true(c.isOpen)
})

// ---------------------------------------------------------------------------
// Bad frames: the server fails the connection
// ---------------------------------------------------------------------------

interface BadApp {
  port: number
  closes: Recorder<{ code: number; reason: string }>
  messages: Recorder<string>
}

async function badInputApp(t: ExecutionContext, options: Record<string, unknown> = {}): Promise<BadApp> {
  const closes = new Recorder<{ code: number; reason: string }>()
  const messages = new Recorder<string>()
  const { port } = await useApp(t, (app) => {
    app.ws('/victim', {
      ...options,
      message(ws, m) {
        messages.push(typeof m === 'string' ? m : `binary:${m.length}`)
      },
      close(ws, code, reason) {
        closes.push({ code, reason })
      },
    })
    app.ws('/echo', { message: (ws, m) => void ws.send(m) })
  })
  return { port, closes, messages }
}

/** A bystander: opened before the bad input, checked after it. */
async function bystander(t: ExecutionContext, port: number) {
  const c = await useClient(t, port, '/echo')
  await c.send('before')
  t.is(await c.nextText(), 'before')
  return async () => {
    await c.send('after')
    t.is(await c.nextText(), 'after', 'another connection still echoes')
    t.is(c.closeInfo, undefined)
  }
}

/** Sends `bytes` on a fresh raw connection and expects close `code` and the TCP connection closed. */
async function expectFailure(t: ExecutionContext, app: BadApp, bytes: Buffer, code: number | number[], headers: Record<string, string> = {}) {
  const check = await bystander(t, app.port)
  const c = await useRaw(t, app.port, '/victim', headers)
  await c.write(bytes)
  const close = await c.closeFrame()
  const codes = Array.isArray(code) ? code : [code]
  t.true(codes.includes(close.code), `server close code ${close.code}, want ${codes.join(' or ')} (reason ${JSON.stringify(close.reason)})`)
  t.false(close.frame.masked)
  await c.waitForClose()
  await app.closes.count(1, 'the close callback')
  t.is(app.closes.items[0].code, close.code, 'the close callback gets the code the server closed with')
  t.is(app.closes.length, 1)
  await check()
  return c
}

const bad: Array<[string, FrameOptions[], number | number[]]> = [
  ['an unmasked client frame', [{ opcode: OP.TEXT, payload: 'hello', mask: false }], 1002],
  ['RSV1 set without an extension', [{ opcode: OP.TEXT, payload: 'hello', rsv: 0b100 }], 1002],
  ['RSV2 set', [{ opcode: OP.TEXT, payload: 'hello', rsv: 0b010 }], 1002],
  ['RSV3 set', [{ opcode: OP.BINARY, payload: 'hello', rsv: 0b001 }], 1002],
  ['opcode 3 (reserved)', [{ opcode: 3, payload: 'x' }], 1002],
  ['opcode 11 (reserved control)', [{ opcode: 11 }], 1002],
  ['a ping with a 126-byte payload', [{ opcode: OP.PING, payload: Buffer.alloc(126, 0x61) }], 1002],
  ['a fragmented control frame (ping with FIN=0)', [{ opcode: OP.PING, payload: 'x', fin: false }], 1002],
  ['a continuation with no message to continue', [{ opcode: OP.CONT, payload: 'x' }], 1002],
  ['a new text frame in the middle of a fragmented message', [{ opcode: OP.TEXT, payload: 'a', fin: false }, { opcode: OP.TEXT, payload: 'b' }], 1002],
  ['a close frame with code 1004', [{ opcode: OP.CLOSE, payload: closePayload(1004) }], 1002],
  ['a close frame with code 999', [{ opcode: OP.CLOSE, payload: closePayload(999) }], 1002],
  ['a close frame with code 1015 (never on the wire)', [{ opcode: OP.CLOSE, payload: closePayload(1015) }], 1002],
  ['a close frame with a 1-byte payload', [{ opcode: OP.CLOSE, payload: Buffer.from([3]) }], 1002],
  ['a text message that is not UTF-8', [{ opcode: OP.TEXT, payload: Buffer.from([0xce, 0xba, 0xff, 0xfe]) }], 1007],
  // RFC 6455 7.1.6 asks for 1007; Autobahn case 7.5.1 takes 1002 as well
  ['a close reason that is not UTF-8', [{ opcode: OP.CLOSE, payload: Buffer.concat([closePayload(1000), Buffer.from([0xff])]) }], [1007, 1002]],
]

for (const [what, frames, code] of bad) {
  test(`${what}: the server closes with ${Array.isArray(code) ? code.join(' or ') : code} and drops the connection`, async (t) => {
    const app = await badInputApp(t)
    await expectFailure(t, app, Buffer.concat(frames.map(frame)), code)
    t.deepEqual(app.messages.items, [], 'no message was delivered')
  })
}

test('invalid UTF-8 split across fragments: 1007 arrives before the last fragment is sent', async (t) => {
  const app = await badInputApp(t)
  const check = await bystander(t, app.port)
  const c = await useRaw(t, app.port, '/victim')
  // "κόσμε" is valid; f4 90 80 80 is above U+10FFFF: invalid as soon as it is seen
  await c.send({ fin: false, opcode: OP.TEXT, payload: Buffer.from('cebae1bdb9cf83cebcceb5', 'hex') })
  await c.send({ fin: false, opcode: OP.CONT, payload: Buffer.from('f4908080', 'hex') })
  const close = await c.closeFrame()
  t.is(close.code, 1007)
  // only now would the last fragment go out
  await c.waitForClose()
  await app.closes.count(1)
  t.is(app.closes.items[0].code, 1007)
  t.deepEqual(app.messages.items, [])
  await check()
})

test('a message over maxPayloadLength: a header announcing too much gets 1009 before any payload is sent', async (t) => {
  const app = await badInputApp(t, { maxPayloadLength: 1024 })
  await expectFailure(t, app, frame({ opcode: OP.BINARY, announce: 1025 }).subarray(0, 8), 1009)
})

test('a 64-bit length far over maxPayloadLength gets 1009 from the header alone', async (t) => {
  const app = await badInputApp(t, { maxPayloadLength: 16 * 2 ** 20 })
  await expectFailure(t, app, frame({ opcode: OP.TEXT, announce: 2 ** 40 }).subarray(0, 14), 1009)
})

test('fragments that add up to more than maxPayloadLength get 1009', async (t) => {
  const app = await badInputApp(t, { maxPayloadLength: 1024 })
  const check = await bystander(t, app.port)
  const c = await useRaw(t, app.port, '/victim')
  await c.send({ fin: false, opcode: OP.BINARY, payload: Buffer.alloc(600) })
  // the second fragment's header alone takes the message over the limit
  await c.write(frame({ fin: false, opcode: OP.CONT, announce: 600 }).subarray(0, 8))
  const close = await c.closeFrame()
  t.is(close.code, 1009)
  await c.waitForClose()
  await app.closes.count(1)
  t.is(app.closes.items[0].code, 1009)
  t.deepEqual(app.messages.items, [])
  await check()
})

/** permessage-deflate payload of `data`: raw deflate, sync-flushed, without the final 00 00 ff ff. */
function deflated(data: Buffer): Buffer {
  const z = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
  if (!z.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff]))) throw new Error('unexpected deflate tail')
  return z.subarray(0, -4)
}

test('perMessageDeflate: compressed messages are inflated; one that inflates past maxPayloadLength gets 1009', async (t) => {
  const app = await badInputApp(t, { maxPayloadLength: 64 * 1024, perMessageDeflate: true })
  const check = await bystander(t, app.port)
  const c = await useRaw(t, app.port, '/victim', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' })
  t.regex(c.response!.headers['sec-websocket-extensions'] ?? '', /^permessage-deflate\b/, 'the extension was accepted')
  // a compressed message within the limit arrives inflated
  const ok = Buffer.from('hello '.repeat(1000))
  const okFrame = deflated(ok)
  await c.send({ opcode: OP.TEXT, rsv: 0b100, payload: okFrame })
  await app.messages.count(1)
  t.is(app.messages.items[0], ok.toString())
  // 1 MiB of zeros is about 1 KiB compressed
  const bomb = deflated(Buffer.alloc(2 ** 20))
  t.true(bomb.length < 64 * 1024)
  await c.send({ opcode: OP.BINARY, rsv: 0b100, payload: bomb })
  const close = await c.closeFrame()
  t.is(close.code, 1009)
  await c.waitForClose()
  await app.closes.count(1)
  t.is(app.closes.items[0].code, 1009)
  t.is(app.messages.length, 1, 'the bomb was not delivered')
  await check()
})

test('without perMessageDeflate the extension is not negotiated and a compressed frame is 1002', async (t) => {
  const app = await badInputApp(t)
  const headers = { 'Sec-WebSocket-Extensions': 'permessage-deflate' }
  const probe = await RawWs.open(app.port, '/victim', headers)
  t.false('sec-websocket-extensions' in probe.response!.headers, probe.response!.head)
  probe.destroy()
  await app.closes.count(1)
  app.closes.items.length = 0
  await expectFailure(t, app, frame({ opcode: OP.TEXT, rsv: 0b100, payload: deflated(Buffer.from('hi')) }), 1002, headers)
})

// ---------------------------------------------------------------------------
// Closing handshakes from the client
// ---------------------------------------------------------------------------

test('a close 1000 "bye" is echoed with 1000 and the close callback gets (1000, "bye")', async (t) => {
  const app = await badInputApp(t)
  const c = await useRaw(t, app.port, '/victim')
  await c.send({ opcode: OP.CLOSE, payload: closePayload(1000, 'bye') })
  const close = await c.closeFrame()
  t.is(close.code, 1000)
  await c.waitForClose()
  await app.closes.count(1)
  t.deepEqual(app.closes.items, [{ code: 1000, reason: 'bye' }])
})

test('a close with an empty payload: the close callback gets 1005 and the server closes too', async (t) => {
  const app = await badInputApp(t)
  const c = await useRaw(t, app.port, '/victim')
  await c.send({ opcode: OP.CLOSE })
  const close = await c.closeFrame()
  t.true(close.code === 1005 || close.code === 1000, `the server answers with an empty close or 1000, got ${close.code}`)
  await c.waitForClose()
  await app.closes.count(1)
  t.deepEqual(app.closes.items, [{ code: 1005, reason: '' }])
})

test('frames after a close frame are ignored', async (t) => {
  const app = await badInputApp(t)
  const c = await useRaw(t, app.port, '/victim')
  await c.write(Buffer.concat([frame({ opcode: OP.CLOSE, payload: closePayload(4001, 'x') }), frame({ opcode: OP.TEXT, payload: 'ghost' })]))
  t.is((await c.closeFrame()).code, 4001)
  await c.waitForClose()
  await app.closes.count(1)
  t.deepEqual(app.closes.items, [{ code: 4001, reason: 'x' }])
  t.deepEqual(app.messages.items, [])
})

test('a client that drops the TCP connection: the close callback gets 1006', async (t) => {
  const app = await badInputApp(t)
  const c = await useRaw(t, app.port, '/victim')
  await c.send({ opcode: OP.TEXT, payload: 'last words' })
  await app.messages.count(1)
  c.destroy()
  await app.closes.count(1)
  t.is(app.closes.items[0].code, 1006)
})
