// Helpers for the WebSocket acceptance tests. Not a spec file.
//
// `RawWs` speaks RFC 6455 by hand over a `node:net` socket (a hand-made handshake, then
// frames built byte by byte by `frame()`), for the tests that send what no real client
// would. `openClient` opens a real client (the `ws` package) and queues what it receives.
// `Recorder` collects what the server's callbacks saw and lets a test wait for it.

import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import WebSocketClient from 'ws'
import { PATIENCE_MS, withTimeout } from './helpers.ts'

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** The Sec-WebSocket-Accept a server must answer for `key`. */
export function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64')
}

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const

export interface FrameOptions {
  fin?: boolean
  /** RSV1..3 as the 3 bits 0b100 (RSV1), 0b010 (RSV2), 0b001 (RSV3) */
  rsv?: number
  opcode: number
  payload?: string | Buffer
  /** client frames are masked unless told otherwise */
  mask?: boolean
  /** announce this payload length in the header instead of the real one */
  announce?: number
}

/** Encodes one frame. With `announce`, the header claims that length whatever the payload. */
export function frame(o: FrameOptions): Buffer {
  const payload = typeof o.payload === 'string' ? Buffer.from(o.payload) : (o.payload ?? Buffer.alloc(0))
  const fin = o.fin ?? true
  const masked = o.mask ?? true
  const len = o.announce ?? payload.length
  const b0 = (fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | (o.opcode & 0x0f)
  let head: Buffer
  if (len < 126) {
    head = Buffer.from([b0, (masked ? 0x80 : 0) | len])
  } else if (len < 65536) {
    head = Buffer.alloc(4)
    head[0] = b0
    head[1] = (masked ? 0x80 : 0) | 126
    head.writeUInt16BE(len, 2)
  } else {
    head = Buffer.alloc(10)
    head[0] = b0
    head[1] = (masked ? 0x80 : 0) | 127
    head.writeBigUInt64BE(BigInt(len), 2)
  }
  if (!masked) return Buffer.concat([head, payload])
  const key = randomBytes(4)
  const body = Buffer.alloc(payload.length)
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3]
  return Buffer.concat([head, key, body])
}

/** The payload of a close frame. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(code, 0)
  return Buffer.concat([b, Buffer.from(reason)])
}

export interface Frame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Buffer
}

/** The close code of a close frame (1005 when it has none) and its reason. */
export function closeInfo(f: Frame): { code: number; reason: string } {
  if (f.payload.length < 2) return { code: 1005, reason: '' }
  return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') }
}

export interface Head {
  status: number
  headers: Record<string, string>
  head: string
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])
  if (!m) throw new Error(`malformed status line: ${JSON.stringify(lines[0])}`)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':')
    if (i <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`)
    const k = line.slice(0, i).trim().toLowerCase()
    const v = line.slice(i + 1).trim()
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v
  }
  return { status: Number(m[1]), headers, head: text }
}

export function handshakeRequest(path: string, headers: Record<string, string> = {}, key = randomBytes(16).toString('base64')): string {
  const all: Record<string, string> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    ...headers,
  }
  const lines = [`GET ${path} HTTP/1.1`]
  for (const [k, v] of Object.entries(all)) if (v !== '') lines.push(`${k}: ${v}`)
  return lines.join('\r\n') + '\r\n\r\n'
}

/**
 * A WebSocket client written by hand over `node:net`: the handshake's response head is
 * parsed, then every byte after it as server frames (which must be unmasked).
 */
export class RawWs {
  readonly socket: net.Socket
  /** the response head, once it has arrived */
  response: Head | undefined
  /** bytes after the response head that are not a complete frame yet */
  private pending: Buffer = Buffer.alloc(0)
  private headBuf: Buffer = Buffer.alloc(0)
  /** every frame received, in order */
  readonly frames: Frame[] = []
  /** frames before this index were taken by `nextFrame` */
  private taken = 0
  /** the bytes after the head received so far */
  bytes = 0
  ended = false
  closed = false
  error: Error | undefined
  /** when the server's FIN or RST arrived (performance.now()) */
  closedAt: number | undefined
  private waiters = new Set<() => void>()
  /** `frames` is not filled: only `bytes` counts (for the tests that receive MiBs) */
  countOnly = false
  private rawAfterHead: Buffer[] = []

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => this.onData(d))
    socket.on('end', () => {
      this.ended = true
      this.closedAt ??= performance.now()
      this.notify()
    })
    socket.on('close', () => {
      this.closed = true
      this.closedAt ??= performance.now()
      this.notify()
    })
    socket.on('error', (e) => {
      this.error = e
      this.closedAt ??= performance.now()
      this.notify()
    })
  }

  static connect(port: number): Promise<RawWs> {
    return withTimeout(
      new Promise<RawWs>((resolve, reject) => {
        // not half-open: like any client, it ends its side when the server ends its own
        const socket = net.connect({ port, host: '127.0.0.1' })
        socket.once('connect', () => {
          socket.removeAllListeners('error')
          resolve(new RawWs(socket))
        })
        socket.once('error', reject)
      }),
      PATIENCE_MS,
      `connecting to 127.0.0.1:${port}`,
    )
  }

  /** Connects, sends a handshake and waits for the response head (any status). */
  static async handshake(port: number, path = '/', headers: Record<string, string> = {}, key?: string): Promise<RawWs> {
    const c = await RawWs.connect(port)
    c.socket.write(handshakeRequest(path, headers, key))
    await c.waitFor(() => c.response !== undefined, PATIENCE_MS, 'the handshake response head')
    return c
  }

  /** `handshake` that insists on 101 and a correct accept. */
  static async open(port: number, path = '/', headers: Record<string, string> = {}): Promise<RawWs> {
    const key = randomBytes(16).toString('base64')
    const c = await RawWs.handshake(port, path, headers, key)
    const r = c.response!
    if (r.status !== 101) {
      c.destroy()
      throw new Error(`expected 101, got ${r.status}: ${r.head}`)
    }
    if (r.headers['sec-websocket-accept'] !== acceptFor(key)) {
      c.destroy()
      throw new Error(`wrong Sec-WebSocket-Accept: ${r.head}`)
    }
    return c
  }

  private onData(d: Buffer) {
    if (this.response === undefined) {
      this.headBuf = Buffer.concat([this.headBuf, d])
      const end = this.headBuf.indexOf('\r\n\r\n')
      if (end < 0) return this.notify()
      this.response = parseHead(this.headBuf.subarray(0, end).toString('latin1'))
      d = this.headBuf.subarray(end + 4)
      this.headBuf = Buffer.alloc(0)
    }
    this.bytes += d.length
    if (this.countOnly) {
      this.rawAfterHead.push(d)
    } else {
      this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d
      this.parse()
    }
    this.notify()
  }

  private parse() {
    for (;;) {
      const b = this.pending
      if (b.length < 2) return
      const masked = (b[1] & 0x80) !== 0
      let len = b[1] & 0x7f
      let pos = 2
      if (len === 126) {
        if (b.length < 4) return
        len = b.readUInt16BE(2)
        pos = 4
      } else if (len === 127) {
        if (b.length < 10) return
        len = Number(b.readBigUInt64BE(2))
        pos = 10
      }
      let key: Buffer | undefined
      if (masked) {
        if (b.length < pos + 4) return
        key = b.subarray(pos, pos + 4)
        pos += 4
      }
      if (b.length < pos + len) return
      let payload = Buffer.from(b.subarray(pos, pos + len))
      if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]
      this.frames.push({ fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, payload })
      this.pending = b.subarray(pos + len)
    }
  }

  /** Parses what `countOnly` collected (call once, at the end). */
  parseCollected(): Frame[] {
    this.pending = Buffer.concat([this.pending, ...this.rawAfterHead])
    this.rawAfterHead = []
    this.parse()
    return this.frames
  }

  private notify() {
    for (const w of [...this.waiters]) w()
  }

  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())))
  }

  send(o: FrameOptions): Promise<void> {
    return this.write(frame(o))
  }

  /** Waits until `pred()`; rejects after `ms` with what was received. */
  waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let ok = false
        try {
          ok = pred()
        } catch (e) {
          done()
          return reject(e)
        }
        if (ok) {
          done()
          resolve()
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${what}; ended=${this.ended} closed=${this.closed} error=${this.error?.message ?? 'none'}` +
              ` head=${JSON.stringify(this.response?.head ?? this.headBuf.toString('latin1'))}` +
              ` frames=${JSON.stringify(this.frames.map((f) => ({ op: f.opcode, fin: f.fin, len: f.payload.length, start: f.payload.subarray(0, 40).toString('latin1') })))}`,
          ),
        )
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  /** The next frame not taken yet. */
  async nextFrame(ms = PATIENCE_MS, what = 'a frame'): Promise<Frame> {
    await this.waitFor(() => this.frames.length > this.taken, ms, what)
    return this.frames[this.taken++]
  }

  /** Skips frames up to and including the first close frame, and returns its code and reason. */
  async closeFrame(ms = PATIENCE_MS): Promise<{ code: number; reason: string; frame: Frame }> {
    await this.waitFor(() => this.frames.slice(this.taken).some((f) => f.opcode === OP.CLOSE), ms, 'a close frame')
    while (this.frames[this.taken].opcode !== OP.CLOSE) this.taken++
    const f = this.frames[this.taken++]
    return { ...closeInfo(f), frame: f }
  }

  /** Waits until the server ends or resets the TCP connection. */
  waitForClose(ms = PATIENCE_MS): Promise<void> {
    return this.waitFor(() => this.ended || this.closed || this.error !== undefined, ms, 'the server to close the TCP connection')
  }

  get isOpen(): boolean {
    return !this.ended && !this.closed && this.error === undefined
  }

  destroy() {
    this.socket.destroy()
  }
}

/** Something to wait on: a list of what happened, and waiting for a condition on it. */
export class Recorder<T> {
  readonly items: T[] = []
  private waiters = new Set<() => void>()

  push = (item: T) => {
    this.items.push(item)
    for (const w of [...this.waiters]) w()
  }

  get length() {
    return this.items.length
  }

  waitFor(pred: (items: T[]) => boolean, what: string, ms = PATIENCE_MS): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this.items)) {
          done()
          resolve(this.items)
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; have ${JSON.stringify(this.items).slice(0, 800)}`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  /** Waits until there are at least `n` items. */
  count(n: number, what = `${n} item(s)`, ms = PATIENCE_MS): Promise<T[]> {
    return this.waitFor((items) => items.length >= n, what, ms)
  }
}

export interface Received {
  data: Buffer
  isBinary: boolean
  text: string
}

/** A `ws` client that queues its messages and remembers how it closed. */
export class Client {
  readonly ws: WebSocketClient
  readonly messages = new Recorder<Received>()
  readonly pings = new Recorder<Buffer>()
  private taken = 0
  readonly closed: Promise<{ code: number; reason: string }>
  closeInfo: { code: number; reason: string } | undefined
  errors: Error[] = []
  /** named in timeouts */
  label = 'client'

  constructor(ws: WebSocketClient) {
    this.ws = ws
    ws.on('message', (data: Buffer, isBinary: boolean) => this.messages.push({ data, isBinary, text: data.toString('utf8') }))
    ws.on('ping', (d: Buffer) => this.pings.push(d))
    ws.on('error', (e) => this.errors.push(e))
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString('utf8') }
        resolve(this.closeInfo)
      })
    })
  }

  async next(ms = PATIENCE_MS): Promise<Received> {
    await this.messages.count(this.taken + 1, `${this.label}: message #${this.taken + 1}`, ms)
    return this.messages.items[this.taken++]
  }

  /** The next message, which must be text; returns it. */
  async nextText(ms = PATIENCE_MS): Promise<string> {
    const m = await this.next(ms)
    if (m.isBinary) throw new Error(`expected a text message, got ${m.data.length} binary bytes`)
    return m.text
  }

  send(data: string | Buffer, options: { binary?: boolean; compress?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => this.ws.send(data, options, (e) => (e ? reject(e) : resolve())))
  }

  waitClosed(ms = PATIENCE_MS) {
    return withTimeout(this.closed, ms, 'the client to see the close')
  }

  close(code?: number, reason?: string) {
    this.ws.close(code, reason)
  }
}

export interface ClientOptions extends WebSocketClient.ClientOptions {
  protocols?: string | string[]
}

/** Opens a `ws` client to ws://127.0.0.1:port/path; rejects if it does not open. */
export function openClient(port: number, path = '/', options: ClientOptions = {}): Promise<Client> {
  const { protocols, ...rest } = options
  const ws = new WebSocketClient(`ws://127.0.0.1:${port}${path}`, protocols ?? [], { perMessageDeflate: false, ...rest })
  const client = new Client(ws)
  return withTimeout(
    new Promise<Client>((resolve, reject) => {
      ws.once('open', () => resolve(client))
      ws.once('unexpected-response', (req, res) => {
        req.destroy()
        reject(new Error(`unexpected response ${res.statusCode}`))
      })
      ws.once('error', reject)
      ws.once('close', (code) => reject(new Error(`closed with ${code} before opening`)))
    }),
    PATIENCE_MS,
    `a ws client to open ws://127.0.0.1:${port}${path}`,
  )
}

interface TeardownContext {
  teardown(fn: () => unknown): void
}

/** `openClient` that terminates the client when the test ends. */
export async function useClient(t: TeardownContext, port: number, path = '/', options: ClientOptions = {}): Promise<Client> {
  const c = await openClient(port, path, options)
  t.teardown(() => c.ws.terminate())
  return c
}

/** `RawWs.open` that destroys the socket when the test ends. */
export async function useRaw(t: TeardownContext, port: number, path = '/', headers: Record<string, string> = {}): Promise<RawWs> {
  const c = await RawWs.open(port, path, headers)
  t.teardown(() => c.destroy())
  return c
}

/** A string of `n` bytes of printable ASCII (so its UTF-8 length is `n`). */
export function asciiOf(n: number, seed = 0): string {
  let s = ''
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  const chunk = Array.from({ length: 4096 }, (_, i) => alphabet[(i * 7 + seed) % alphabet.length]).join('')
  while (s.length < n) s += chunk
  return s.slice(0, n)
}

/** The length of a server frame (unmasked) carrying `n` payload bytes. */
export function frameLength(n: number): number {
  return n + (n < 126 ? 2 : n < 65536 ? 4 : 10)
}
