// HTTP/2 protection, with frames written by hand: the stream limit, rapid reset
// (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316), SETTINGS and PING floods. After
// each, the server serves a well-behaved client as before.
import test from 'ava'
import { PATIENCE_MS, deferred, fetchT, sleep, useApp, withTimeout } from './helpers.ts'
import {
  ACK, CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, HEADERS, PING, REFUSED_STREAM, RST_STREAM, RawH2, SETTINGS, WINDOW_UPDATE, errorCode, frame, h2get, h2session, headerBlock, rst,
} from './h2-helpers.ts'

const get = (stream: number, path: string) => frame(HEADERS, END_STREAM | END_HEADERS, stream, headerBlock('GET', path))

/** The server still answers a new, well-behaved HTTP/2 client and an HTTP/1.1 one. */
async function stillServes(t: Parameters<Parameters<typeof test>[1]>[0], base: string): Promise<void> {
  const session = await h2session(t, base)
  t.is((await h2get(session, '/ok')).status, 200)
  t.is((await fetchT(`${base}/ok`)).status, 200)
}

test('streams past maxConcurrentStreams are refused with REFUSED_STREAM; the open ones are answered', async (t) => {
  const release = deferred()
  const { port, base } = await useApp(
    t,
    (app) => {
      app.get('/slow', async (req, res) => {
        await release.promise
        res.text('slow')
      })
      app.get('/ok', (req, res) => res.text('ok'))
    },
    { http2: { maxConcurrentStreams: 2 } },
  )
  const c = await RawH2.connect(t, port)
  const settings = c.frames.find((f) => f.type === SETTINGS)!
  const values = new Map<number, number>()
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2))
  t.is(values.get(3), 2, 'SETTINGS_MAX_CONCURRENT_STREAMS is announced')
  await c.waitFor((f) => f.type === SETTINGS && (f.flags & ACK) !== 0, 'the SETTINGS ack')
  c.write(get(1, '/slow'), get(3, '/slow'), get(5, '/slow'))
  const refused = await c.waitFor((f) => f.type === RST_STREAM && f.stream === 5, 'stream 5 reset')
  t.is(errorCode(refused), REFUSED_STREAM)
  release.resolve()
  await c.waitFor((f) => f.type === HEADERS && f.stream === 1, 'the answer on stream 1')
  await c.waitFor((f) => f.type === HEADERS && f.stream === 3, 'the answer on stream 3')
  await stillServes(t, base)
})

/** An app whose `/slow` handler never answers (it counts its calls), beside `/ok`. */
async function useNeverAnswering(t: Parameters<Parameters<typeof test>[1]>[0]) {
  let calls = 0
  const served = await useApp(t, (app) => {
    app.get('/slow', () => {
      calls++
    })
    app.get('/ok', (req, res) => res.text('ok'))
  })
  return { ...served, calls: () => calls }
}

test('rapid reset: streams opened and reset in bulk get GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const { port, base, calls } = await useNeverAnswering(t)
  const c = await RawH2.connect(t, port)
  const frames = []
  for (let i = 0; i < 1000; i++) frames.push(get(2 * i + 1, '/slow'), rst(2 * i + 1, CANCEL))
  c.write(...frames)
  t.is(await c.goaway(), ENHANCE_YOUR_CALM)
  await c.waitClosed()
  t.true(calls() < 1000, `the handler saw ${calls()} of the 1000 streams`)
  await stillServes(t, base)
})

test('rapid reset: a client that resets the streams its handler holds faster than they finish gets GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  t.timeout(60_000)
  const { port, base, calls } = await useNeverAnswering(t)
  const c = await RawH2.connect(t, port)
  let code: number | null = null
  c.goaway(60_000).then((got) => (code = got), () => {})
  for (let i = 0; i < 400 && code === null && !c.closed; i++) {
    const id = 2 * i + 1
    const before = calls()
    c.write(get(id, '/slow'))
    // The handler has the stream before the client takes it back.
    await withTimeout((async () => {
      while (calls() === before && code === null && !c.closed) await sleep(1)
    })(), 10_000, `the handler to see stream ${id}`)
    c.write(rst(id, CANCEL))
  }
  t.is(await c.goaway(), ENHANCE_YOUR_CALM)
  t.true(calls() > 20 && calls() < 400, `the handler saw ${calls()} streams before the GOAWAY`)
  t.log(`GOAWAY after ${calls()} streams taken back`)
  await stillServes(t, base)
})

test('a CONTINUATION flood is cut off: the header block is bounded while it arrives', async (t) => {
  t.timeout(60_000)
  const { port, base } = await useApp(t, (app) => app.get('/ok', (req, res) => res.text('ok')))
  const c = await RawH2.connect(t, port)
  // HEADERS without END_HEADERS, then CONTINUATION frames of header fields without end.
  c.write(frame(HEADERS, 0, 1, headerBlock('GET', '/ok')))
  const field = Buffer.concat([Buffer.from([0, 4]), Buffer.from('x-aa'), Buffer.from([100]), Buffer.alloc(100, 0x61)])
  const piece = frame(CONTINUATION, 0, 1, Buffer.concat(Array.from({ length: 100 }, () => field)))
  let sent = 0
  while (!c.closed && sent < 64 * 2 ** 20) {
    if (!c.write(piece)) await new Promise((resolve) => setTimeout(resolve, 5))
    sent += piece.length
    if (sent % (1 << 20) < piece.length) await sleep(1)
  }
  await c.waitClosed()
  t.true(sent < 64 * 2 ** 20, `the server took ${sent} bytes of one header block before closing`)
  t.log(`closed after ${(sent / 1024).toFixed(0)} KiB of CONTINUATION; GOAWAY code ${c.frames.find((f) => f.type === 7)?.payload.readUInt32BE(4)}`)
  const goaway = c.frames.find((f) => f.type === 7)
  t.truthy(goaway, 'a GOAWAY said why')
  await stillServes(t, base)
})

for (const [name, make] of [
  ['SETTINGS', () => frame(SETTINGS, 0, 0, Buffer.from([0, 4, 0, 1, 0, 0]))],
  ['PING', () => frame(PING, 0, 0, Buffer.alloc(8, 7))],
] as const) {
  test(`a ${name} flood from a client that reads nothing does not grow the server's memory`, async (t) => {
    t.timeout(60_000)
    const { port, base } = await useApp(t, (app) => app.get('/ok', (req, res) => res.text('ok')), { writeTimeout: 2000 })
    const c = await RawH2.connect(t, port)
    c.socket.pause() // nothing the server writes is read
    const one = make()
    const batch = Buffer.concat(Array.from({ length: 4096 }, () => one))
    const rss = process.memoryUsage().rss
    let sent = 0
    const started = Date.now()
    // Write while the kernel takes it; a server that stopped reading makes the writes wait.
    while (!c.closed && Date.now() - started < 5000 && sent < 512 * 2 ** 20) {
      if (!c.socket.write(batch)) {
        let onDrain = () => {}
        await Promise.race([new Promise<void>((resolve) => c.socket.once('drain', (onDrain = resolve))), sleep(200)])
        c.socket.off('drain', onDrain)
      }
      sent += batch.length
    }
    t.log(`${(sent / 2 ** 20).toFixed(1)} MiB written in ${Date.now() - started} ms; closed by the server: ${c.closed}`)
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20
    t.true(sent < 512 * 2 ** 20, `the server read all ${sent} bytes`)
    t.true(grown < 200, `the process grew by ${grown.toFixed(0)} MiB`)
    // It is closed for taking none of its answers (writeTimeout).
    c.socket.resume()
    await stillServes(t, base)
  })
}

test('a request body opens the client window only as the handler reads it: one that does not read holds the client back', async (t) => {
  const seen = deferred()
  const go = deferred()
  const { port, base } = await useApp(
    t,
    (app) => {
      app.post('/hold', async (req, res) => {
        seen.resolve()
        await go.promise
        let n = 0
        for await (const chunk of req) n += chunk.length
        res.text(String(n))
      })
      app.get('/ok', (req, res) => res.text('ok'))
    },
    // The body timeout is shorter than the handler's wait: the client is held back by the
    // window then, which is no stall of the client's.
    { bodyTimeout: 250, http2: { initialWindowSize: 65_535 } },
  )
  const c = await RawH2.connect(t, port)
  c.write(frame(HEADERS, END_HEADERS, 1, headerBlock('POST', '/hold')))
  // The whole stream window: 65,535 bytes in frames of 16 KiB.
  for (let sent = 0; sent < 65_535; sent += 16_384) c.write(frame(DATA, 0, 1, Buffer.alloc(Math.min(16_384, 65_535 - sent), 0x61)))
  await withTimeout(seen.promise, 10_000, 'the handler to get the request')
  await sleep(700)
  const opened = () => c.frames.filter((f) => f.type === WINDOW_UPDATE && f.stream === 1)
  t.is(opened().length, 0, 'no WINDOW_UPDATE for the stream while its handler does not read')
  go.resolve()
  await c.waitFor((f) => f.type === WINDOW_UPDATE && f.stream === 1, 'a WINDOW_UPDATE once the handler reads')
  const increment = opened().reduce((sum, f) => sum + f.payload.readUInt32BE(0), 0)
  t.true(increment >= 32_768, `the window opened by ${increment}`)
  c.write(frame(DATA, END_STREAM, 1, Buffer.alloc(10, 0x62)))
  const answer = await c.waitFor((f) => f.type === DATA && f.stream === 1, 'the answer')
  t.is(answer.payload.toString(), '65545')
  await stillServes(t, base)
})

test('a request body that stops for bodyTimeout: 408 on its stream, the handler sees the abort, the other streams go on', async (t) => {
  const aborted = deferred<string>()
  const { base } = await useApp(
    t,
    (app) => {
      app.post('/upload', async (req, res) => {
        req.signal.addEventListener('abort', () => aborted.resolve('signal'))
        try {
          for await (const chunk of req) void chunk
          res.text('whole')
        } catch {
          // The body read fails with the abort; the engine has answered.
        }
      })
      app.get('/ok', (req, res) => res.text('ok'))
    },
    { bodyTimeout: 300 },
  )
  const session = await h2session(t, base)
  const upload = session.request({ ':method': 'POST', ':path': '/upload' }, { endStream: false })
  upload.on('error', () => {})
  const status = new Promise<number>((resolve) => upload.on('response', (h) => resolve(Number(h[':status']))))
  upload.write(Buffer.alloc(1000, 0x61))
  // The stall: nothing more is sent on this stream.
  t.is(await withTimeout(status, PATIENCE_MS, 'the 408'), 408)
  t.is(await withTimeout(aborted.promise, PATIENCE_MS, 'the handler to hear of the abort'), 'signal')
  t.is((await h2get(session, '/ok')).status, 200, 'the same connection serves on')
  await stillServes(t, base)
})
