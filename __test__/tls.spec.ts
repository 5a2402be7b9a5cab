// TLS basics: a hello over https with `req.secure`, with node:https, curl and openssl
// s_client; the protocol versions (TLS 1.2 and 1.3 by default, `minVersion: 'TLSv1.3'`,
// nothing older); ALPN; session resumption (tickets and the session cache, TLS 1.2 and 1.3);
// close_notify before the server closes (after Connection: close, at keepAliveTimeout, at
// close()); many handshakes at once; close() with an open keep-alive connection.
// Certificates are made for this file by tls-certs.ts; loading, SNI and reload are in
// tls-certs.spec.ts, bodies, files, pipelining and wss in tls-data.spec.ts, bad input in
// tls-abuse.spec.ts.
import { spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import test from 'ava'
import { App } from 'harrier'
import { PATIENCE_MS, closeApp, fetchT, useApp, withTimeout } from './helpers.ts'
import { ANSWERED, GET_CLOSE, type TlsApp, TlsRaw, certs, defaultTls, handshake, handshakeError, httpsRequest, run, sClient, secureOf, sessionLine, useTlsApp } from './tls-helpers.ts'
import { removeCerts } from './tls-certs.ts'

test.after.always(() => removeCerts(certs))

function hello(app: App) {
  app.get('/', (req, res) => res.text(`hello over ${secureOf(req) === true ? 'https' : secureOf(req) === false ? 'http' : `?? secure=${String(secureOf(req))}`}`))
}

// ---------------------------------------------------------------------------
// Hello
// ---------------------------------------------------------------------------

test('hello over https: node:https verifies the certificate and req.secure is true', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const r = await httpsRequest(port)
  t.is(r.status, 200)
  t.is(r.body.toString(), 'hello over https')
  t.true(r.socket.authorized, 'the certificate verifies against the test CA for 127.0.0.1')
  t.is(r.socket.getPeerCertificate().fingerprint256, certs.localhost.fingerprint256)
})

test('a plaintext App: req.secure is false, and an https client cannot handshake with it', async (t) => {
  const { port, base } = await useApp(t, hello)
  const r = await fetchT(`${base}/`)
  t.is(await r.text(), 'hello over http')
  const e = await handshakeError(port)
  t.truthy(e, 'no TLS on a plaintext listener')
})

test('curl --cacert: hello over https, the certificate verified for localhost', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const r = await run('curl', [
    '-sS', '--fail', '--max-time', '20', '--cacert', certs.ca,
    '--resolve', `localhost:${port}:127.0.0.1`,
    '-w', '\\n%{http_code} %{ssl_verify_result}',
    `https://localhost:${port}/`,
  ])
  t.is(r.code, 0, r.all)
  t.is(r.stdout, 'hello over https\n200 0', r.all)
})

test('openssl s_client: the handshake verifies and a GET is answered', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const r = await sClient(port, ['-servername', 'localhost', '-verify_return_error', '-verify_hostname', 'localhost'], GET_CLOSE)
  t.regex(r.stdout, ANSWERED, r.all)
  t.regex(r.stdout, /Verify return code: 0 \(ok\)/)
  t.regex(r.stdout, /HTTP\/1\.1 200/)
  t.regex(r.stdout, /hello over https/)
})

test('many handshakes at once: 40 connections, each answered', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const results = await Promise.all(Array.from({ length: 40 }, () => httpsRequest(port, { ms: 60_000 })))
  t.deepEqual(
    results.map((r) => `${r.status} ${r.body}`),
    results.map(() => '200 hello over https'),
  )
})

// ---------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------

test('by default TLS 1.2 and TLS 1.3 are both accepted (node:tls and s_client)', async (t) => {
  const { port } = await useTlsApp(t, hello)
  t.is((await handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2')
  t.is((await handshake(port, { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' })).protocol, 'TLSv1.3')
  t.is((await handshake(port)).protocol, 'TLSv1.3', 'the newest both sides have')
  for (const [flag, version] of [['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']]) {
    const r = await sClient(port, [flag, '-servername', 'localhost', '-verify_return_error'], GET_CLOSE)
    t.regex(r.stdout, ANSWERED, r.all)
    t.regex(sessionLine(r.stdout) ?? '', new RegExp(`^New, ${version.replace('.', '\\.')}, Cipher is `), r.stdout)
    t.regex(r.stdout, /hello over https/)
  }
})

test("minVersion 'TLSv1.3' refuses a TLS 1.2 client (openssl s_client -tls1_2, node:tls) and serves TLS 1.3", async (t) => {
  const { port } = await useTlsApp(t, hello, defaultTls({ minVersion: 'TLSv1.3' }))
  const r = await sClient(port, ['-tls1_2', '-servername', 'localhost'], GET_CLOSE)
  t.not(r.code, 0, r.all)
  t.notRegex(r.stdout, /hello over https/)
  t.regex(r.all, /alert protocol version|wrong version|unsupported protocol|handshake failure/i, 'the server refused the version')
  t.regex(sessionLine(r.stdout) ?? 'New, (NONE), Cipher is (NONE)', /Cipher is \(NONE\)/)

  const e = await handshakeError(port, { maxVersion: 'TLSv1.2' })
  t.regex(`${e.code} ${e.message}`, /PROTOCOL_VERSION|protocol version|HANDSHAKE_FAILURE/i)

  const ok = await handshake(port)
  t.is(ok.protocol, 'TLSv1.3')
  const r13 = await sClient(port, ['-tls1_3', '-servername', 'localhost'], GET_CLOSE)
  t.regex(r13.stdout, ANSWERED, r13.all)
  t.regex(r13.stdout, /hello over https/)
})

/**
 * A TLS 1.1 ClientHello written by hand (record version 1.0, client_version 1.1, no
 * supported_versions extension, the classic CBC suites): what an old client sends.
 */
function tls11ClientHello(): Buffer {
  const suites = [0xc013, 0xc014, 0x002f, 0x0035, 0x000a]
  const body = Buffer.concat([
    Buffer.from([0x03, 0x02]), // client_version TLS 1.1
    Buffer.alloc(32, 7), // random
    Buffer.from([0]), // session id
    Buffer.from([0, suites.length * 2, ...suites.flatMap((s) => [s >> 8, s & 0xff])]),
    Buffer.from([1, 0]), // compression: null
  ])
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body])
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, hs.length >> 8, hs.length & 0xff]), hs])
}

test('TLS 1.1 and older are refused: a TLS 1.1 node:tls client fails where a node:tls server takes it, a hand-made 1.1 hello gets an alert', async (t) => {
  const { port } = await useTlsApp(t, hello)
  // the client really speaks TLS 1.1 (OpenSSL 3 needs security level 0 for it): a node:tls
  // server that allows 1.1 takes it, so the failure below is harrier's refusal
  const old: tls.ConnectionOptions = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0', servername: 'localhost' }
  const control = tls.createServer({ cert: certs.localhost.certPem, key: certs.localhost.keyPem, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (s) => s.end())
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve))
  t.teardown(() => control.close())
  const viaControl = await handshake((control.address() as net.AddressInfo).port, old)
  t.is(viaControl.protocol, 'TLSv1.1', 'the control server negotiated TLS 1.1 with this client')

  const e = await handshakeError(port, old)
  t.notRegex(`${e.code}`, /NO_PROTOCOLS_AVAILABLE|NO_CIPHERS/, 'the client did send a hello')
  t.regex(`${e.code} ${e.message}`, /PROTOCOL_VERSION|protocol version|HANDSHAKE_FAILURE|UNSUPPORTED_PROTOCOL/i, `${e.code} ${e.message}`)

  // and on the wire: the answer to a 1.1 hello is an alert record, then the close
  const sock = net.connect({ port, host: '127.0.0.1' })
  const chunks: Buffer[] = []
  sock.on('data', (d: Buffer) => chunks.push(d))
  sock.on('error', () => {})
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  sock.write(tls11ClientHello())
  await withTimeout(closed, PATIENCE_MS, 'the server to close after refusing TLS 1.1')
  const got = Buffer.concat(chunks)
  t.true(got.length >= 7, `an alert record: ${got.toString('hex')}`)
  t.is(got[0], 0x15, `content type alert: ${got.toString('hex')}`)
  t.is(got[5], 2, 'a fatal alert')
  t.true(got[6] === 70 || got[6] === 40, `protocol_version (70) or handshake_failure (40), got ${got[6]}`)
})

test('openssl s_client -tls1_1 is refused (where the local openssl can still speak it)', async (t) => {
  const help = await run('openssl', ['s_client', '-help'])
  const { port } = await useTlsApp(t, hello)
  if (!/-tls1_1\b/.test(help.all)) {
    // this build cannot speak TLS 1.1 at all: the refusal is covered by the node:tls test above
    const e = await handshakeError(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })
    t.truthy(e)
    return
  }
  const r = await sClient(port, ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0', '-servername', 'localhost'], GET_CLOSE)
  t.not(r.code, 0, r.all)
  t.notRegex(r.stdout, /hello over https/)
  t.notRegex(r.all, /no protocols available/i, 'the client sent its hello')
  t.regex(r.all, /alert protocol version|unsupported protocol|wrong version|handshake failure/i)
})

// ---------------------------------------------------------------------------
// ALPN
// ---------------------------------------------------------------------------

test('ALPN: http/1.1 is negotiated when offered, also among protocols the server does not speak', async (t) => {
  const { port } = await useTlsApp(t, hello)
  t.is((await handshake(port, { ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1')
  t.is((await handshake(port, { ALPNProtocols: ['foo', 'http/1.1'] })).alpn, 'http/1.1')
  const c = await TlsRaw.connect(port, { ALPNProtocols: ['http/1.1'] })
  t.teardown(() => c.destroy())
  t.is(c.socket.alpnProtocol, 'http/1.1')
  await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  const res = await c.readResponse()
  t.is(res.body.toString(), 'hello over https')
  const r = await sClient(port, ['-alpn', 'http/1.1', '-servername', 'localhost'], GET_CLOSE)
  t.regex(r.stdout, ANSWERED, r.all)
  t.regex(r.stdout, /ALPN protocol: http\/1\.1/)
})

test('ALPN: a client without ALPN is served HTTP/1.1', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  t.falsy(c.socket.alpnProtocol)
  await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.is((await c.readResponse()).body.toString(), 'hello over https')
})

test('ALPN: a client offering only protocols the server does not speak is refused with no_application_protocol', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const e = await handshakeError(port, { ALPNProtocols: ['foo'] })
  t.regex(`${e.code} ${e.message}`, /NO_APPLICATION_PROTOCOL|no application protocol/i)
  const r = await sClient(port, ['-alpn', 'foo', '-servername', 'localhost'], GET_CLOSE)
  t.not(r.code, 0, r.all)
  t.regex(r.all, /no application protocol/i)
  t.notRegex(r.stdout, /hello over https/)
})

// ---------------------------------------------------------------------------
// Resumption
// ---------------------------------------------------------------------------

/**
 * A first s_client connection saves its session, then `n` more each resume from the session
 * the one before saved: every one of them must say `Reused`. Several resumptions, because
 * under the threads driver connections land on different I/O threads: a ticket key or a
 * session cache of one thread alone would show up as a `New` here.
 */
async function resumeChain(port: number, flags: string[], n: number): Promise<string[]> {
  const dir = certs.dir
  const file = (i: number) => join(dir, `session-${process.pid}-${flags.join('')}-${i}.pem`)
  const lines: string[] = []
  // the session to resume: the last one a connection saved (s_client writes none when the
  // server hands out no new session, as a TLS 1.2 resumption may not)
  let latest: string | undefined
  try {
    for (let i = 0; i <= n; i++) {
      const args = [...flags, '-servername', 'localhost', '-sess_out', file(i)]
      if (latest !== undefined) args.push('-sess_in', latest)
      const r = await sClient(port, args, GET_CLOSE)
      if (!ANSWERED.test(r.stdout)) throw new Error(`s_client #${i} failed: ${r.all}`)
      lines.push(sessionLine(r.stdout) ?? `no session line in: ${r.stdout}`)
      if (existsSync(file(i))) latest = file(i)
      else if (latest === undefined) throw new Error(`the first connection saved no session: ${r.stdout}`)
    }
  } finally {
    for (let i = 0; i <= n; i++) rmSync(file(i), { force: true })
  }
  return lines
}

test('resumption, TLS 1.3: s_client -sess_in says Reused, five times over', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const lines = await resumeChain(port, ['-tls1_3'], 5)
  t.regex(lines[0], /^New, TLSv1\.3/)
  for (const [i, line] of lines.slice(1).entries()) t.regex(line, /^Reused, TLSv1\.3/, `resumption #${i + 1}: ${line}`)
})

test('resumption, TLS 1.2 with session tickets: s_client -sess_in says Reused, five times over', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const lines = await resumeChain(port, ['-tls1_2'], 5)
  t.regex(lines[0], /^New, TLSv1\.2/)
  for (const [i, line] of lines.slice(1).entries()) t.regex(line, /^Reused, TLSv1\.2/, `resumption #${i + 1}: ${line}`)
})

test('resumption, TLS 1.2 without tickets (the session cache, by session id): s_client -no_ticket -sess_in says Reused', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const lines = await resumeChain(port, ['-tls1_2', '-no_ticket'], 5)
  t.regex(lines[0], /^New, TLSv1\.2/)
  for (const [i, line] of lines.slice(1).entries()) t.regex(line, /^Reused, TLSv1\.2/, `resumption #${i + 1}: ${line}`)
})

/** A node:tls connection that does a GET, and the session it was handed. */
async function nodeSession(port: number, options: tls.ConnectionOptions): Promise<{ reused: boolean; session: Buffer; protocol: string | null }> {
  const c = await TlsRaw.connect(port, options)
  try {
    let session: Buffer | undefined
    c.socket.on('session', (s: Buffer) => (session = s))
    await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
    const res = await c.readResponse()
    if (res.body.toString() !== 'hello over https') throw new Error(`unexpected answer: ${res.head}`)
    await c.waitFor(() => session !== undefined || c.socket.getSession() !== undefined, PATIENCE_MS, 'a session to resume')
    return { reused: c.socket.isSessionReused(), session: session ?? c.socket.getSession()!, protocol: c.socket.getProtocol() }
  } finally {
    c.destroy()
  }
}

test('resumption with node:tls: a connection given the last session resumes it (TLS 1.2 and 1.3)', async (t) => {
  const { port } = await useTlsApp(t, hello)
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const opts = { minVersion: version, maxVersion: version }
    let s = await nodeSession(port, opts)
    t.false(s.reused)
    t.is(s.protocol, version)
    for (let i = 1; i <= 4; i++) {
      s = await nodeSession(port, { ...opts, session: s.session })
      t.true(s.reused, `${version}: resumption #${i}`)
    }
  }
})

// ---------------------------------------------------------------------------
// close_notify: the server ends its TLS connections cleanly
// ---------------------------------------------------------------------------

/**
 * An `openssl s_client -msg` session kept open: `send` writes to it, `output` is what it
 * printed so far (with every TLS message it saw), `exited` resolves with its exit code.
 */
function interactiveSClient(port: number) {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca, '-servername', 'localhost', '-msg'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  const waiters = new Set<() => void>()
  const onData = (d: Buffer) => {
    output += d.toString('latin1')
    for (const w of [...waiters]) w()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve(code))
  })
  return {
    get output() {
      return output
    },
    send: (text: string) => child.stdin.write(text),
    waitFor: (re: RegExp, what: string) =>
      withTimeout(
        new Promise<void>((resolve) => {
          const check = () => {
            if (re.test(output)) {
              waiters.delete(check)
              resolve()
            }
          }
          waiters.add(check)
          check()
        }),
        PATIENCE_MS,
        `${what}; s_client printed: ${output.slice(-1500)}`,
      ),
    exited,
    kill: () => child.kill('SIGKILL'),
  }
}

const CLOSE_NOTIFY = /<<< TLS 1\.[23], Alert \[length 0002\], warning close_notify/

test('the server sends close_notify before closing: after a Connection: close response', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const r = await sClient(port, ['-servername', 'localhost', '-msg'], GET_CLOSE)
  t.regex(r.stdout, /hello over https/)
  t.regex(r.stdout, CLOSE_NOTIFY, 'a close_notify alert came from the server after the response')
  t.notRegex(r.all, /unexpected eof while reading/, 's_client saw the TCP connection end without a close_notify')
  t.is(r.code, 0, r.all.slice(-800))
})

test('the server sends close_notify before closing: an idle keep-alive connection at keepAliveTimeout', async (t) => {
  const { port } = await useTlsApp(t, hello, defaultTls(), { keepAliveTimeout: 1000 })
  const s = interactiveSClient(port)
  t.teardown(() => s.kill())
  await s.waitFor(/Verify return code/, 'the handshake')
  s.send('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await s.waitFor(/hello over https/, 'the response')
  const code = await withTimeout(s.exited, PATIENCE_MS, 's_client to end when the server closes the idle connection')
  t.regex(s.output, CLOSE_NOTIFY, 'a close_notify alert came from the server')
  t.notRegex(s.output, /unexpected eof while reading/)
  t.is(code, 0, s.output.slice(-800))
})

test('the server sends close_notify before closing: an idle keep-alive connection at app.close()', async (t) => {
  const { app, port } = await useTlsApp(t, hello, defaultTls(), { keepAliveTimeout: 60_000 })
  const s = interactiveSClient(port)
  t.teardown(() => s.kill())
  await s.waitFor(/Verify return code/, 'the handshake')
  s.send('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await s.waitFor(/hello over https/, 'the response')
  await closeApp(app)
  const code = await withTimeout(s.exited, PATIENCE_MS, 's_client to end when close() closes the idle connection')
  t.regex(s.output, CLOSE_NOTIFY, 'a close_notify alert came from the server')
  t.notRegex(s.output, /unexpected eof while reading/)
  t.is(code, 0, s.output.slice(-800))
})

// ---------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------

test('close() of a TLS app with an open keep-alive connection resolves, and the connection is closed', async (t) => {
  const app = new App() as TlsApp
  hello(app)
  const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: defaultTls() })
  let closed = false
  t.teardown(() => (closed ? undefined : closeApp(app)))
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.caPem })
  t.teardown(() => agent.destroy())
  const r = await httpsRequest(port, { agent })
  t.is(r.body.toString(), 'hello over https')
  const c = await TlsRaw.connect(port)
  await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await c.readResponse()
  await closeApp(app)
  closed = true
  await c.waitForClose()
  t.true(c.closed)
})

test('an App can serve TLS again after close()', async (t) => {
  const app = new App() as TlsApp
  hello(app)
  const first = await app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: defaultTls() })
  t.is((await httpsRequest(first.port)).body.toString(), 'hello over https')
  await closeApp(app)
  const second = await app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: defaultTls() })
  t.teardown(() => closeApp(app))
  t.is((await httpsRequest(second.port)).body.toString(), 'hello over https')
})
