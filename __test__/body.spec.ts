// Request bodies: Content-Length, chunked, streaming, text/json helpers, Expect: 100-continue.
import { randomBytes, createHash } from 'node:crypto'
import test from 'ava'
import type { App } from 'harrier'
import { RawClient, chunkedBody, fetchT, rawReq, sha256, sleep, useApp } from './helpers.ts'

function echoRoutes(app: App) {
  app.post('/echo', async (req, res) =>
    res.header('content-type', req.header('content-type') ?? 'application/octet-stream').send(Buffer.from(await req.arrayBuffer())),
  )
}

/** A ReadableStream over `data` in `chunkSize` pieces (forces a chunked request from fetch). */
function streamOf(data: Buffer, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= data.length) {
        controller.close()
        return
      }
      const end = Math.min(data.length, offset + chunkSize)
      controller.enqueue(new Uint8Array(data.subarray(offset, end)))
      offset = end
    },
  })
}

test('POST echoes a small body and its content-type', async (t) => {
  const { base } = await useApp(t, echoRoutes)
  const r = await fetchT(`${base}/echo`, { method: 'POST', headers: { 'content-type': 'text/x-greeting' }, body: 'hello body' })
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'text/x-greeting')
  t.is(r.headers.get('content-length'), '10')
  t.is(await r.text(), 'hello body')
})

test('POST echoes a 1 MiB binary Content-Length body intact', async (t) => {
  const { base } = await useApp(t, echoRoutes)
  const data = randomBytes(1024 * 1024)
  const r = await fetchT(`${base}/echo`, { method: 'POST', body: data })
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'application/octet-stream')
  const back = Buffer.from(await r.arrayBuffer())
  t.is(back.length, data.length)
  t.is(sha256(back), sha256(data))
})

test('10 MiB chunked upload is echoed back intact', async (t) => {
  // past the default maxBodySize of 1 MiB
  const { base } = await useApp(t, echoRoutes, { maxBodySize: 16 * 1024 * 1024 })
  const data = randomBytes(10 * 1024 * 1024)
  const r = await fetchT(
    `${base}/echo`,
    { method: 'POST', headers: { 'content-type': 'application/x-big' }, body: streamOf(data), duplex: 'half' },
    4500,
  )
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'application/x-big')
  const back = Buffer.from(await r.arrayBuffer())
  t.is(back.length, data.length)
  t.is(sha256(back), sha256(data))
})

test('chunked request body over a raw socket (with chunk extension and trailer)', async (t) => {
  const { port } = await useApp(t, echoRoutes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  const body = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n')
  await client.write(Buffer.concat([rawReq('POST', '/echo', { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' }), body]))
  const r = await client.readResponse()
  t.is(r.status, 200)
  t.is(r.body.toString(), 'hello world')

  // the connection is still usable afterwards: the body framing was consumed exactly
  await client.write(rawReq('POST', '/echo', { 'Content-Type': 'text/plain', 'Content-Length': '3' }, 'abc'))
  const r2 = await client.readResponse()
  t.is(r2.status, 200)
  t.is(r2.body.toString(), 'abc')
})

test('request body streamed with for await, arriving in delayed pieces', async (t) => {
  let seen: { bytes: number; chunks: number; allBinary: boolean; hash: string } | undefined
  const { base, port } = await useApp(t, (app) => {
    app.post('/count', async (req, res) => {
      let bytes = 0
      let chunks = 0
      let allBinary = true
      const hash = createHash('sha256')
      for await (const chunk of req) {
        if (!(chunk instanceof Uint8Array)) allBinary = false
        bytes += chunk.byteLength
        chunks++
        hash.update(chunk)
      }
      seen = { bytes, chunks, allBinary, hash: hash.digest('hex') }
      res.json({ bytes, hash: seen.hash })
    })
  }, { maxBodySize: 16 * 1024 * 1024 }) // past the default of 1 MiB

  // 3 MiB through fetch (chunked)
  const data = randomBytes(3 * 1024 * 1024)
  const r = await fetchT(`${base}/count`, { method: 'POST', body: streamOf(data, 100_000), duplex: 'half' })
  t.is(r.status, 200)
  t.deepEqual(await r.json(), { bytes: data.length, hash: sha256(data) })
  t.true(seen!.allBinary, 'chunks are Buffers/Uint8Arrays')
  t.true(seen!.chunks >= 1)

  // a Content-Length body written in three pieces with pauses in between
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  const pieces = [Buffer.alloc(1000, 'a'), Buffer.alloc(2000, 'b'), Buffer.alloc(3000, 'c')]
  await client.write(rawReq('POST', '/count', { 'Content-Length': '6000' }))
  for (const p of pieces) {
    await sleep(30)
    await client.write(p)
  }
  const r2 = await client.readResponse()
  t.is(r2.status, 200)
  t.deepEqual(JSON.parse(r2.body.toString()), { bytes: 6000, hash: sha256(Buffer.concat(pieces)) })
})

test('req.text() decodes UTF-8 and req.json() parses JSON', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/text', async (req, res) => {
      const text = await req.text()
      res.json({ text, length: text.length })
    })
    app.post('/json', async (req, res) => {
      const body = await req.json()
      res.json({ got: body, type: typeof body })
    })
  })
  const s = 'héllo wörld — ✓ 😀'
  const r = await fetchT(`${base}/text`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: s })
  t.is(r.status, 200)
  t.deepEqual(await r.json(), { text: s, length: s.length })

  const value = { a: 1, b: [true, null, 'x'], c: { d: 'é' } }
  const j = await fetchT(`${base}/json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) })
  t.is(j.status, 200)
  t.deepEqual(await j.json(), { got: value, type: 'object' })
})

test('req.text() with no body resolves to an empty string', async (t) => {
  const { base } = await useApp(t, (app) => {
    app.post('/text', async (req, res) => res.json({ text: await req.text() }))
    app.get('/text', async (req, res) => res.json({ text: await req.text() }))
  })
  const p = await fetchT(`${base}/text`, { method: 'POST' })
  t.is(p.status, 200)
  t.deepEqual(await p.json(), { text: '' })
  const g = await fetchT(`${base}/text`)
  t.is(g.status, 200)
  t.deepEqual(await g.json(), { text: '' })
})

test('req.text() reassembles UTF-8 characters split across chunks', async (t) => {
  const { port } = await useApp(t, (app) => {
    app.post('/text', async (req, res) => res.text(await req.text()))
  })
  const bytes = Buffer.from('€uro', 'utf8') // € is 3 bytes
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(rawReq('POST', '/text', { 'Transfer-Encoding': 'chunked' }))
  await client.write(Buffer.concat([Buffer.from('1\r\n'), bytes.subarray(0, 1), Buffer.from('\r\n')]))
  await sleep(20)
  await client.write(Buffer.concat([Buffer.from('2\r\n'), bytes.subarray(1, 3), Buffer.from('\r\n')]))
  await sleep(20)
  await client.write(chunkedBody([bytes.subarray(3)]))
  const r = await client.readResponse()
  t.is(r.status, 200)
  t.is(r.body.toString('utf8'), '€uro')
})

test('Expect: 100-continue gets 100 Continue before the body is sent', async (t) => {
  const { port } = await useApp(t, echoRoutes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(
    rawReq('POST', '/echo', { 'Content-Type': 'text/plain', 'Content-Length': '11', Expect: '100-continue' }),
  )
  await client.waitFor(() => client.receivedText.includes('\r\n\r\n'), 2000, 'the 100 Continue interim response')
  t.regex(client.receivedText, /^HTTP\/1\.1 100 Continue\r\n/)
  t.true(client.receivedText.endsWith('\r\n\r\n'))
  await sleep(50)
  t.false(/HTTP\/1\.1 [2-5]\d\d/.test(client.receivedText), 'no final response before the body was sent')

  await client.write('hello world')
  const r = await client.readResponse()
  t.is(r.status, 200)
  t.is(r.body.toString(), 'hello world')
  t.is(r.informational.length, 1)
  t.is(r.informational[0].status, 100)
})
