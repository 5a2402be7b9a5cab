import { parse as parseQuery, type ParsedUrlQuery } from 'node:querystring'

import { parseCookies } from './cookies'
import { formKind, parseFormData, unparsable } from './form-data'
import type { ReplyBuffer } from './reply-buffer'
import { FLAG_HAS_BODY, FLAG_HTTP10, FLAG_HTTP2, FLAG_PEER, FLAG_SECURE, OP_CONSUMED, REQUEST_FIXED_WORDS } from './wire'

/* Body bytes taken by the handler are told to the engine in steps of this (or when it waits). */
const ACK_STEP = 16 * 1024

/** A request body that arrives in pieces after the request itself. */
type Waiter = { resolve: () => void; reject: (e: Error) => void }

function abortError(): Error {
  const e = new Error('the client closed the connection before the response was sent')
  e.name = 'AbortError'
  return e
}

/**
 * An incoming request: a view into the bytes of the batch it came in. Nothing is decoded
 * until it is read; the bytes belong to this request's batch, so they stay valid after `await`.
 */
export class Request<Params extends Record<string, string> = Record<string, string>> {
  /** @internal */ readonly thread: number
  /** @internal */ readonly rid: number
  /** @internal */ readonly slot: number
  /** @internal */ readonly route: number
  /** @internal the response to this request, while both are in flight */
  response: import('./response').Response | null = null
  private readonly bytes: Buffer
  private readonly meta: Uint32Array
  private readonly at: number
  private readonly paramNames: readonly string[]
  private _method: string | undefined
  private _url: string | undefined
  private _path: string | undefined
  private _params: Params | undefined
  private _query: ParsedUrlQuery | undefined
  private _headers: Record<string, string> | undefined
  private _cookies: Record<string, string> | undefined
  private _controller: AbortController | undefined
  private _aborted = false
  private chunks: Uint8Array[] = []
  private ended: boolean
  private waiter: Waiter | null = null
  private consumed = false
  /** Body bytes the handler took and the engine has not been told of. */
  private unacked = 0
  /** @internal where `CONSUMED` ops go: the engine holds the client back past its high-water mark */
  out: ReplyBuffer | null = null

  /** @internal */
  constructor(thread: number, bytes: Buffer, meta: Uint32Array, at: number, paramNames: readonly string[]) {
    this.thread = thread
    this.bytes = bytes
    this.meta = meta
    this.at = at
    this.rid = meta[at + 1]
    this.slot = meta[at + 2]
    this.route = meta[at + 3]
    this.paramNames = paramNames
    this.ended = (meta[at + 4] & FLAG_HAS_BODY) === 0
  }

  /** The request method, upper-case as sent. */
  get method(): string {
    return (this._method ??= this.bytes.latin1Slice(this.meta[this.at + 5], this.meta[this.at + 5] + this.meta[this.at + 6]))
  }

  /** The `Last-Event-ID` header an `EventSource` reconnects with; `undefined` when absent. */
  get lastEventId(): string | undefined {
    return this.header('last-event-id')
  }

  /** Whether the request came over TLS (HTTPS, or `wss://` for an upgrade). */
  get secure(): boolean {
    return (this.meta[this.at + 4] & FLAG_SECURE) !== 0
  }

  /** Path and query, exactly as sent. */
  get url(): string {
    return (this._url ??= this.bytes.latin1Slice(this.meta[this.at + 7], this.meta[this.at + 7] + this.meta[this.at + 8]))
  }

  /**
   * @internal `http(s)://` + the Host header + the target (less its first `strip` bytes), as
   * one string made in one copy, when both are already as the URL parser would write them
   * (a lower-case host name or IPv4 address with an optional port; a target of plain bytes
   * without `/.` or `%2e`); null otherwise, and the caller normalises.
   */
  simpleUrl(strip: number): string | null {
    const m = this.meta
    const b = this.bytes
    let host = -1
    for (let i = this.at + REQUEST_FIXED_WORDS, end = i + m[this.at + 10] * 4; i < end; i += 4) {
      if (m[i + 1] === 4 && b[m[i]] === 104 && b[m[i] + 1] === 111 && b[m[i] + 2] === 115 && b[m[i] + 3] === 116) {
        if (host !== -1) return null
        host = i
      }
    }
    if (host === -1) return null
    const hostAt = m[host + 2]
    const hostLen = m[host + 3]
    let at = m[this.at + 7] + strip
    const end = m[this.at + 7] + m[this.at + 8]
    const secure = (m[this.at + 4] & FLAG_SECURE) !== 0
    const total = (secure ? 8 : 7) + hostLen + 1 + (end - at)
    let out = urlScratch
    if (out.length < total) out = urlScratch = Buffer.allocUnsafeSlow(total * 2)
    if (hostLen === 0) return null
    const scheme = secure ? HTTPS : HTTP
    let n = 0
    for (; n < scheme.length; n++) out[n] = scheme[n]
    let colon = false
    for (let i = hostAt, e = hostAt + hostLen; i < e; i++) {
      const c = b[i]
      if (c === 58) {
        if (colon || i === hostAt || i === e - 1) return null
        colon = true
      } else if (colon ? !(c >= 48 && c <= 57) : !((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 45)) return null
      out[n++] = c
    }
    if (at === end || b[at] !== 47) out[n++] = 47
    for (let prev = 0; at < end; at++) {
      const c = b[at]
      if (!SIMPLE_TARGET_BYTE[c] || (c === 46 && prev === 47) || (c === 37 && b[at + 1] === 50 && (b[at + 2] | 32) === 101)) return null
      out[n++] = c
      prev = c
    }
    return out.latin1Slice(0, n)
  }

  /** The path, without the query, as sent (not percent-decoded). */
  get path(): string {
    return (this._path ??= this.bytes.latin1Slice(this.meta[this.at + 7], this.meta[this.at + 7] + this.meta[this.at + 9]))
  }

  /** The client's address (`127.0.0.1`, `::1`), or `''` where the engine did not give it. */
  get remoteAddress(): string {
    const m = this.meta
    const at = this.at
    if ((m[at + 4] & FLAG_PEER) === 0) return ''
    const i = at + REQUEST_FIXED_WORDS + m[at + 10] * 4 + m[at + 11] * 2
    return this.bytes.latin1Slice(m[i], m[i] + m[i + 1])
  }

  /** @internal whether the request has a body (a length or chunked framing) */
  get hasBody(): boolean {
    return (this.meta[this.at + 4] & FLAG_HAS_BODY) !== 0
  }

  /** @internal whether the body was claimed (read whole or iterated) */
  get bodyUsed(): boolean {
    return this.consumed
  }

  /** @internal every header line as sent, names lower-case: `[name, value, name, value, …]` */
  rawHeaders(): string[] {
    const m = this.meta
    const count = m[this.at + 10]
    const out = new Array<string>(count * 2)
    let j = 0
    for (let i = this.at + REQUEST_FIXED_WORDS, end = i + count * 4; i < end; i += 4) {
      out[j++] = this.bytes.latin1Slice(m[i], m[i] + m[i + 1])
      out[j++] = this.bytes.latin1Slice(m[i + 2], m[i + 2] + m[i + 3])
    }
    return out
  }

  /**
   * The cookies the client sent (`Cookie` header), by name, values percent-decoded; a name
   * sent twice keeps its first value. Parsed once, when first read.
   */
  get cookies(): Record<string, string> {
    return (this._cookies ??= parseCookies(this.header('cookie')))
  }

  /** `1.0`, `1.1`, or `2.0` for a request that came as an HTTP/2 stream. */
  get httpVersion(): '1.0' | '1.1' | '2.0' {
    const flags = this.meta[this.at + 4]
    return flags & FLAG_HTTP2 ? '2.0' : flags & FLAG_HTTP10 ? '1.0' : '1.1'
  }

  /** Route parameters, percent-decoded; `*` holds what a trailing wildcard matched. */
  get params(): Params {
    if (this._params !== undefined) return this._params
    return (this._params = readParams(this.bytes, this.meta, this.at + REQUEST_FIXED_WORDS + this.meta[this.at + 10] * 4, this.paramNames) as Params)
  }

  /** The query string as an object; a key given several times maps to an array. */
  get query(): ParsedUrlQuery {
    if (this._query !== undefined) return this._query
    const m = this.meta
    const pathLen = m[this.at + 9]
    const targetLen = m[this.at + 8]
    const start = m[this.at + 7]
    this._query = pathLen + 1 < targetLen ? parseQuery(this.bytes.latin1Slice(start + pathLen + 1, start + targetLen)) : parseQuery('')
    return this._query
  }

  /** One header's value by case-insensitive name; repeated headers are joined with `, `. */
  header(name: string): string | undefined {
    if (this._headers !== undefined) return this._headers[name.toLowerCase()]
    const wanted = name.toLowerCase()
    const m = this.meta
    const count = m[this.at + 10]
    let found: string | undefined
    for (let i = this.at + REQUEST_FIXED_WORDS, end = i + count * 4; i < end; i += 4) {
      if (m[i + 1] !== wanted.length || !sameBytes(this.bytes, m[i], wanted)) continue
      const value = this.bytes.latin1Slice(m[i + 2], m[i + 2] + m[i + 3])
      found = found === undefined ? value : `${found}, ${value}`
    }
    return found
  }

  /** Every header, by lower-case name; repeated headers are joined with `, `. */
  get headers(): Record<string, string> {
    if (this._headers !== undefined) return this._headers
    const headers: Record<string, string> = Object.create(null)
    const m = this.meta
    const count = m[this.at + 10]
    for (let i = this.at + REQUEST_FIXED_WORDS, end = i + count * 4; i < end; i += 4) {
      const name = this.bytes.latin1Slice(m[i], m[i] + m[i + 1])
      const value = this.bytes.latin1Slice(m[i + 2], m[i + 2] + m[i + 3])
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
    return (this._headers = headers)
  }

  /** Whether the client went away (or the engine answered for the handler) before the response was sent. */
  get aborted(): boolean {
    return this._aborted
  }

  /** Aborted when the client goes away before the response is sent, or the engine answered for the handler (timeout). */
  get signal(): AbortSignal {
    if (this._controller === undefined) {
      this._controller = new AbortController()
      if (this._aborted) this._controller.abort(abortError())
    }
    return this._controller.signal
  }

  /** @internal a piece of the body arrived */
  pushBody(chunk: Uint8Array): void {
    this.chunks.push(chunk)
    if (this.wantsAll) this.took(chunk.byteLength, false)
    this.wake()
  }

  /** Whether `text()`/`json()`/`arrayBuffer()` collects the body: all of it counts as taken. */
  private wantsAll = false

  /** @internal the body is complete */
  endBody(): void {
    this.ended = true
    this.wake()
  }

  /** @internal the client went away, or the engine answered instead */
  abort(): void {
    if (this._aborted) return
    this._aborted = true
    this._controller?.abort(abortError())
    const w = this.waiter
    this.waiter = null
    w?.reject(abortError())
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = null
    w?.resolve()
  }

  /** Tells the engine the handler took `n` body bytes (at once when `now`: it is about to wait). */
  private took(n: number, now: boolean): void {
    this.unacked += n
    if (this.unacked === 0 || (!now && this.unacked < ACK_STEP) || this.out === null || this.ended) return
    const count = new Uint8Array(4)
    new DataView(count.buffer).setUint32(0, Math.min(this.unacked, 2 ** 32 - 1), true)
    this.out.op(OP_CONSUMED, this.thread, this.slot, this.rid, 0, null, null, null, count)
    this.unacked = 0
  }

  private next(): Promise<void> {
    if (this._aborted) return Promise.reject(abortError())
    // Waiting for more: whatever was taken is told now, so that the engine reads on.
    this.took(0, true)
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
  }

  /** The body, piece by piece, as it arrives. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    this.claimBody()
    for (;;) {
      while (this.chunks.length > 0) {
        const chunk = this.chunks.shift()!
        this.took(chunk.byteLength, false)
        yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      }
      if (this.ended) return
      await this.next()
    }
  }

  /** The whole body. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytesOfBody()
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  }

  /** The whole body, decoded as UTF-8. */
  async text(): Promise<string> {
    return (await this.bytesOfBody()).toString('utf8')
  }

  /** The whole body, parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T
  }

  /**
   * The body as `FormData`: `multipart/form-data` (files as `File`s) or
   * `application/x-www-form-urlencoded`; another content type rejects with a `TypeError`.
   */
  async formData(): Promise<FormData> {
    const type = this.header('content-type')
    if (formKind(type) === null) throw unparsable(type)
    return parseFormData(await this.bytesOfBody(), type)
  }

  private async bytesOfBody(): Promise<Buffer> {
    this.claimBody()
    // The whole body is wanted: everything that arrives is taken (maxBodySize bounds it).
    this.wantsAll = true
    let held = 0
    for (const c of this.chunks) held += c.byteLength
    this.took(held, false)
    while (!this.ended) await this.next()
    const chunks = this.chunks
    this.chunks = []
    return chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, chunks[0].byteLength) : Buffer.concat(chunks)
  }

  private claimBody(): void {
    if (this.consumed) throw new Error('harrier: the request body was already read')
    this.consumed = true
  }
}

const HTTP = Buffer.from('http://')
const HTTPS = Buffer.from('https://')
/** Where `simpleUrl` writes the URL before it becomes a string. */
let urlScratch = Buffer.allocUnsafeSlow(16 * 1024)
/** Bytes of a request target the URL parser leaves as they are: `!$%&'()*+,-./0-9:;=?@A-Z[]_a-z~`. */
const SIMPLE_TARGET_BYTE = new Uint8Array(256)
for (const c of "!$%&'()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~") SIMPLE_TARGET_BYTE[c.charCodeAt(0)] = 1

/** Whether `bytes` at `at` hold `text` (Latin-1), compared in place: no string is made. */
function sameBytes(bytes: Buffer, at: number, text: string): boolean {
  for (let k = 0; k < text.length; k++) if (bytes[at + k] !== text.charCodeAt(k)) return false
  return true
}

function decodeComponent(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

/**
 * Route params from `meta` at `at` (off/len pairs into `bytes`), named in route order,
 * percent-decoded. @internal
 */
export function readParams(bytes: Buffer, meta: Uint32Array, at: number, names: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {}
  let i = at
  for (const name of names) {
    const raw = bytes.latin1Slice(meta[i], meta[i] + meta[i + 1])
    params[name] = raw.includes('%') ? decodeComponent(raw) : raw
    i += 2
  }
  return params
}
