// Static files served by the engine (app.static, res.sendFile): headers, conditional
// requests, ranges, precompressed variants, path safety, large files with bounded memory,
// directories redirected to their trailing slash, changes on disk seen within a second.
// Fixtures are written to a temporary directory when the file loads.
import test from 'ava'
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, chmodSync, rmSync, statSync, unlinkSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { App } from 'harrier'
import { PATIENCE_MS, RawClient, fetchT, rawReq, rawRequest, sha256, sleep, useApp } from './helpers.ts'

const base = mkdtempSync(join(tmpdir(), 'harrier-static-'))
const root = join(base, 'public')
const outside = join(base, 'outside')
mkdirSync(join(root, 'sub'), { recursive: true })
mkdirSync(join(root, '.hidden'), { recursive: true })
mkdirSync(join(root, 'noindex'), { recursive: true })
mkdirSync(outside, { recursive: true })
writeFileSync(join(root, 'hello.txt'), 'Hello, static!')
writeFileSync(join(root, 'index.html'), '<h1>home</h1>')
writeFileSync(join(root, 'sub', 'index.html'), '<h1>sub</h1>')
writeFileSync(join(root, 'app.js'), 'console.log(1)')
writeFileSync(join(root, 'data.json'), '{"a":1}')
writeFileSync(join(root, 'style.css'), 'body{}')
writeFileSync(join(root, 'image.png'), randomBytes(100))
writeFileSync(join(root, 'noext'), 'x')
writeFileSync(join(root, '.env'), 'SECRET=1')
writeFileSync(join(root, '.hidden', 'x.txt'), 'hidden')
writeFileSync(join(root, 'digits.txt'), '0123456789abcdefghij')
writeFileSync(join(root, 'unreadable.txt'), 'no')
chmodSync(join(root, 'unreadable.txt'), 0o000)
writeFileSync(join(outside, 'secret.txt'), 'outside secret')
symlinkSync(join(outside, 'secret.txt'), join(root, 'escape.txt'))
symlinkSync(outside, join(root, 'escape-dir'))
symlinkSync(join(root, 'hello.txt'), join(root, 'inside-link.txt'))
// precompressed variants
writeFileSync(join(root, 'both.js'), 'plain both')
writeFileSync(join(root, 'both.js.br'), 'brotli both')
writeFileSync(join(root, 'both.js.gz'), 'gzip both')
writeFileSync(join(root, 'gzonly.css'), 'plain gz')
writeFileSync(join(root, 'gzonly.css.gz'), 'gzip gz')
// a large file, streamed
const big = randomBytes(10 * 1024 * 1024)
writeFileSync(join(root, 'big.bin'), big)
const bigHash = sha256(big)
const medium = randomBytes(200 * 1024)
writeFileSync(join(root, 'medium.bin'), medium)

test.after.always(() => rmSync(base, { recursive: true, force: true }))

function mounts(app: App) {
  app.static('/assets', root, { maxAge: 3600, immutable: true })
  app.static('/spa', root, { fallback: 'index.html', precompressed: false })
  app.static('/dots', root, { dotfiles: 'allow', index: '' })
  app.get('/js', (req, res) => res.text('from js'))
}

function raw(port: number, path: string, headers: Record<string, string> = {}, method = 'GET') {
  return rawRequest(port, rawReq(method, path, headers), { methods: [method] }).then((r) => r.responses[0])
}

test('a file: type, length, validators, cache-control, body', async (t) => {
  const { base: url } = await useApp(t, mounts)
  const r = await fetchT(`${url}/assets/hello.txt`)
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(r.headers.get('content-length'), '14')
  t.regex(r.headers.get('etag') ?? '', /^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/)
  t.is(r.headers.get('last-modified'), statSync(join(root, 'hello.txt')).mtime.toUTCString())
  t.is(r.headers.get('cache-control'), 'public, max-age=3600, immutable')
  t.is(r.headers.get('accept-ranges'), 'bytes')
  t.is(await r.text(), 'Hello, static!')
  const spa = await fetchT(`${url}/spa/hello.txt`)
  t.is(spa.headers.get('cache-control'), null)
  await spa.arrayBuffer()
})

test('content types come from the extension', async (t) => {
  const { base: url } = await useApp(t, mounts)
  const types: Record<string, string> = {
    'app.js': 'text/javascript',
    'data.json': 'application/json',
    'style.css': 'text/css',
    'image.png': 'image/png',
    'index.html': 'text/html',
    noext: 'application/octet-stream',
  }
  for (const [file, type] of Object.entries(types)) {
    const r = await fetchT(`${url}/assets/${file}`)
    await r.arrayBuffer()
    t.is(r.status, 200, file)
    t.true((r.headers.get('content-type') ?? '').startsWith(type), `${file}: ${r.headers.get('content-type')}`)
  }
})

test('HEAD has the headers and no body', async (t) => {
  const { port } = await useApp(t, mounts)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(Buffer.concat([rawReq('HEAD', '/assets/hello.txt'), rawReq('GET', '/assets/hello.txt')]))
  const [head, get] = await client.readResponses(2, { methods: ['HEAD', 'GET'] })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '14')
  t.is(head.body.length, 0)
  t.is(get.body.toString(), 'Hello, static!')
  t.is(head.headers['etag'], get.headers['etag'])
})

test('If-None-Match and If-Modified-Since give 304', async (t) => {
  const { port } = await useApp(t, mounts)
  const first = await raw(port, '/assets/hello.txt')
  const etag = first.headers['etag']
  const inm = await raw(port, '/assets/hello.txt', { 'If-None-Match': etag })
  t.is(inm.status, 304)
  t.is(inm.body.length, 0)
  t.is(inm.headers['etag'], etag)
  t.is(inm.headers['cache-control'], 'public, max-age=3600, immutable')
  t.is((await raw(port, '/assets/hello.txt', { 'If-None-Match': `"other", W/${etag}` })).status, 304)
  t.is((await raw(port, '/assets/hello.txt', { 'If-None-Match': '"other"' })).status, 200)
  t.is((await raw(port, '/assets/hello.txt', { 'If-Modified-Since': first.headers['last-modified'] })).status, 304)
  t.is((await raw(port, '/assets/hello.txt', { 'If-Modified-Since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).status, 200)
  // If-None-Match wins over If-Modified-Since
  t.is((await raw(port, '/assets/hello.txt', { 'If-None-Match': '"other"', 'If-Modified-Since': first.headers['last-modified'] })).status, 200)
})

test('a directory serves its index; fallback for unknown paths; 404 without', async (t) => {
  const { base: url } = await useApp(t, mounts)
  t.is(await (await fetchT(`${url}/assets/`)).text(), '<h1>home</h1>')
  t.is(await (await fetchT(`${url}/assets`)).text(), '<h1>home</h1>')
  t.is(await (await fetchT(`${url}/assets/sub/`)).text(), '<h1>sub</h1>')
  t.is(await (await fetchT(`${url}/assets/sub`)).text(), '<h1>sub</h1>')
  const missing = await fetchT(`${url}/assets/nope.txt`)
  t.is(missing.status, 404)
  await missing.arrayBuffer()
  const noindex = await fetchT(`${url}/assets/noindex/`)
  t.is(noindex.status, 404)
  await noindex.arrayBuffer()
  const spa = await fetchT(`${url}/spa/some/client/route`)
  t.is(spa.status, 200)
  t.is(spa.headers.get('content-type'), 'text/html; charset=utf-8')
  t.is(await spa.text(), '<h1>home</h1>')
  const dir = await fetchT(`${url}/dots/sub/`)
  t.is(dir.status, 404, 'index: "" turns the index off')
  await dir.arrayBuffer()
  const post = await fetchT(`${url}/assets/hello.txt`, { method: 'POST', body: 'x' })
  t.is(post.status, 405)
  t.is(post.headers.get('allow'), 'GET, HEAD')
  await post.arrayBuffer()
})

test('dotfiles are hidden unless allowed', async (t) => {
  const { port } = await useApp(t, mounts)
  t.is((await raw(port, '/assets/.env')).status, 404)
  t.is((await raw(port, '/assets/.hidden/x.txt')).status, 404)
  t.is((await raw(port, '/assets/%2eenv')).status, 404)
  const spa = await raw(port, '/spa/.env')
  t.is(spa.body.toString(), '<h1>home</h1>', 'a hidden file is unknown: the fallback answers')
  const allowed = await raw(port, '/dots/.env')
  t.is(allowed.status, 200)
  t.is(allowed.body.toString(), 'SECRET=1')
  t.is((await raw(port, '/dots/.hidden/x.txt')).body.toString(), 'hidden')
})

// Safety, over a raw socket so that no client normalises the path.
const traversal: Array<[string, string, number[]]> = [
  ['..', '/assets/../outside/secret.txt', [400, 403, 404]],
  ['.. deeper', '/assets/sub/../../outside/secret.txt', [400, 403, 404]],
  ['%2e%2e', '/assets/%2e%2e/outside/secret.txt', [400, 403, 404]],
  ['%2E%2E mixed', '/assets/.%2E/outside/secret.txt', [400, 403, 404]],
  ['%2f', '/assets/..%2foutside%2fsecret.txt', [400, 403, 404]],
  ['%5c', '/assets/..%5coutside%5csecret.txt', [400, 403, 404]],
  ['backslash', '/assets/..\\outside\\secret.txt', [400, 403, 404]],
  ['NUL', '/assets/hello.txt%00.png', [400, 403, 404]],
  ['bad escape', '/assets/%zz', [400, 404]],
  ['symlink outside', '/assets/escape.txt', [403, 404]],
  ['symlinked dir outside', '/assets/escape-dir/secret.txt', [403, 404]],
]
for (const [name, path, allowed] of traversal) {
  test(`safety: ${name} does not escape the root`, async (t) => {
    const { port } = await useApp(t, mounts)
    const r = await raw(port, path)
    t.true(allowed.includes(r.status), `${path} -> ${r.status}`)
    t.false(r.body.toString().includes('outside secret'))
    const spa = await raw(port, path.replace('/assets/', '/spa/'))
    t.false(spa.body.toString().includes('outside secret'))
    t.not(spa.status, 500)
  })
}

test('safety: a symlink inside the root is served; missing is 404', async (t) => {
  const { port } = await useApp(t, mounts)
  t.is((await raw(port, '/assets/inside-link.txt')).body.toString(), 'Hello, static!')
  t.is((await raw(port, '/assets/missing/file.txt')).status, 404)
  t.is((await raw(port, '/assets/hello.txt/more')).status, 404)
})

test('safety: an unreadable file is 403', async (t) => {
  const { port } = await useApp(t, mounts)
  const r = await raw(port, '/assets/unreadable.txt')
  if (process.getuid?.() === 0) {
    // root reads any file: the permission check cannot fail here
    t.true([200, 403].includes(r.status))
  } else {
    t.is(r.status, 403)
  }
})

test('range: a single range is 206 with Content-Range', async (t) => {
  const { port } = await useApp(t, mounts)
  const r = await raw(port, '/assets/digits.txt', { Range: 'bytes=2-5' })
  t.is(r.status, 206)
  t.is(r.headers['content-range'], 'bytes 2-5/20')
  t.is(r.headers['content-length'], '4')
  t.is(r.body.toString(), '2345')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=-3' })).body.toString(), 'hij')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=18-' })).body.toString(), 'ij')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=15-100' })).headers['content-range'], 'bytes 15-19/20')
  const bad = await raw(port, '/assets/digits.txt', { Range: 'bytes=20-' })
  t.is(bad.status, 416)
  t.is(bad.headers['content-range'], 'bytes */20')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'lines=1-2' })).status, 200, 'an unknown unit is ignored')
  const big = await raw(port, '/assets/medium.bin', { Range: 'bytes=100000-199999' })
  t.is(big.status, 206)
  t.true(big.body.equals(medium.subarray(100000, 200000)))
})

test('range: If-Range with a matching validator gives 206, else the whole file', async (t) => {
  const { port } = await useApp(t, mounts)
  const first = await raw(port, '/assets/digits.txt')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=0-1', 'If-Range': first.headers['etag'] })).status, 206)
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=0-1', 'If-Range': first.headers['last-modified'] })).status, 206)
  const stale = await raw(port, '/assets/digits.txt', { Range: 'bytes=0-1', 'If-Range': '"stale"' })
  t.is(stale.status, 200)
  t.is(stale.body.toString(), '0123456789abcdefghij')
  t.is((await raw(port, '/assets/digits.txt', { Range: 'bytes=0-1', 'If-Range': 'Mon, 01 Jan 2001 00:00:00 GMT' })).status, 200)
})

test('range: multiple ranges are multipart/byteranges', async (t) => {
  const { port } = await useApp(t, mounts)
  const r = await raw(port, '/assets/digits.txt', { Range: 'bytes=0-1, 5-6, -2' })
  t.is(r.status, 206)
  const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(r.headers['content-type'])
  t.truthy(m)
  const b = m![1]
  t.is(Number(r.headers['content-length']), r.body.length)
  const text = r.body.toString()
  const parts = text.split(`--${b}`)
  t.is(parts.length, 5)
  t.true(text.endsWith(`--${b}--\r\n`))
  t.regex(parts[1], /content-range: bytes 0-1\/20\r\n\r\n01\r\n$/)
  t.regex(parts[2], /content-range: bytes 5-6\/20\r\n\r\n56\r\n$/)
  t.regex(parts[3], /content-type: text\/plain; charset=utf-8\r\ncontent-range: bytes 18-19\/20\r\n\r\nij\r\n$/)
  // across a streamed file
  const multi = await raw(port, '/assets/big.bin', { Range: 'bytes=0-99999, 5000000-5099999' })
  t.is(multi.status, 206)
  t.is(Number(multi.headers['content-length']), multi.body.length)
  const bb = /boundary=(\S+)/.exec(multi.headers['content-type'])![1]
  const sep = Buffer.from(`\r\n\r\n`)
  const firstStart = multi.body.indexOf(sep) + 4
  t.true(multi.body.subarray(firstStart, firstStart + 100000).equals(bigBytes(0, 100000)))
  const second = multi.body.indexOf(Buffer.from(`--${bb}`), firstStart + 100000)
  const secondStart = multi.body.indexOf(sep, second) + 4
  t.true(multi.body.subarray(secondStart, secondStart + 100000).equals(bigBytes(5000000, 100000)))
})

function bigBytes(start: number, len: number): Buffer {
  return big.subarray(start, start + len)
}

test('precompressed: br preferred, then gzip, with Content-Encoding and Vary', async (t) => {
  const { port } = await useApp(t, mounts)
  const br = await raw(port, '/assets/both.js', { 'Accept-Encoding': 'gzip, deflate, br' })
  t.is(br.body.toString(), 'brotli both')
  t.is(br.headers['content-encoding'], 'br')
  t.is(br.headers['vary'], 'Accept-Encoding')
  t.true(br.headers['content-type'].startsWith('text/javascript'))
  const gz = await raw(port, '/assets/both.js', { 'Accept-Encoding': 'gzip' })
  t.is(gz.body.toString(), 'gzip both')
  t.is(gz.headers['content-encoding'], 'gzip')
  t.not(gz.headers['etag'], br.headers['etag'])
  const plain = await raw(port, '/assets/both.js')
  t.is(plain.body.toString(), 'plain both')
  t.is(plain.headers['content-encoding'], undefined)
  t.is(plain.headers['vary'], 'Accept-Encoding', 'Vary also on the identity answer when variants exist')
  t.is((await raw(port, '/assets/both.js', { 'Accept-Encoding': 'br;q=0, gzip' })).body.toString(), 'gzip both')
  const gzOnly = await raw(port, '/assets/gzonly.css', { 'Accept-Encoding': 'br, gzip' })
  t.is(gzOnly.body.toString(), 'gzip gz')
  t.true(gzOnly.headers['content-type'].startsWith('text/css'))
  const none = await raw(port, '/assets/hello.txt', { 'Accept-Encoding': 'br, gzip' })
  t.is(none.headers['vary'], undefined)
  const off = await raw(port, '/spa/both.js', { 'Accept-Encoding': 'br, gzip' })
  t.is(off.body.toString(), 'plain both', 'precompressed: false serves the file itself')
  t.is(off.headers['vary'], undefined)
})

test('pipelined: static answers keep order with handler answers, also behind a streamed file', async (t) => {
  const { port } = await useApp(t, mounts)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(
    Buffer.concat([
      rawReq('GET', '/js'),
      rawReq('GET', '/assets/medium.bin'),
      rawReq('GET', '/assets/hello.txt'),
      rawReq('GET', '/js'),
      rawReq('GET', '/assets/medium.bin'),
      rawReq('GET', '/assets/nope'),
    ]),
  )
  const rs = await client.readResponses(6)
  t.deepEqual(
    rs.map((r) => r.status),
    [200, 200, 200, 200, 200, 404],
  )
  t.is(rs[0].body.toString(), 'from js')
  t.true(rs[1].body.equals(medium))
  t.is(rs[2].body.toString(), 'Hello, static!')
  t.is(rs[3].body.toString(), 'from js')
  t.true(rs[4].body.equals(medium))
})

function rssKiB(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1])
}

test.serial('large file: 10 MiB downloads intact, 8 at once without loading it once each', async (t) => {
  const { base: url } = await useApp(t, mounts)
  const one = await fetchT(`${url}/assets/big.bin`, {}, 15000)
  t.is(one.headers.get('content-length'), String(big.length))
  t.is(sha256(new Uint8Array(await one.arrayBuffer())), bigHash)
  if (process.platform !== 'linux') return t.pass()
  // 8 downloads in flight whose clients do not read yet: what the server holds for them
  // shows in this process's RSS (the clients' bytes wait in the kernel).
  const before = rssKiB()
  const clients = await Promise.all(Array.from({ length: 8 }, () => RawClient.connect(Number(new URL(url).port))))
  t.teardown(() => clients.forEach((c) => c.destroy()))
  for (const c of clients) c.socket.pause()
  await Promise.all(clients.map((c) => c.write(rawReq('GET', '/assets/big.bin'))))
  let peak = before
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 30))
    peak = Math.max(peak, rssKiB())
  }
  t.log(`RSS before ${before} KiB, peak with 8 downloads in flight ${peak} KiB`)
  // A copy of the file per download would be 80 MiB.
  t.true(peak - before < 40 * 1024, `RSS grew by ${peak - before} KiB for 8 x 10 MiB in flight`)
  const hashes = await Promise.all(
    clients.map(async (c) => {
      c.socket.resume()
      const [r] = await c.readResponses(1, { ms: 20000 })
      c.destroy()
      return sha256(r.body)
    }),
  )
  for (const h of hashes) t.is(h, bigHash)
})

function fileRoutes(app: App) {
  app.get('/file/:name', (req, res) => res.header('x-from', 'handler').header('content-type', 'text/x-ignored').sendFile(join(root, req.params.name), { maxAge: 60 }))
  app.get('/later', async (req, res) => {
    await new Promise((r) => setTimeout(r, 20))
    res.sendFile(join(root, 'big.bin'))
  })
  app.get('/relative', (req, res) => res.sendFile(join('.', 'nope', 'missing.txt')))
  app.get('/dot', (req, res) => res.sendFile(join(root, '.env')))
  app.get('/dot-allowed', (req, res) => res.sendFile(join(root, '.env'), { dotfiles: 'allow' }))
  app.get('/js', (req, res) => res.text('from js'))
  app.get('/not-found-page', (req, res) => res.status(404).sendFile(join(root, 'index.html')))
}

test('sendFile: a handler answers with a file by the same rules', async (t) => {
  const { port } = await useApp(t, fileRoutes)
  const r = await raw(port, '/file/hello.txt')
  t.is(r.status, 200)
  t.is(r.body.toString(), 'Hello, static!')
  t.is(r.headers['content-type'], 'text/plain; charset=utf-8', "the file's type stands")
  t.is(r.headers['x-from'], 'handler', "the handler's other headers are kept")
  t.is(r.headers['cache-control'], 'public, max-age=60')
  t.is((await raw(port, '/file/hello.txt', { 'If-None-Match': r.headers['etag'] })).status, 304)
  const range = await raw(port, '/file/digits.txt', { Range: 'bytes=1-3' })
  t.is(range.status, 206)
  t.is(range.body.toString(), '123')
  const br = await raw(port, '/file/both.js', { 'Accept-Encoding': 'br' })
  t.is(br.body.toString(), 'brotli both')
  t.is(br.headers['content-encoding'], 'br')
  const head = await raw(port, '/file/hello.txt', {}, 'HEAD')
  t.is(head.headers['content-length'], '14')
  t.is(head.body.length, 0)
  t.is((await raw(port, '/file/nope.txt')).status, 404)
  t.is((await raw(port, '/relative')).status, 404)
  t.is((await raw(port, '/dot')).status, 404)
  t.is((await raw(port, '/dot-allowed')).body.toString(), 'SECRET=1')
  t.is((await raw(port, '/file/sub')).body.toString(), '<h1>sub</h1>', 'a directory gives its index')
  const page = await raw(port, '/not-found-page', { Range: 'bytes=0-1' })
  t.is(page.status, 404, "the handler's own status")
  t.is(page.body.toString(), '<h1>home</h1>')
  t.is(page.headers['content-type'], 'text/html; charset=utf-8')
  const cached = await fetchT(`http://127.0.0.1:${port}/file/hello.txt`, { headers: { 'if-none-match': r.headers['etag'] } })
  t.is(cached.status, 304)
})

test('sendFile: a large file streams, in order with pipelined answers', async (t) => {
  const { port } = await useApp(t, fileRoutes)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(Buffer.concat([rawReq('GET', '/later'), rawReq('GET', '/js'), rawReq('GET', '/file/medium.bin'), rawReq('GET', '/js')]))
  const rs = await client.readResponses(4, { ms: 15000 })
  t.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200])
  t.is(sha256(rs[0].body), bigHash)
  t.is(rs[1].body.toString(), 'from js')
  t.true(rs[2].body.equals(medium))
  t.is(rs[3].body.toString(), 'from js')
})

test('sendFile and static: options are checked at once', (t) => {
  const app = new App()
  t.throws(() => app.static('assets', root), { instanceOf: TypeError })
  t.throws(() => app.static('/a', root, { maxAge: -1 }), { instanceOf: RangeError })
  t.throws(() => app.static('/a', root, { dotfiles: 'show' as never }), { instanceOf: RangeError })
  app.get('/x', (req, res) => {
    t.throws(() => res.sendFile(''), { instanceOf: TypeError })
    res.text('x')
  })
})

test('a mount at / beside handler routes; HEAD of a streamed file sends no body', async (t) => {
  const { port } = await useApp(t, (app) => {
    app.get('/js', (req, res) => res.text('from js'))
    app.static('/', root)
  })
  t.is((await raw(port, '/js')).body.toString(), 'from js')
  t.is((await raw(port, '/hello.txt')).body.toString(), 'Hello, static!')
  t.is((await raw(port, '/')).body.toString(), '<h1>home</h1>')
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  await client.write(Buffer.concat([rawReq('HEAD', '/big.bin'), rawReq('GET', '/hello.txt'), rawReq('HEAD', '/medium.bin'), rawReq('GET', '/js')]))
  const rs = await client.readResponses(4, { methods: ['HEAD', 'GET', 'HEAD', 'GET'] })
  t.is(rs[0].headers['content-length'], String(big.length))
  t.is(rs[0].body.length, 0)
  t.is(rs[1].body.toString(), 'Hello, static!')
  t.is(rs[2].headers['content-length'], String(medium.length))
  t.is(rs[3].body.toString(), 'from js')
  t.true(await client.staysOpen(100))
})

test('HTTP/1.0 and Connection: close get the whole file, then the close', async (t) => {
  const { port } = await useApp(t, mounts)
  const r10 = await rawRequest(port, rawReq('GET', '/assets/medium.bin', {}, undefined, 'HTTP/1.0'), { until: 'end' })
  t.true(r10.responses[0].body.equals(medium))
  const closing = await rawRequest(port, rawReq('GET', '/assets/big.bin', { Connection: 'close' }), { until: 'end' })
  t.is(sha256(closing.responses[0].body), bigHash)
  t.is(closing.responses[0].headers['connection'], 'close')
})

test('a directory without its trailing slash is redirected to it (301), with the query', async (t) => {
  const { port } = await useApp(t, mounts)
  const sub = await raw(port, '/assets/sub')
  t.is(sub.status, 301)
  t.is(sub.headers['location'], '/assets/sub/')
  t.is((await raw(port, '/assets/sub?page=2&x=%20')).headers['location'], '/assets/sub/?page=2&x=%20')
  t.is((await raw(port, '/assets')).headers['location'], '/assets/', 'the mount itself too')
  const head = await raw(port, '/assets/sub', {}, 'HEAD')
  t.is(head.status, 301)
  t.is(head.body.length, 0)
  t.is((await raw(port, '/assets/sub/')).body.toString(), '<h1>sub</h1>')
  t.is((await raw(port, '/assets/sub')).status, 301, 'also once the index is cached')
  t.is((await raw(port, '/assets/noindex')).status, 404, 'no index: no redirect')
  t.is((await raw(port, '/dots/sub')).status, 404, 'index turned off: no redirect')
  t.is((await raw(port, '/spa/sub')).headers['location'], '/spa/sub/')
  t.is((await raw(port, '/assets/hello.txt')).status, 200)
  t.is((await raw(port, '/assets/escape-dir')).status, 403, 'a symlinked directory outside the root is not redirected to')
})

test('a redirect cannot name another host', async (t) => {
  const { port } = await useApp(t, (app) => app.static('/', root))
  const r = await raw(port, '//sub')
  t.is(r.status, 301)
  t.is(r.headers['location'], '/sub/')
  t.is((await raw(port, '/')).body.toString(), '<h1>home</h1>')
})

test.serial('files changed on disk are served within about a second', async (t) => {
  const dir = join(base, 'live')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'page.txt'), 'version 1')
  const bigV1 = randomBytes(300 * 1024)
  writeFileSync(join(dir, 'big.bin'), bigV1)
  const { port } = await useApp(t, (app) => app.static('/live', dir))
  const first = await raw(port, '/live/page.txt')
  t.is(first.body.toString(), 'version 1')
  t.true(sha256((await raw(port, '/live/big.bin')).body) === sha256(bigV1))
  // Asks for `path` until what is seen changes, or PATIENCE_MS. An entry is trusted for a
  // second from its last check, which was before the change: the first request to arrive a
  // second after the change must see it. So it is seen at the latest `bound` ms after the
  // change: that second, then the wait for the next request to be sent and its round trip,
  // however long these take on this machine (a fixed bound was missed on a loaded one).
  async function until(path: string, done: (r: Awaited<ReturnType<typeof raw>>) => boolean) {
    const start = Date.now()
    let previous = start
    for (;;) {
      const sent = Date.now()
      const r = await raw(port, path)
      const now = Date.now()
      const ms = now - start
      if (done(r) || ms > PATIENCE_MS) return { r, ms, bound: 1000 + (sent - previous) + (now - sent) }
      previous = sent
      await sleep(50)
    }
  }
  // A few ms for the server's clock and Date.now() rounding differently.
  const CLOCKS_MS = 20

  writeFileSync(join(dir, 'page.txt'), 'version 2, longer')
  const changed = await until('/live/page.txt', (r) => r.body.toString() !== 'version 1')
  t.log(`a changed file was served after ${changed.ms} ms`)
  t.is(changed.r.body.toString(), 'version 2, longer')
  t.not(changed.r.headers['etag'], first.headers['etag'])
  t.is(changed.r.headers['content-length'], '17')
  t.true(changed.ms <= changed.bound + CLOCKS_MS, `seen after ${changed.ms} ms, more than ${changed.bound} ms`)
  t.is((await raw(port, '/live/page.txt', { 'If-None-Match': first.headers['etag'] })).status, 200, 'the old ETag no longer matches')

  // Replaced as deploys replace files (written aside, renamed over): a file rewritten in
  // place while a cached descriptor serves it can be answered with the old length and cut
  // short (README, Static files), which this test would take for a failure.
  const bigV2 = randomBytes(250 * 1024)
  writeFileSync(join(dir, 'big.bin.new'), bigV2)
  renameSync(join(dir, 'big.bin.new'), join(dir, 'big.bin'))
  const big = await until('/live/big.bin', (r) => r.body.length === bigV2.length)
  t.true(sha256(big.r.body) === sha256(bigV2), 'a large file replaced on disk')

  // A new file is served at once: paths that name nothing are not cached.
  t.is((await raw(port, '/live/new.txt')).status, 404)
  writeFileSync(join(dir, 'new.txt'), 'new')
  t.is((await raw(port, '/live/new.txt')).body.toString(), 'new')

  unlinkSync(join(dir, 'page.txt'))
  const gone = await until('/live/page.txt', (r) => r.status !== 200)
  t.is(gone.r.status, 404)
  t.true(gone.ms <= gone.bound + CLOCKS_MS, `seen after ${gone.ms} ms, more than ${gone.bound} ms`)
})
