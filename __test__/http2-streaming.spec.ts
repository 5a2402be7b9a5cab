// Streaming over HTTP/2: res.write() backpressure and drain per stream, pipeline() of a file
// into res, res.destroy() resetting its stream only, event streams with engine heartbeats, and
// close() ending event streams.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import test from 'ava'
import { PATIENCE_MS, deferred, sleep, useApp, waitUntil, withTimeout } from './helpers.ts'
import { h2get, h2session } from './h2-helpers.ts'

const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

test('over HTTP/2, write() turns false for a stream whose client reads nothing, and drain fires when it reads', async (t) => {
  t.timeout(60_000)
  const total = 32 * MiB
  const chunk = Buffer.alloc(MiB, 97)
  let written = 0
  let falses = 0
  let drains = 0
  const blocked = deferred()
  const { base } = await useApp(t, (app) => {
    app.get('/flood', async (req, res) => {
      res.on('drain', () => drains++)
      while (written < total && !req.aborted) {
        written += chunk.length
        if (!res.write(chunk)) {
          falses++
          if (falses === 1) blocked.resolve()
          await res.drained()
        }
      }
      res.end()
    })
    app.get('/ok', (req, res) => res.text('ok'))
  })
  // The client's windows stay small: what it does not read holds the stream back.
  const session = await h2session(t, base, { settings: { initialWindowSize: 65_535 } })
  const req = session.request({ ':path': '/flood' })
  req.pause()
  await withTimeout(blocked.promise, PATIENCE_MS, 'write() to return false')
  await sleep(200)
  t.true(written < 8 * MiB, `written ${written} before the client read`)
  // Another stream on the same connection is answered meanwhile.
  t.is((await h2get(session, '/ok')).body.toString(), 'ok')
  let received = 0
  req.on('data', (d: Buffer) => (received += d.length))
  const ended = new Promise<void>((resolve, reject) => {
    req.on('end', () => resolve())
    req.on('error', reject)
  })
  req.resume()
  await withTimeout(ended, 60_000, 'the whole answer')
  t.is(received, total)
  t.true(falses >= 1 && drains >= 1, `falses ${falses}, drains ${drains}`)
})

test('pipeline() of a 20 MiB file into res over HTTP/2 arrives byte-exact', async (t) => {
  t.timeout(60_000)
  const dir = mkdtempSync(join(tmpdir(), 'harrier-h2-stream-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'big.bin')
  const data = randomBytes(20 * MiB)
  writeFileSync(file, data)
  const done = deferred<Error | null>()
  const { base } = await useApp(t, (app) => {
    app.get('/download', async (req, res) => {
      res.header('content-type', 'application/octet-stream')
      try {
        await pipeline(createReadStream(file), res)
        done.resolve(null)
      } catch (e) {
        done.resolve(e as Error)
      }
    })
  })
  const session = await h2session(t, base, { settings: { initialWindowSize: 128 * 1024 } })
  const r = await h2get(session, '/download')
  t.is(r.status, 200)
  t.is(sha(r.body), sha(data))
  t.is(await withTimeout(done.promise, PATIENCE_MS, 'the pipeline'), null)
})

test('res.destroy() over HTTP/2 resets that stream only', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.get('/destroy', async (req, res) => {
      res.write('partial')
      await sleep(20)
      res.destroy()
    })
    app.get('/ok', (req, res) => res.text('ok'))
  })
  const session = await h2session(t, base)
  const req = session.request({ ':path': '/destroy' })
  let body = ''
  await withTimeout(new Promise<void>((resolve) => {
    req.setEncoding('utf8').on('data', (d: string) => (body += d))
    req.on('error', () => {})
    req.on('close', () => resolve())
  }), PATIENCE_MS, 'the stream to close')
  // Cut short: the stream is reset (CANCEL) rather than ended with END_STREAM.
  t.is(req.rstCode, http2.constants.NGHTTP2_CANCEL)
  t.is(body, 'partial')
  t.is((await h2get(session, '/ok')).body.toString(), 'ok', 'the connection goes on')
})

test('an event stream over HTTP/2 gets engine heartbeats, and close() ends it', async (t) => {
  const opened = deferred()
  const closed = deferred()
  const { app, base } = await useApp(t, (app) => {
    app.get('/quiet', (req, res) => {
      const events = res.eventStream({ heartbeat: 150 })
      events.comment('hello')
      events.closed.then(() => closed.resolve())
      opened.resolve()
    })
  }, { drainTimeout: 60_000 })
  const session = await h2session(t, base)
  const req = session.request({ ':path': '/quiet' })
  let text = ''
  let headers: http2.IncomingHttpHeaders = {}
  req.on('response', (h) => (headers = h))
  req.setEncoding('utf8').on('data', (d: string) => (text += d))
  const ended = new Promise<void>((resolve) => req.on('close', () => resolve()))
  await withTimeout(opened.promise, PATIENCE_MS, 'the stream')
  await waitUntil(() => (text.match(/:\n\n/g) ?? []).length >= 3, PATIENCE_MS, 'heartbeats')
  t.regex(String(headers['content-type']), /^text\/event-stream/)
  t.regex(text, /: hello\n\n/)
  await withTimeout(app.close(), PATIENCE_MS, 'close() with an event stream open')
  await withTimeout(ended, PATIENCE_MS, 'the stream to end')
  await withTimeout(closed.promise, PATIENCE_MS, 'closed to resolve')
  t.pass()
})
