// Helpers for the HTTP/2 tests. Not a spec file.
//
// `h2session` / `h2get` talk through `node:http2`; `RawH2` writes frames by hand (an HPACK
// encoder of literals and static-table indexes, no Huffman) and reads the frames the server
// sends, for what no well-behaved client does (floods, resets, stream limits);
// `ensureNghttp` installs Debian's nghttp2-client when `nghttp` is missing.

import { spawnSync } from 'node:child_process'
import http2 from 'node:http2'
import net from 'node:net'
import { PATIENCE_MS, withTimeout } from './helpers.ts'

interface TeardownContext {
  teardown(fn: () => unknown): void
}

/** A `node:http2` session to `base` (`http://127.0.0.1:PORT`), closed when the test ends. */
export async function h2session(t: TeardownContext, base: string, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(base, options)
  session.on('error', () => {})
  t.teardown(() => {
    if (!session.destroyed) session.destroy()
  })
  await withTimeout(new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve())
    session.once('error', reject)
  }), PATIENCE_MS, 'an HTTP/2 session to connect')
  return session
}

export interface H2Response {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
}

/** One request on `session`; resolves with the whole response. */
export function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer, ms = PATIENCE_MS): Promise<H2Response> {
  const req = session.request(headers, { endStream: body === undefined })
  const done = new Promise<H2Response>((resolve, reject) => {
    let status = 0
    let got: http2.IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    req.on('response', (h) => {
      got = h
      status = Number(h[':status'])
    })
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve({ status, headers: got, body: Buffer.concat(chunks) }))
    req.on('error', reject)
  })
  if (body !== undefined) req.end(body)
  return withTimeout(done, ms, `the answer to ${headers[':method'] ?? 'GET'} ${headers[':path']}`)
}

export const h2get = (session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}) => h2request(session, { ':path': path, ...headers })

/** Whether `nghttp` runs here; installs Debian's nghttp2-client (as root, or with sudo -n) if not. */
export function ensureNghttp(): boolean {
  const has = () => spawnSync('nghttp', ['--version'], { encoding: 'utf8' }).status === 0
  if (has()) return true
  const root = typeof process.getuid === 'function' && process.getuid() === 0
  const apt = ['apt-get', 'install', '-y', '--no-install-recommends', 'nghttp2-client']
  const r = root ? spawnSync(apt[0], apt.slice(1), { stdio: 'ignore' }) : spawnSync('sudo', ['-n', ...apt], { stdio: 'ignore' })
  return r.status === 0 && has()
}

// ---------------------------------------------------------------------------
// Frames by hand
// ---------------------------------------------------------------------------

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
export const DATA = 0
export const HEADERS = 1
export const RST_STREAM = 3
export const SETTINGS = 4
export const PING = 6
export const GOAWAY = 7
export const WINDOW_UPDATE = 8
export const CONTINUATION = 9
export const END_STREAM = 1
export const ACK = 1
export const END_HEADERS = 4
export const NO_ERROR = 0
export const PROTOCOL_ERROR = 1
export const REFUSED_STREAM = 7
export const CANCEL = 8
export const ENHANCE_YOUR_CALM = 11

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** An HPACK integer with an `n`-bit prefix, `first` holding the bits above it. */
function hpackInt(value: number, n: number, first: number): Buffer {
  const max = (1 << n) - 1
  if (value < max) return Buffer.from([first | value])
  const bytes = [first | max]
  value -= max
  while (value >= 128) {
    bytes.push((value % 128) + 128)
    value = Math.floor(value / 128)
  }
  bytes.push(value)
  return Buffer.from(bytes)
}

function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s
  return Buffer.concat([hpackInt(b.length, 7, 0), b])
}

/** A header block: `:method`, `:scheme http`, `:path`, `:authority`, then `extra`, all literals without indexing. */
export function headerBlock(method: string, path: string, extra: Array<[string, string]> = []): Buffer {
  const parts = [
    hpackInt(2, 4, 0), hpackString(method), // :method (static index 2's name)
    Buffer.from([0x86]), // :scheme http
    hpackInt(4, 4, 0), hpackString(path), // :path
    hpackInt(1, 4, 0), hpackString('localhost'), // :authority
  ]
  for (const [name, value] of extra) parts.push(Buffer.from([0]), hpackString(name), hpackString(value))
  return Buffer.concat(parts)
}

export interface Frame {
  type: number
  flags: number
  stream: number
  payload: Buffer
}

/** A raw HTTP/2 client over `node:net`: frames written as given, frames read as they come. */
export class RawH2 {
  readonly socket: net.Socket
  readonly frames: Frame[] = []
  closed = false
  private buf = Buffer.alloc(0)
  private waiters: Array<() => void> = []

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3)
        if (this.buf.length < 9 + len) break
        this.frames.push({ type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) })
        this.buf = this.buf.subarray(9 + len)
      }
      this.wake()
    })
    const end = () => {
      this.closed = true
      this.wake()
    }
    socket.on('close', end)
    socket.on('end', end)
    socket.on('error', end)
  }

  /** Connects, sends the preface and empty SETTINGS; with `ack`, waits for the server's SETTINGS and acknowledges them. */
  static async connect(t: TeardownContext, port: number, ack = true): Promise<RawH2> {
    const socket = net.connect(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    }), PATIENCE_MS, 'a TCP connection')
    const c = new RawH2(socket)
    socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]))
    if (ack) {
      await c.waitFor((f) => f.type === SETTINGS && (f.flags & ACK) === 0, 'the server SETTINGS')
      socket.write(frame(SETTINGS, ACK, 0))
    }
    return c
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  write(...frames: Buffer[]): boolean {
    return this.socket.write(Buffer.concat(frames))
  }

  /** Resolves with the first frame (from the start) that `pred` accepts. */
  waitFor(pred: (f: Frame) => boolean, what: string, ms = PATIENCE_MS): Promise<Frame> {
    return withTimeout(new Promise<Frame>((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(pred)
        if (found) return resolve(found)
        if (this.closed) return reject(new Error(`the connection closed before ${what}`))
        this.waiters.push(check)
      }
      check()
    }), ms, what)
  }

  /** Resolves once the server closed the connection. */
  waitClosed(ms = PATIENCE_MS): Promise<void> {
    return withTimeout(new Promise<void>((resolve) => {
      const check = () => (this.closed ? resolve() : this.waiters.push(check))
      check()
    }), ms, 'the server to close the connection')
  }

  /** The GOAWAY's error code, once one came. */
  async goaway(ms = PATIENCE_MS): Promise<number> {
    const f = await this.waitFor((f) => f.type === GOAWAY, 'a GOAWAY', ms)
    return f.payload.readUInt32BE(4)
  }
}

export const rst = (stream: number, code: number) => {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(code)
  return frame(RST_STREAM, 0, stream, p)
}

export const errorCode = (f: Frame) => f.payload.readUInt32BE(f.type === GOAWAY ? 4 : 0)
