// Streaming with backpressure both ways, Node stream interop and Server-Sent Events, over
// real sockets: a client that reads nothing, a slow client, a slow handler, a handler that
// never reads, and EventSource (the `eventsource` package) with reconnects and heartbeats.

import test from 'ava'
import { createHash } from 'node:crypto'
import { createReadStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { EventSource } from 'eventsource'
import { PATIENCE_MS, RawClient, deferred, rawReq, sha256, useApp, waitUntil, withTimeout } from './helpers.ts'

const MiB = 2 ** 20

/** A client that sends one request and reads the answer only when told to. */
function heldClient(port: number, request: string | Buffer) {
  const socket = net.connect(port, '127.0.0.1')
  socket.pause()
  let received = 0
  let head: string | null = null
  let buffered = Buffer.alloc(0)
  const ended = deferred()
  socket.on('data', (d: Buffer) => {
    received += d.length
    if (head === null) {
      buffered = Buffer.concat([buffered, d])
      const at = buffered.indexOf('\r\n\r\n')
      if (at >= 0) head = buffered.subarray(0, at).toString('latin1')
    }
  })
  socket.on('end', () => ended.resolve())
  socket.on('error', (e) => ended.reject(e))
  socket.write(request)
  return {
    socket,
    get received() {
      return received
    },
    get head() {
      return head
    },
    ended: ended.promise,
  }
}

// Serial: it measures the process's RSS, which the other tests of this file (tens of MiB of
// bodies each) would move if they ran beside it.
test.serial('write() turns false for a client that reads nothing, memory stays bounded, drain fires when it reads', async (t) => {
  const total = 100 * MiB
  const chunk = Buffer.alloc(MiB, 97)
  let written = 0
  let falses = 0
  let drains = 0
  let gapAtFirstFalse = -1
  const blocked = deferred()
  const { app, port } = await useApp(t, (app) => {
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
  })
  const rssBefore = app.metrics().process.rssBytes
  const client = heldClient(port, rawReq('GET', '/flood'))
  await withTimeout(blocked.promise, PATIENCE_MS, 'write() to return false')
  gapAtFirstFalse = written - client.received
  // The handler waits: it has not written the 100 MiB the client has not read.
  t.true(written < 16 * MiB, `written ${written} before the first false`)
  // Bound: the kernel's socket buffers, the engine's high-water mark, one chunk.
  const rssHeld = app.metrics().process.rssBytes
  t.true(rssHeld - rssBefore < 48 * MiB, `RSS grew ${((rssHeld - rssBefore) / MiB).toFixed(1)} MiB while the client read nothing`)
  client.socket.resume()
  await withTimeout(client.ended.then(() => undefined).catch(() => undefined), 60_000, 'the whole answer')
  await waitUntil(() => written >= total, PATIENCE_MS, 'the handler to finish')
  t.true(falses >= 1 && drains >= 1, `falses ${falses}, drains ${drains}`)
  t.true(client.received > total, `received ${client.received}`)
  t.true(gapAtFirstFalse >= 0)
})

test('a fast client takes 40 MiB of chunks written with backpressure, odd sizes and a large last one, byte-exact, twice on one connection', async (t) => {
  // Big chunks are offered to the socket straight from the handler's memory when nothing
  // is queued: all of it taken, part of it, or none; drain must fire either way.
  const sizes = [64 * 1024, 16 * 1024, 100 * 1024 + 1, 7, 300 * 1024 - 3]
  const pieces = sizes.map((n, k) => {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = (i * 31 + k * 7) & 0xff
    return b
  })
  const expected = createHash('sha256')
  let total = 0
  const plan: Buffer[] = []
  for (let i = 0; total < 40 * MiB; i++) {
    plan.push(pieces[i % pieces.length])
    total += pieces[i % pieces.length].length
  }
  const last = pieces[4]
  for (const p of plan) expected.update(p)
  expected.update(last)
  const digest = expected.digest('hex')
  let waits = 0
  const { port } = await useApp(t, (app) => {
    app.get('/download', async (req, res) => {
      res.header('content-type', 'application/octet-stream')
      for (const p of plan) {
        if (!res.write(p)) {
          waits++
          await res.drained()
        }
      }
      res.end(last)
    })
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const sockets = new Set<unknown>()
  for (let round = 0; round < 2; round++) {
    const got = await withTimeout(
      new Promise<{ hash: string; length: number }>((resolve, reject) => {
        http
          .get({ port, host: '127.0.0.1', path: '/download', agent }, (res) => {
            sockets.add(res.socket)
            const hash = createHash('sha256')
            let length = 0
            res.on('data', (d: Buffer) => {
              hash.update(d)
              length += d.length
            })
            res.on('end', () => resolve({ hash: hash.digest('hex'), length }))
            res.on('error', reject)
          })
          .on('error', reject)
      }),
      60_000,
      `download ${round + 1}`,
    )
    t.is(got.length, total + last.length)
    t.is(got.hash, digest)
  }
  t.is(sockets.size, 1, 'both downloads on one keep-alive connection')
  t.true(waits > 0, 'the handler met backpressure at least once')
  agent.destroy()
})

test('pipeline of a 50 MiB file into res to a slow client arrives byte-exact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'harrier-stream-'))
  const file = join(dir, 'big.bin')
  const data = Buffer.alloc(50 * MiB)
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i)
  writeFileSync(file, data)
  const done = deferred<Error | null>()
  const { port } = await useApp(t, (app) => {
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
  const raw = await RawClient.connect(port)
  // Slow: the socket is read in pauses.
  const hash = createHash('sha256')
  let inBody = false
  let head = Buffer.alloc(0)
  let body = 0
  const finished = deferred()
  let pending = Buffer.alloc(0)
  raw.socket.removeAllListeners('data')
  raw.socket.on('data', (d: Buffer) => {
    raw.socket.pause()
    setTimeout(() => raw.socket.resume(), 1)
    if (!inBody) {
      head = Buffer.concat([head, d])
      const at = head.indexOf('\r\n\r\n')
      if (at < 0) return
      inBody = true
      d = head.subarray(at + 4)
    }
    // Chunked framing: size line, data, CRLF.
    pending = Buffer.concat([pending, d])
    for (;;) {
      const eol = pending.indexOf('\r\n')
      if (eol < 0) return
      const size = parseInt(pending.subarray(0, eol).toString(), 16)
      if (pending.length < eol + 2 + size + 2) return
      if (size === 0) return finished.resolve()
      hash.update(pending.subarray(eol + 2, eol + 2 + size))
      body += size
      pending = pending.subarray(eol + 2 + size + 2)
    }
  })
  await raw.write(rawReq('GET', '/download'))
  await withTimeout(finished.promise, 120_000, 'the download')
  t.is(await done.promise, null)
  t.is(body, data.length)
  t.is(hash.digest('hex'), sha256(data))
  raw.destroy()
})

/**
 * The most of an upload the kernel alone may hold between a client and a server that stops
 * reading: the server's receive window (what autotuning may grow it to, tcp_rmem's maximum,
 * less the share tcp_adv_win_scale keeps for overhead) and the client's send buffer. Read
 * from /proc where it exists (Linux); 16 MiB and 4 MiB, Linux's defaults, elsewhere.
 */
function kernelHoldsAtMost(): number {
  const last = (file: string, fallback: number) => {
    try {
      return Number(readFileSync(file, 'utf8').trim().split(/\s+/).pop())
    } catch {
      return fallback
    }
  }
  const rmem = last('/proc/sys/net/ipv4/tcp_rmem', 6 * MiB)
  const wmem = last('/proc/sys/net/ipv4/tcp_wmem', 4 * MiB)
  const scale = last('/proc/sys/net/ipv4/tcp_adv_win_scale', 1)
  const window = scale > 0 ? rmem - rmem / 2 ** scale : rmem / 2 ** -scale
  return window + wmem
}

test('a slow handler holds a large upload back: the client is throttled and the server holds little of it', async (t) => {
  // What the client may get ahead of the handler: what the kernel holds, plus the engine's
  // share (the high-water mark, a read, a batch) and slack. The upload is 20 MiB more than
  // that: without flow control the engine reads it all at loopback speed and the client
  // gets nearly all of it ahead.
  const bound = kernelHoldsAtMost() + 2 * MiB
  const total = Math.ceil((bound + 20 * MiB) / MiB) * MiB
  let consumed = 0
  const answered = deferred<string>()
  const { app, port } = await useApp(t, (app) => {
    app.post('/upload', async (req, res) => {
      const hash = createHash('sha256')
      for await (const chunk of req) {
        hash.update(chunk)
        consumed += chunk.length
        // 64 KiB per 5 ms: about 12 MiB/s, slower than loopback by far.
        if (consumed % (64 * 1024) < chunk.length) await new Promise((r) => setTimeout(r, 5))
      }
      res.text(hash.digest('hex'))
      answered.resolve('done')
    })
  }, { maxBodySize: 64 * MiB })
  const body = Buffer.alloc(total)
  for (let i = 0; i < body.length; i += 1024) body.writeUInt32LE(i, i)
  const socket = net.connect(port, '127.0.0.1')
  let sent = 0
  let maxAhead = 0
  let answer = ''
  socket.on('data', (d) => (answer += d))
  await new Promise<void>((resolve) => socket.on('connect', resolve))
  socket.write(rawReq('POST', '/upload', { 'content-length': String(total) }))
  // Written in 256 KiB pieces, each when the socket takes it: how far the client gets ahead
  // of the handler is what the server (and the kernel) hold.
  for (let at = 0; at < total; at += 256 * 1024) {
    const piece = body.subarray(at, at + 256 * 1024)
    sent += piece.length
    if (!socket.write(piece)) await new Promise((r) => socket.once('drain', r))
    maxAhead = Math.max(maxAhead, sent - consumed)
  }
  await withTimeout(answered.promise, 120_000, 'the handler to finish')
  await waitUntil(() => answer.includes(sha256(body)), PATIENCE_MS, 'the answer')
  t.true(maxAhead < bound, `the client got ${(maxAhead / MiB).toFixed(1)} MiB ahead of the handler (bound ${(bound / MiB).toFixed(1)} MiB of ${total / MiB})`)
  t.true(app.metrics().bytes.in >= total)
  socket.destroy()
})

test('a handler that never reads a 512 KiB body holds at most the high-water mark of it', async (t) => {
  const reached = deferred()
  const answer = deferred()
  const { app, port } = await useApp(t, (app) => {
    app.post('/ignore', async (req, res) => {
      reached.resolve()
      await answer.promise
      res.text('ignored')
    })
  }, { maxBodySize: MiB, highWaterMark: 64 * 1024 })
  const body = Buffer.alloc(512 * 1024, 120)
  const raw = await RawClient.connect(port)
  const start = app.metrics().bytes.in
  await raw.write(Buffer.concat([rawReq('POST', '/ignore', { 'content-length': String(body.length) }), body]))
  await withTimeout(reached.promise, PATIENCE_MS, 'the handler')
  // The engine read what the mark allows (and one read past it), then stopped: the rest
  // waits in the kernel's buffers, not in the server.
  await waitUntil(() => app.metrics().bytes.in - start >= 64 * 1024, PATIENCE_MS, 'the first reads')
  const read = app.metrics().bytes.in - start
  t.true(read <= 64 * 1024 + 64 * 1024 + 4096, `read ${read} bytes of a body nobody reads`)
  answer.resolve()
  const res = await raw.readResponse()
  t.is(res.status, 200)
  t.is(res.body.toString(), 'ignored')
  // The rest of the body is read and dropped; the connection goes on.
  await raw.write(rawReq('POST', '/ignore', { 'content-length': '2' }, 'ok'))
  t.is((await raw.readResponse()).status, 200)
  raw.destroy()
})

test('res is a Node Writable: Readable.pipe, finish and close, destroy cuts the body short', async (t) => {
  const events: string[] = []
  const { base, port } = await useApp(t, (app) => {
    app.get('/pipe', (req, res) => {
      res.on('finish', () => events.push('finish')).on('close', () => events.push('close'))
      t.true(res.writable)
      Readable.from(['a', 'b', 'c']).pipe(res)
    })
    app.get('/destroy', (req, res) => {
      res.write('partial')
      res.destroy()
    })
  })
  const r = await fetch(`${base}/pipe`)
  t.is(await r.text(), 'abc')
  await waitUntil(() => events.length === 2, PATIENCE_MS, 'finish and close')
  t.deepEqual(events, ['finish', 'close'])
  const raw = await RawClient.connect(port)
  await raw.write(rawReq('GET', '/destroy'))
  await raw.waitForClose()
  t.regex(raw.receivedText, /partial/)
  t.notRegex(raw.receivedText, /\r\n0\r\n\r\n$/, 'no last chunk: the client sees the body cut short')
})

test('Server-Sent Events with EventSource: multi-line data, resume with Last-Event-ID, heartbeats, closed on disconnect', async (t) => {
  const lastIds: Array<string | undefined> = []
  const closedSeen = deferred()
  const { base, port } = await useApp(t, (app) => {
    app.get('/events', (req, res) => {
      lastIds.push(req.lastEventId)
      const events = res.eventStream({ retry: 100 })
      let id = Number(req.lastEventId ?? 0)
      events.send({ id: String(++id), event: 'tick', data: `line one\nline two ${id}` })
      events.send({ id: String(++id), event: 'tick', data: `second ${id}` })
      // The first connection ends after two events: the client reconnects with its last id.
      if (lastIds.length === 1) events.close()
    })
    app.get('/quiet', (req, res) => {
      const events = res.eventStream({ heartbeat: 200 })
      events.comment('hello')
      events.closed.then(() => closedSeen.resolve())
    })
    app.get('/bad', (req, res) => {
      const events = res.eventStream()
      t.throws(() => events.send({ id: 'a\nb', data: 'x' }), { instanceOf: TypeError })
      t.throws(() => events.send({ event: 'a\rb', data: 'x' }), { instanceOf: TypeError })
      events.close()
    })
  })
  const source = new EventSource(`${base}/events`)
  const got: Array<{ data: string; id: string }> = []
  const four = deferred()
  source.addEventListener('tick', (e: MessageEvent) => {
    got.push({ data: e.data, id: e.lastEventId })
    if (got.length === 4) four.resolve()
  })
  await withTimeout(four.promise, PATIENCE_MS, 'four events over two connections')
  source.close()
  t.deepEqual(got.slice(0, 2), [
    { data: 'line one\nline two 1', id: '1' },
    { data: 'second 2', id: '2' },
  ])
  t.deepEqual(got.slice(2, 4), [
    { data: 'line one\nline two 3', id: '3' },
    { data: 'second 4', id: '4' },
  ])
  t.is(lastIds[0], undefined)
  t.is(lastIds[1], '2')

  // A quiet stream gets comment lines from the engine; the handler wrote one.
  const raw = await RawClient.connect(port)
  await raw.write(rawReq('GET', '/quiet'))
  await raw.waitFor(() => (raw.receivedText.match(/:\n\n/g) ?? []).length >= 3, PATIENCE_MS, 'heartbeats')
  t.regex(raw.receivedText, /content-type: text\/event-stream/)
  t.regex(raw.receivedText, /cache-control: no-cache/)
  t.regex(raw.receivedText, /x-accel-buffering: no/)
  t.regex(raw.receivedText, /: hello\n\n/)
  raw.destroy()
  await withTimeout(closedSeen.promise, PATIENCE_MS, 'closed to resolve on disconnect')

  const bad = await fetch(`${base}/bad`)
  t.is(bad.status, 200)
  await bad.text()
})

test('close() ends open event streams rather than waiting out the drain timeout', async (t) => {
  const opened = deferred()
  const closed = deferred()
  const { app, port } = await useApp(t, (app) => {
    app.get('/events', (req, res) => {
      const events = res.eventStream()
      events.send('hi')
      events.closed.then(() => closed.resolve())
      opened.resolve()
    })
  }, { drainTimeout: 60_000 })
  const raw = await RawClient.connect(port)
  await raw.write(rawReq('GET', '/events'))
  await withTimeout(opened.promise, PATIENCE_MS, 'the stream')
  await raw.waitForText('data: hi')
  await withTimeout(app.close(), PATIENCE_MS, 'close() with an event stream open')
  await withTimeout(closed.promise, PATIENCE_MS, 'the stream to be closed')
  await raw.waitForClose()
  t.pass()
})
