// HTTP/2 with the command-line clients people use: curl (--http2-prior-knowledge in
// cleartext, --http2 over TLS by ALPN) and nghttp (Debian's nghttp2-client, installed by
// the test when missing and the test can).
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes, createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import test from 'ava'
import { App } from 'harrier'
import { useApp } from './helpers.ts'
import { ensureNghttp } from './h2-helpers.ts'

const exec = promisify(execFile)
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

function tmp(t: { teardown(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harrier-h2-clients-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function routes(app: App): void {
  app.get('/', (req, res) => res.text(`hello ${req.httpVersion}${req.secure ? ' secure' : ''}`))
  app.get('/n/:i', (req, res) => res.text(`n${req.params.i}`))
  app.post('/echo', App.bodyLimit(16 * 2 ** 20), async (req, res) => res.send(Buffer.from(await req.arrayBuffer())))
}

async function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return exec('curl', ['-sS', '--max-time', '20', ...args], { maxBuffer: 64 * 2 ** 20 })
}

test('curl --http2-prior-knowledge: GET, HEAD, POST with a body, 404', async (t) => {
  const dir = tmp(t)
  const { base } = await useApp(t, routes)
  const get = await curl(['--http2-prior-knowledge', '-w', '\n%{http_version} %{http_code}', `${base}/`])
  t.is(get.stdout, 'hello 2.0\n2 200')
  const head = await curl(['--http2-prior-knowledge', '-I', `${base}/`])
  t.regex(head.stdout, /^HTTP\/2 200/)
  t.regex(head.stdout, /content-length: 9/)
  const data = randomBytes(3 * 2 ** 20)
  fs.writeFileSync(path.join(dir, 'up.bin'), data)
  await curl(['--http2-prior-knowledge', '--data-binary', `@${path.join(dir, 'up.bin')}`, '-o', path.join(dir, 'down.bin'), `${base}/echo`])
  t.is(sha(fs.readFileSync(path.join(dir, 'down.bin'))), sha(data))
  const missing = await curl(['--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${base}/missing`])
  t.is(missing.stdout, '2 404')
})

test('curl --http2 over TLS: h2 chosen by ALPN; --http1.1 on the same port gets HTTP/1.1', async (t) => {
  const dir = tmp(t)
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'])
  if (made.status !== 0) return t.fail(`openssl could not make a certificate: ${made.stderr}`)
  const app = new App()
  routes(app)
  const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: { cert, key } })
  t.teardown(() => app.close())
  const url = `https://127.0.0.1:${port}/`
  const h2 = await curl(['--http2', '--cacert', cert, '-w', '\n%{http_version}', url])
  t.is(h2.stdout, 'hello 2.0 secure\n2')
  const h1 = await curl(['--http1.1', '--cacert', cert, '-w', '\n%{http_version}', url])
  t.is(h1.stdout, 'hello 1.1 secure\n1.1')
  const off = new App({ http2: false })
  routes(off)
  const listening = await off.listen({ port: 0, host: '127.0.0.1', signals: false, tls: { cert, key } })
  t.teardown(() => off.close())
  const fallback = await curl(['--http2', '--cacert', cert, '-w', '\n%{http_version}', `https://127.0.0.1:${listening.port}/`])
  t.is(fallback.stdout, 'hello 1.1 secure\n1.1', 'http2: false offers http/1.1 alone by ALPN')
})

test('nghttp: many concurrent streams on one connection, and an upload', async (t) => {
  if (!ensureNghttp()) return t.fail('nghttp is missing and nghttp2-client could not be installed (apt-get as root or sudo -n)')
  const dir = tmp(t)
  const { base } = await useApp(t, routes)
  const uris = Array.from({ length: 50 }, (_, i) => `${base}/n/${i}`)
  const r = await exec('nghttp', ['-n', '-s', ...uris], { maxBuffer: 16 * 2 ** 20, timeout: 20_000 })
  // -s prints one line per stream with its status; every one answered 200
  const answered = r.stdout.split('\n').filter((l) => /\s200\s/.test(l) && /\/n\/\d+/.test(l))
  t.is(answered.length, 50, r.stdout)
  const data = randomBytes(2 * 2 ** 20)
  fs.writeFileSync(path.join(dir, 'up.bin'), data)
  const up = await exec('nghttp', ['-d', path.join(dir, 'up.bin'), `${base}/echo`], { encoding: 'buffer', maxBuffer: 16 * 2 ** 20, timeout: 20_000 })
  t.is(sha(up.stdout), sha(data))
})
