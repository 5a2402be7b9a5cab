// Bad input on a TLS listener: plaintext HTTP gets an alert and the close; a handshake that
// does not finish within headerTimeout (nothing sent, half a ClientHello, a ClientHello one
// byte at a time) is closed by the server; junk before the handshake and garbage records
// after it close that connection only; clients that give up mid-handshake; stalled
// handshakes do not hold up the others. After each, the server keeps serving.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import test from 'ava'
import type { App } from 'harrier'
import { PATIENCE_MS, withTimeout } from './helpers.ts'
import { TlsRaw, certs, httpsRequest, secureOf, tlsConnect, useTlsApp } from './tls-helpers.ts'
import { removeCerts } from './tls-certs.ts'

test.after.always(() => removeCerts(certs))

function hello(app: App) {
  app.get('/', (req, res) => res.text(`hello over ${secureOf(req) === true ? 'https' : 'http'}`))
}

/** A raw TCP client that records what it gets and when the connection ended. */
class Tcp {
  readonly socket: net.Socket
  readonly opened = performance.now()
  private chunks: Buffer[] = []
  closedAt: number | undefined
  readonly closed: Promise<void>

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => this.chunks.push(d))
    socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now()
        resolve()
      }),
    )
  }

  static connect(port: number): Promise<Tcp> {
    return withTimeout(
      new Promise<Tcp>((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1' })
        s.once('connect', () => {
          s.removeListener('error', reject)
          resolve(new Tcp(s))
        })
        s.once('error', reject)
      }),
      PATIENCE_MS,
      `a TCP connect to 127.0.0.1:${port}`,
    )
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks)
  }

  write(data: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(data)
  }

  /** Waits for the server to close; resolves with ms since the connect. */
  async waitClose(ms: number, what: string): Promise<number> {
    await withTimeout(this.closed, ms, what)
    return this.closedAt! - this.opened
  }

  destroy() {
    this.socket.destroy()
  }
}

/** A real ClientHello, as node:tls sends it (caught by a TCP server that answers nothing). */
async function realClientHello(): Promise<Buffer> {
  return withTimeout(
    new Promise<Buffer>((resolve, reject) => {
      const server = net.createServer((s) => {
        s.once('data', (d: Buffer) => {
          resolve(d)
          s.destroy()
          server.close()
        })
      })
      server.listen(0, '127.0.0.1', () => {
        const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
        c.on('error', () => {})
        c.once('close', () => c.destroy())
      })
      server.on('error', reject)
    }),
    PATIENCE_MS,
    'a ClientHello from node:tls',
  )
}

/** An SSLv2-compatible ClientHello (what very old clients sent): no TLS server takes it now. */
function sslv2ClientHello(): Buffer {
  const specs = Buffer.from([0x00, 0x00, 0x35, 0x00, 0x00, 0x2f, 0x00, 0x00, 0xff])
  const challenge = randomBytes(16)
  const body = Buffer.concat([Buffer.from([0x01, 0x03, 0x01, 0x00, specs.length, 0x00, 0x00, 0x00, challenge.length]), specs, challenge])
  return Buffer.concat([Buffer.from([0x80, body.length]), body])
}

async function stillServes(t: { is(a: unknown, b: unknown, m?: string): void }, port: number) {
  const r = await httpsRequest(port)
  t.is(r.body.toString(), 'hello over https', 'the server still answers https')
}

// ---------------------------------------------------------------------------
// Plaintext on the TLS port
// ---------------------------------------------------------------------------

test('plaintext GET / HTTP/1.1 to the TLS port: a TLS alert (first byte 0x15), then the close; the server goes on', async (t) => {
  // a long headerTimeout: the close must come from the refusal, not from a timer
  const { port } = await useTlsApp(t, hello, undefined, { headerTimeout: 60_000, keepAliveTimeout: 60_000 })
  const c = await Tcp.connect(port)
  t.teardown(() => c.destroy())
  c.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const elapsed = await c.waitClose(10_000, 'the server to close a plaintext request on the TLS port')
  const got = c.received
  t.true(got.length > 0, 'something was sent before the close')
  t.is(got[0], 0x15, `the first byte is the alert content type; got ${got.subarray(0, 16).toString('hex')}`)
  t.false(got.toString('latin1').includes('HTTP/1.1'), 'no plaintext HTTP answer')
  t.true(elapsed < 10_000, `closed after ${Math.round(elapsed)} ms`)
  await stillServes(t, port)
})

test('junk before the handshake: random bytes, an oversized record, an SSLv2-style hello: each connection closed promptly, the server goes on', async (t) => {
  const { port } = await useTlsApp(t, hello, undefined, { headerTimeout: 60_000, keepAliveTimeout: 60_000 })
  const junk: Array<[string, Buffer]> = [
    ['random bytes with a bad content type', Buffer.concat([Buffer.from([0x00]), randomBytes(1024)])],
    ['a handshake record header claiming 65535 bytes', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), randomBytes(64)])],
    ['an SSLv2-compatible ClientHello', sslv2ClientHello()],
    ['a handshake record that is not a ClientHello', Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x0b, 0x00, 0x00, 0x00])],
    ['an application data record before any handshake', Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), randomBytes(32)])],
  ]
  for (const [name, bytes] of junk) {
    const c = await Tcp.connect(port)
    t.teardown(() => c.destroy())
    c.write(bytes)
    await c.waitClose(PATIENCE_MS, `the server to close after ${name}`)
    t.pass(name)
  }
  await stillServes(t, port)
})

// ---------------------------------------------------------------------------
// Handshakes that do not finish
// ---------------------------------------------------------------------------

const slow = { headerTimeout: 500, keepAliveTimeout: 60_000 }

test('a client that connects and sends nothing is closed after headerTimeout', async (t) => {
  const { port } = await useTlsApp(t, hello, undefined, slow)
  const c = await Tcp.connect(port)
  t.teardown(() => c.destroy())
  const elapsed = await c.waitClose(10_000, 'the server to close a silent connection (headerTimeout 500 ms, keepAliveTimeout 60 s)')
  t.true(elapsed >= 250, `not before the timeout: closed after ${Math.round(elapsed)} ms`)
  await stillServes(t, port)
})

test('a client that sends half a ClientHello is closed after headerTimeout', async (t) => {
  const hello_ = await realClientHello()
  t.is(hello_[0], 0x16)
  const { port } = await useTlsApp(t, hello, undefined, slow)
  const c = await Tcp.connect(port)
  t.teardown(() => c.destroy())
  c.write(hello_.subarray(0, Math.floor(hello_.length / 2)))
  const elapsed = await c.waitClose(10_000, 'the server to close a connection with half a ClientHello')
  t.true(elapsed >= 250, `not before the timeout: closed after ${Math.round(elapsed)} ms`)
  t.true(c.received.length === 0 || c.received[0] === 0x15, `nothing or an alert for half a hello: ${c.received.subarray(0, 16).toString('hex')}`)
  await stillServes(t, port)
})

test('a ClientHello sent one byte every 100 ms is closed after headerTimeout, long before it is complete (each byte does not restart the timer)', async (t) => {
  const helloBytes = await realClientHello()
  const { port } = await useTlsApp(t, hello, undefined, slow)
  const c = await Tcp.connect(port)
  t.teardown(() => c.destroy())
  c.socket.setNoDelay(true)
  let sent = 0
  const timer = setInterval(() => {
    if (sent < helloBytes.length) c.write(helloBytes.subarray(sent, ++sent))
  }, 100)
  t.teardown(() => clearInterval(timer))
  const elapsed = await c.waitClose(10_000, `the server to close a dribbled ClientHello (${helloBytes.length} bytes at 10/s)`)
  clearInterval(timer)
  t.true(sent < helloBytes.length, `closed after ${sent} of ${helloBytes.length} bytes, ${Math.round(elapsed)} ms`)
  await stillServes(t, port)
})

test('a handshake that stalls after the ClientHello (the client never answers the server) is closed after headerTimeout', async (t) => {
  const helloBytes = await realClientHello()
  const { port } = await useTlsApp(t, hello, undefined, slow)
  const c = await Tcp.connect(port)
  t.teardown(() => c.destroy())
  c.write(helloBytes)
  // node's hello offers TLS 1.3 with a key share: the server answers its whole flight and
  // waits for the client's Finished, which never comes
  const elapsed = await c.waitClose(10_000, 'the server to close a handshake the client never finishes')
  t.is(c.received[0], 0x16, 'the server did answer the hello')
  t.true(elapsed >= 250, `closed after ${Math.round(elapsed)} ms`)
  await stillServes(t, port)
})

test('twenty stalled handshakes do not hold up a real client', async (t) => {
  const helloBytes = await realClientHello()
  const { port } = await useTlsApp(t, hello, undefined, { headerTimeout: 30_000, keepAliveTimeout: 60_000 })
  const stalled = await Promise.all(Array.from({ length: 20 }, () => Tcp.connect(port)))
  t.teardown(() => stalled.forEach((c) => c.destroy()))
  stalled.forEach((c, i) => c.write(i % 2 ? helloBytes.subarray(0, 10) : helloBytes))
  const started = performance.now()
  await stillServes(t, port)
  t.true(performance.now() - started < 10_000)
  t.true(stalled.every((c) => c.closedAt === undefined), 'the stalled ones are still waiting (headerTimeout 30 s)')
})

test('clients that give up in the middle of the handshake (50 of them) leave the server serving', async (t) => {
  const helloBytes = await realClientHello()
  const { port } = await useTlsApp(t, hello)
  for (let i = 0; i < 50; i++) {
    const c = await Tcp.connect(port)
    c.write(i % 2 ? helloBytes : helloBytes.subarray(0, 20 + i))
    if (i % 3 === 0) c.socket.resetAndDestroy()
    else c.destroy()
  }
  // and real clients that fail their handshake (they do not trust the certificate)
  const failures = await Promise.all(
    Array.from({ length: 10 }, () =>
      tlsConnect(port, { ca: undefined }).then(
        (s) => {
          s.destroy()
          return 'connected'
        },
        (e: NodeJS.ErrnoException) => e.code ?? e.message,
      ),
    ),
  )
  t.true(failures.every((f) => f !== 'connected'), JSON.stringify(failures))
  await stillServes(t, port)
})

// ---------------------------------------------------------------------------
// Garbage after the handshake
// ---------------------------------------------------------------------------

/** A TLS connection over a TCP socket the test holds, so it can write under the TLS layer. */
async function tlsOverOwnSocket(port: number): Promise<{ tcp: net.Socket; tls: TlsRaw; closed: Promise<void> }> {
  const tcp = net.connect({ port, host: '127.0.0.1' })
  tcp.on('error', () => {})
  const closed = new Promise<void>((resolve) => tcp.once('close', () => resolve()))
  await withTimeout(new Promise<void>((resolve) => tcp.once('connect', () => resolve())), PATIENCE_MS, 'a TCP connect')
  const c = await TlsRaw.connect(port, { socket: tcp })
  await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  const r = await c.readResponse()
  if (r.body.toString() !== 'hello over https') throw new Error(`unexpected answer: ${r.head}`)
  return { tcp, tls: c, closed }
}

for (const [name, garbage] of [
  ['an application data record that does not decrypt', () => Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(64)])],
  ['random bytes with a bad content type', () => Buffer.concat([Buffer.from([0x00]), randomBytes(4096)])],
  ['a plaintext HTTP request under the TLS layer', () => Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')],
] as const) {
  test(`garbage after a finished handshake (${name}) closes that connection only`, async (t) => {
    const { port } = await useTlsApp(t, hello, undefined, { headerTimeout: 60_000, keepAliveTimeout: 60_000 })
    const other = await TlsRaw.connect(port)
    t.teardown(() => other.destroy())
    await other.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
    t.is((await other.readResponse()).body.toString(), 'hello over https')

    const victim = await tlsOverOwnSocket(port)
    t.teardown(() => victim.tcp.destroy())
    victim.tcp.write(garbage())
    await withTimeout(victim.closed, PATIENCE_MS, `the server to close the connection after ${name}`)
    t.true(victim.tls.closed || victim.tcp.destroyed)

    // the other open connection is untouched, and new ones are served
    await other.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
    t.is((await other.readResponse()).body.toString(), 'hello over https', 'the other connection still works')
    t.false(other.closed)
    await stillServes(t, port)
  })
}

test('a request cut off by a TLS close_notify gets no answer and the server goes on', async (t) => {
  const { port } = await useTlsApp(t, hello)
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  await c.write('GET / HTTP/1.1\r\nHost: local')
  c.socket.end() // close_notify, then FIN
  await c.waitForClose()
  t.false(c.received.toString('latin1').includes('200'), 'half a request is not answered 200')
  await stillServes(t, port)
})
