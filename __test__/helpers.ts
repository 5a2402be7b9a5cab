// Shared helpers for the acceptance tests. Not a spec file.
//
// Everything here talks to a real server over real sockets: `startApp` starts an
// App on 127.0.0.1 port 0, `RawClient` / `rawRequest` speak raw HTTP/1.1 over
// `node:net`, and `parseResponses` is a small HTTP/1.1 response parser that
// understands Content-Length, chunked and close-delimited bodies so pipelined
// response streams can be split into responses.

import { createHash } from 'node:crypto'
import net from 'node:net'
import { App } from 'harrier'

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * How long to wait for something that must happen before a test gives up on it. Only a
 * test that fails waits this long, so it is generous: on a loaded machine (every core
 * busy, ava running test files side by side) an answer due at once can take seconds.
 * An upper bound that a test asserts on purpose is the test's own business, not this.
 */
export const PATIENCE_MS = 15_000

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (reason?: unknown) => void
  settled: boolean
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (reason?: unknown) => void
  const d = { settled: false } as Deferred<T>
  d.promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  d.resolve = (v: T) => {
    d.settled = true
    resolve(v)
  }
  d.reject = (e?: unknown) => {
    d.settled = true
    reject(e)
  }
  return d
}

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `pred` every 5 ms; rejects if it is not true within `ms`. */
export async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
    await sleep(5)
  }
}

/** `fetch` with a timeout so a test never hangs on a server that does not answer. */
export function fetchT(url: string, init: RequestInit & { duplex?: 'half' } = {}, ms = PATIENCE_MS): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(ms), ...init } as RequestInit)
}

// ---------------------------------------------------------------------------
// Starting and closing apps
// ---------------------------------------------------------------------------

export type AppOptions = ConstructorParameters<typeof App>[0]

export interface Started {
  app: App
  port: number
  host: string
  base: string
}

/** Builds an App, listens on 127.0.0.1 port 0 and returns the port and base URL. */
export async function startApp(build: (app: App) => void, options?: AppOptions): Promise<Started> {
  const app = options === undefined ? new App() : new App(options)
  build(app)
  const addr = await withTimeout(
    Promise.resolve(app.listen({ port: 0, host: '127.0.0.1', signals: false })),
    PATIENCE_MS,
    'app.listen() to resolve',
  )
  const port = addr.port
  if (typeof port !== 'number' || port <= 0) {
    await closeApp(app)
    throw new Error(`listen() resolved with an invalid port: ${JSON.stringify(addr)}`)
  }
  return { app, port, host: addr.host, base: `http://127.0.0.1:${port}` }
}

/** `app.close()` that fails instead of hanging when close never resolves. */
export async function closeApp(app: App, ms = PATIENCE_MS): Promise<void> {
  await withTimeout(Promise.resolve(app.close()), ms, 'app.close() to resolve')
}

interface TeardownContext {
  teardown(fn: () => unknown): void
}

/** `startApp` + registers `app.close()` as a teardown of the test `t` (runs also when the test fails). */
export async function useApp(t: TeardownContext, build: (app: App) => void, options?: AppOptions): Promise<Started> {
  const started = await startApp(build, options)
  let closed = false
  t.teardown(async () => {
    if (closed) return
    closed = true
    await closeApp(started.app)
  })
  return started
}

// ---------------------------------------------------------------------------
// HTTP/1.1 response parser
// ---------------------------------------------------------------------------

export interface ParsedResponse {
  version: string
  status: number
  statusText: string
  /** lower-case names; repeated headers joined with ", " */
  headers: Record<string, string>
  rawHeaders: Array<[string, string]>
  /** the status line and header lines as received */
  head: string
  /** decoded body (chunked framing removed) */
  body: Buffer
  chunked: boolean
  /** number of non-empty chunks when chunked */
  chunkCount: number
  trailers: Record<string, string>
  /** 1xx responses received before this final response */
  informational: ParsedResponse[]
}

export class HttpParseError extends Error {}

export interface ParseOptions {
  /** request methods in order, used to know which final responses have no body (HEAD) */
  methods?: string[]
  /** the peer has closed: a response without length is delimited by the end */
  ended?: boolean
  /** stop after this many final responses */
  max?: number
}

export interface ParseResult {
  /** complete final (status >= 200) responses */
  responses: ParsedResponse[]
  /** bytes used by the complete responses (including the 1xx ones before them) */
  consumed: number
  /** a partial response follows the complete ones */
  incomplete: boolean
}

const CRLF = Buffer.from('\r\n')
const CRLFCRLF = Buffer.from('\r\n\r\n')

function parseHead(text: string): Omit<ParsedResponse, 'body' | 'chunked' | 'chunkCount' | 'trailers' | 'informational'> {
  const lines = text.split('\r\n')
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0])
  if (!m) throw new HttpParseError(`malformed status line: ${JSON.stringify(lines[0])}`)
  const headers: Record<string, string> = {}
  const rawHeaders: Array<[string, string]> = []
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':')
    if (i <= 0) throw new HttpParseError(`malformed header line: ${JSON.stringify(line)}`)
    const name = line.slice(0, i)
    const value = line.slice(i + 1).trim()
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new HttpParseError(`invalid header name: ${JSON.stringify(name)}`)
    rawHeaders.push([name, value])
    const key = name.toLowerCase()
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value
  }
  return { version: m[1], status: Number(m[2]), statusText: m[3] ?? '', headers, rawHeaders, head: text }
}

/** Parses a chunked body starting at `pos`. Returns null when more bytes are needed. */
function parseChunked(buf: Buffer, pos: number): { body: Buffer; end: number; chunkCount: number; trailers: Record<string, string> } | null {
  const parts: Buffer[] = []
  let chunkCount = 0
  for (;;) {
    const eol = buf.indexOf(CRLF, pos)
    if (eol < 0) return null
    const line = buf.subarray(pos, eol).toString('latin1')
    const sizeText = line.split(';')[0].trim()
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new HttpParseError(`malformed chunk size line: ${JSON.stringify(line)}`)
    const size = parseInt(sizeText, 16)
    pos = eol + 2
    if (size === 0) {
      // trailer section, ended by an empty line
      const trailers: Record<string, string> = {}
      for (;;) {
        const e = buf.indexOf(CRLF, pos)
        if (e < 0) return null
        const tl = buf.subarray(pos, e).toString('latin1')
        pos = e + 2
        if (tl === '') return { body: Buffer.concat(parts), end: pos, chunkCount, trailers }
        const i = tl.indexOf(':')
        if (i <= 0) throw new HttpParseError(`malformed trailer line: ${JSON.stringify(tl)}`)
        trailers[tl.slice(0, i).toLowerCase()] = tl.slice(i + 1).trim()
      }
    }
    if (buf.length < pos + size + 2) return null
    parts.push(buf.subarray(pos, pos + size))
    chunkCount++
    if (buf[pos + size] !== 0x0d || buf[pos + size + 1] !== 0x0a) {
      throw new HttpParseError(`chunk of ${size} bytes not followed by CRLF`)
    }
    pos += size + 2
  }
}

/**
 * Parses as many complete responses as `buf` holds. 1xx responses are attached
 * to the final response that follows them. Throws HttpParseError on bytes that
 * are not valid HTTP/1.x responses.
 */
export function parseResponses(buf: Buffer, opts: ParseOptions = {}): ParseResult {
  const responses: ParsedResponse[] = []
  let informational: ParsedResponse[] = []
  let pos = 0
  let consumed = 0
  while (pos < buf.length && (opts.max === undefined || responses.length < opts.max)) {
    const headEnd = buf.indexOf(CRLFCRLF, pos)
    if (headEnd < 0) {
      // sanity check on what we have so far
      const sofar = buf.subarray(pos, Math.min(buf.length, pos + 5)).toString('latin1')
      if (!'HTTP/'.startsWith(sofar) && !sofar.startsWith('HTTP/')) {
        throw new HttpParseError(`expected a status line, got ${JSON.stringify(buf.subarray(pos, pos + 80).toString('latin1'))}`)
      }
      return { responses, consumed, incomplete: true }
    }
    const head = parseHead(buf.subarray(pos, headEnd).toString('latin1'))
    let bodyStart = headEnd + 4
    const base = { ...head, body: Buffer.alloc(0), chunked: false, chunkCount: 0, trailers: {}, informational: [] as ParsedResponse[] }
    if (head.status >= 100 && head.status < 200) {
      informational.push(base)
      pos = bodyStart
      continue
    }
    const method = (opts.methods?.[responses.length] ?? 'GET').toUpperCase()
    const te = head.headers['transfer-encoding']
    const cl = head.headers['content-length']
    let response: ParsedResponse
    if (method === 'HEAD' || head.status === 204 || head.status === 304) {
      response = base
      pos = bodyStart
    } else if (te !== undefined && /(^|,)\s*chunked\s*$/i.test(te)) {
      const parsed = parseChunked(buf, bodyStart)
      if (!parsed) return { responses, consumed, incomplete: true }
      response = { ...base, body: Buffer.from(parsed.body), chunked: true, chunkCount: parsed.chunkCount, trailers: parsed.trailers }
      pos = parsed.end
    } else if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new HttpParseError(`invalid content-length: ${JSON.stringify(cl)}`)
      const len = Number(cl)
      if (buf.length < bodyStart + len) return { responses, consumed, incomplete: true }
      response = { ...base, body: Buffer.from(buf.subarray(bodyStart, bodyStart + len)) }
      pos = bodyStart + len
    } else {
      // close-delimited body
      if (!opts.ended) return { responses, consumed, incomplete: true }
      response = { ...base, body: Buffer.from(buf.subarray(bodyStart)) }
      pos = buf.length
    }
    response.informational = informational
    informational = []
    responses.push(response)
    consumed = pos
  }
  return { responses, consumed, incomplete: pos < buf.length || informational.length > 0 }
}

// ---------------------------------------------------------------------------
// Raw sockets
// ---------------------------------------------------------------------------

/** A raw TCP client with waiting helpers that always time out instead of hanging. */
export class RawClient {
  readonly socket: net.Socket
  private chunks: Buffer[] = []
  private total = 0
  private cursor = 0
  private waiters = new Set<() => void>()
  /** the server sent FIN */
  ended = false
  /** the socket is fully closed */
  closed = false
  error: Error | undefined

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d)
      this.total += d.length
      this.notify()
    })
    socket.on('end', () => {
      this.ended = true
      this.notify()
    })
    socket.on('close', () => {
      this.closed = true
      this.notify()
    })
    socket.on('error', (e) => {
      this.error = e
      this.notify()
    })
  }

  static connect(port: number, ms = PATIENCE_MS): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`timed out after ${ms} ms connecting to 127.0.0.1:${port}`))
      }, ms)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new RawClient(socket))
      })
      socket.once('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
    })
  }

  private notify() {
    for (const w of [...this.waiters]) w()
  }

  /** Every byte received so far. */
  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0] ?? Buffer.alloc(0)
  }

  /** Bytes received and not yet consumed by `readResponses`. */
  get unread(): Buffer {
    return this.received.subarray(this.cursor)
  }

  get receivedText(): string {
    return this.received.toString('latin1')
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()))
    })
  }

  /** Waits until `pred()` is true; rejects after `ms` (or if `pred` throws). */
  waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let ok: boolean
        try {
          ok = pred()
        } catch (e) {
          done()
          reject(e)
          return
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
            `timed out after ${ms} ms waiting for ${what}; ended=${this.ended} closed=${this.closed}` +
              ` error=${this.error?.message ?? 'none'}; received ${this.total} bytes: ` +
              JSON.stringify(this.received.subarray(0, 600).toString('latin1')),
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

  /** Waits until the unread bytes contain `text`. */
  waitForText(text: string, ms = PATIENCE_MS): Promise<void> {
    return this.waitFor(() => this.unread.toString('latin1').includes(text), ms, JSON.stringify(text))
  }

  /**
   * Waits for `n` complete final responses after the ones already read, and
   * consumes them. `methods` lists the request methods for these responses.
   */
  async readResponses(n: number, opts: { methods?: string[]; ms?: number } = {}): Promise<ParsedResponse[]> {
    let result: ParseResult | undefined
    await this.waitFor(
      () => {
        result = parseResponses(this.unread, { methods: opts.methods, ended: this.ended, max: n })
        if (result.responses.length >= n) return true
        if (this.ended || this.closed) {
          throw new Error(
            `connection closed by the server after ${result.responses.length} of ${n} responses; received: ` +
              JSON.stringify(this.received.subarray(0, 600).toString('latin1')),
          )
        }
        return false
      },
      opts.ms ?? PATIENCE_MS,
      `${n} response(s)`,
    )
    this.cursor += result!.consumed
    return result!.responses
  }

  async readResponse(opts: { method?: string; ms?: number } = {}): Promise<ParsedResponse> {
    const [r] = await this.readResponses(1, { methods: opts.method ? [opts.method] : undefined, ms: opts.ms })
    return r
  }

  /** Waits until the server ends (FIN) or closes (RST) the connection. */
  waitForClose(ms = PATIENCE_MS): Promise<void> {
    return this.waitFor(() => this.ended || this.closed || this.error !== undefined, ms, 'the server to close the connection')
  }

  /** True if the connection is still open after `ms` of silence from the server side. */
  async staysOpen(ms = 150): Promise<boolean> {
    await sleep(ms)
    return !this.ended && !this.closed && this.error === undefined
  }

  destroy() {
    this.socket.destroy()
  }
}

export interface RawRequestOptions {
  /** number of final responses to wait for, or 'end' to wait for the server to close the connection */
  until?: number | 'end'
  methods?: string[]
  ms?: number
}

export interface RawResult {
  responses: ParsedResponse[]
  raw: Buffer
  /** the server closed the connection */
  ended: boolean
}

/**
 * Connects, writes `bytes` in a single write and collects the response stream
 * until `until` responses were parsed or the server closed the connection.
 * Fails after `ms` (default PATIENCE_MS).
 */
export async function rawRequest(port: number, bytes: string | Uint8Array, opts: RawRequestOptions = {}): Promise<RawResult> {
  const until = opts.until ?? 1
  const client = await RawClient.connect(port)
  try {
    await client.write(bytes)
    if (until === 'end') {
      await client.waitForClose(opts.ms ?? PATIENCE_MS)
      const parsed = parseResponses(client.received, { methods: opts.methods, ended: true })
      if (parsed.incomplete) {
        throw new Error(`connection closed in the middle of a response: ${JSON.stringify(client.receivedText.slice(0, 600))}`)
      }
      return { responses: parsed.responses, raw: client.received, ended: true }
    }
    const responses = await client.readResponses(until, { methods: opts.methods, ms: opts.ms })
    return { responses, raw: client.received, ended: client.ended || client.closed }
  } finally {
    client.destroy()
  }
}

/** Formats a simple request. `headers` may be given as an object or a list of lines. */
export function rawReq(method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer, version = 'HTTP/1.1'): Buffer {
  const lines = [`${method} ${path} ${version}`]
  const hasHost = Object.keys(headers).some((k) => k.toLowerCase() === 'host')
  if (!hasHost) lines.push('Host: 127.0.0.1')
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  return body === undefined ? head : Buffer.concat([head, Buffer.from(body)])
}

/** Encodes `parts` as a chunked request body (including the final 0-chunk). */
export function chunkedBody(parts: Array<string | Buffer>): Buffer {
  const out: Buffer[] = []
  for (const p of parts) {
    const b = Buffer.from(p)
    if (b.length === 0) continue
    out.push(Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n'))
  }
  out.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(out)
}

/** Attempts a TCP connection; resolves with the error code if it fails, or 'connected'. */
export function tryConnect(port: number, ms = PATIENCE_MS): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const timer = setTimeout(() => {
      socket.destroy()
      resolve('timeout')
    }, ms)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve(e.code ?? e.message)
    })
  })
}

export const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/
