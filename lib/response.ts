import { type CookieOptions, clearedCookie, serializeCookie } from './cookies'
import type { InflightTable } from './inflight'
import { encodedHeader, type ReplyBuffer } from './reply-buffer'
import { resolve as resolvePath } from 'node:path'
import type { Request } from './request'
import type { StaticOptions } from './types'
import { CHUNK_WANT_DRAIN, OP_CHUNK, OP_END, OP_FILE, OP_FULL, OP_HEAD } from './wire'
import { EventStream, type EventStreamOptions } from './event-stream'

/** The request headers a file answer depends on, passed to the engine with `sendFile`. */
const FILE_CONDITIONS = ['range', 'if-range', 'if-none-match', 'if-modified-since', 'accept-encoding']


/** Throws at once for a static option of the wrong kind. */
export function checkStaticOptions(options: StaticOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('harrier: static options must be an object')
  const { maxAge, immutable, index, fallback, dotfiles, precompressed } = options
  if (maxAge !== undefined && !(Number.isSafeInteger(maxAge) && maxAge >= 0)) throw new RangeError(`harrier: maxAge must be a non-negative integer (seconds), got ${maxAge}`)
  if (immutable !== undefined && typeof immutable !== 'boolean') throw new TypeError('harrier: immutable must be a boolean')
  if (precompressed !== undefined && typeof precompressed !== 'boolean') throw new TypeError('harrier: precompressed must be a boolean')
  if (index !== undefined && typeof index !== 'string') throw new TypeError('harrier: index must be a string')
  if (fallback !== undefined && typeof fallback !== 'string') throw new TypeError('harrier: fallback must be a string')
  if (dotfiles !== undefined && dotfiles !== 'ignore' && dotfiles !== 'allow') throw new RangeError(`harrier: dotfiles must be 'ignore' or 'allow', got ${String(dotfiles)}`)
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\r\n\0]|[^\u0000-\u00ff]/

const TEXT = encodedHeader('content-type', 'text/plain; charset=utf-8')
const JSON_TYPE = encodedHeader('content-type', 'application/json; charset=utf-8')
const BYTES = encodedHeader('content-type', 'application/octet-stream')

type State = 'open' | 'streaming' | 'done'

type Listener = (...args: any[]) => void
/** The events a response emits, as a Node `Writable` does. */
type ResponseEvent = 'drain' | 'finish' | 'close' | 'error'

/** Bytes a chunk adds to what is queued (a string's length stands for its UTF-8 size). */
function sizeOf(chunk: string | Uint8Array): number {
  return typeof chunk === 'string' ? chunk.length : chunk.byteLength
}

/**
 * The response to one request. Nothing reaches the engine until `text`, `json`, `send`,
 * `write` or `end`; the engine serialises it and writes it in request order.
 */
export class Response {
  private statusCode = 200
  /** Headers set by the handler; null until the first (most responses set none). */
  private names: string[] | null = null
  private values: string[] | null = null
  private state: State = 'open'
  /** @internal set when the engine or the client ended the exchange first */
  abandoned = false
  /** @internal the request this answers (for `sendFile`'s conditional and range headers) */
  request: Request | null = null
  /** Bytes written since the engine last said how much was unsent. */
  private queued = 0
  /** A `CHUNK` asked the engine for a `DRAIN` event, not come yet. */
  private awaitingDrain = false
  /** Listeners by event; null until the first (most responses have none). */
  private listeners: Map<ResponseEvent, Listener[]> | null = null
  private destroyed = false
  /** `true`: the response is a Node writable stream for `pipeline` and `pipe`. */
  readonly writable: boolean = true

  /** @internal `inflight` holds this exchange until the response is complete. */
  constructor(
    private readonly out: ReplyBuffer,
    private readonly thread: number,
    private readonly slot: number,
    private readonly rid: number,
    private readonly inflight: InflightTable<{ readonly rid: number }>,
    /** Bytes queued past which `write()` returns false. */
    readonly writableHighWaterMark: number,
  ) {}

  private onFinish(): void {
    this.inflight.delete(this.thread, this.rid)
    if (this.listeners !== null) {
      this.emit('finish')
      this.emit('close')
    }
  }

  /** Whether `end()` was called (or the response was sent whole). */
  get writableEnded(): boolean {
    return this.state === 'done'
  }

  /** Whether the response was sent completely (as `writableEnded`: the engine takes it from here). */
  get writableFinished(): boolean {
    return this.state === 'done'
  }

  /** Bytes written and not yet taken by the socket, as the engine last reported. */
  get writableLength(): number {
    return this.queued
  }

  /** Whether `write()` returned false and `drain` has not come yet. */
  get writableNeedDrain(): boolean {
    return this.awaitingDrain
  }

  on(event: ResponseEvent, fn: Listener): this {
    const map = (this.listeners ??= new Map())
    const list = map.get(event)
    if (list === undefined) map.set(event, [fn])
    else list.push(fn)
    return this
  }

  addListener(event: ResponseEvent, fn: Listener): this {
    return this.on(event, fn)
  }

  once(event: ResponseEvent, fn: Listener): this {
    const wrapped = (...args: unknown[]) => {
      this.off(event, wrapped)
      fn(...args)
    }
    ;(wrapped as { listener?: Listener }).listener = fn
    return this.on(event, wrapped)
  }

  off(event: ResponseEvent, fn: Listener): this {
    const list = this.listeners?.get(event)
    if (list !== undefined) {
      const at = list.findIndex((l) => l === fn || (l as { listener?: Listener }).listener === fn)
      if (at >= 0) list.splice(at, 1)
    }
    return this
  }

  removeListener(event: ResponseEvent, fn: Listener): this {
    return this.off(event, fn)
  }

  emit(event: ResponseEvent, ...args: unknown[]): boolean {
    const list = this.listeners?.get(event)
    if (list === undefined || list.length === 0) return false
    for (const fn of [...list]) fn.apply(this, args)
    return true
  }

  /** Resolves once queued bytes fall back under `highWaterMark` (at once if they are). */
  drained(): Promise<void> {
    if (!this.awaitingDrain || this.state === 'done' || this.abandoned) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        this.off('drain', done).off('close', done)
        resolve()
      }
      this.on('drain', done).on('close', done)
    })
  }

  /** @internal the engine says the response fell back under the mark */
  drain(unsent: number): void {
    this.queued = unsent
    if (!this.awaitingDrain) return
    this.awaitingDrain = false
    this.emit('drain')
  }

  /** @internal the client went away (or the engine answered instead) */
  gone(): void {
    this.abandoned = true
    this.awaitingDrain = false
    if (this.listeners !== null) this.emit('close')
  }

  /**
   * Ends the response now: if the head is out, the body stops where it stands (the client
   * sees it cut short); otherwise a 500 goes out. `error` is emitted (when given) and `close`.
   */
  destroy(error?: Error): this {
    if (this.destroyed) return this
    this.destroyed = true
    const wasDone = this.state === 'done' || this.abandoned
    if (!wasDone) {
      if (this.state === 'streaming') {
        // A chunked body that never ends cleanly: the engine closes the connection.
        this.state = 'done'
        this.out.op(OP_END, this.thread, this.slot, this.rid, 1, null, null, null, null)
        this.inflight.delete(this.thread, this.rid)
      } else {
        this.fail(500, 'Internal Server Error')
      }
    }
    if (error !== undefined) this.emit('error', error)
    if (wasDone || this.listeners !== null) this.emit('close')
    return this
  }

  /** @internal an op for this response with a body of its own (heartbeats) */
  engineOp(kind: number, body: Uint8Array): void {
    if (!this.abandoned && this.state !== 'done') this.out.op(kind, this.thread, this.slot, this.rid, 0, null, null, null, body)
  }

  /** A Server-Sent Events stream (`text/event-stream`): see `EventStream`. */
  eventStream(options: EventStreamOptions = {}): EventStream {
    if (this.state !== 'open') throw new Error('harrier: the response was already started')
    return new EventStream(this, options)
  }

  /** Whether the response has started (headers can no longer change). */
  get headersSent(): boolean {
    return this.state !== 'open'
  }

  /** Whether the response is complete. */
  get finished(): boolean {
    return this.state === 'done'
  }

  status(code: number): this {
    if (!Number.isInteger(code) || code < 200 || code > 999) {
      throw new RangeError(`harrier: status ${code} is not a final HTTP status (200-999)`)
    }
    this.statusCode = code
    return this
  }

  /** Sets a header (replacing one of the same name); an array sends the header once per value. */
  header(name: string, value: string | number | readonly string[]): this {
    if (!TOKEN.test(name)) throw new TypeError(`harrier: invalid header name ${JSON.stringify(name)}`)
    const lower = name.toLowerCase()
    const values = Array.isArray(value) ? value.map(String) : [String(value)]
    for (const v of values) {
      if (BAD_VALUE.test(v)) throw new TypeError(`harrier: invalid character in the value of header ${JSON.stringify(name)}`)
    }
    this.removeHeader(lower)
    const names = (this.names ??= [])
    const vals = (this.values ??= [])
    for (const v of values) {
      names.push(lower)
      vals.push(v)
    }
    return this
  }

  /**
   * Adds a `Set-Cookie` line (every call one more; other cookies stay): `value` is
   * percent-encoded unless `options.encode` is false. Throws a `TypeError` for a bad name,
   * value or option, and once the head is sent.
   */
  cookie(name: string, value: string, options?: CookieOptions): this {
    return this.setCookie(serializeCookie(name, value, options))
  }

  /** Tells the client to drop a cookie (give the `path` and `domain` it was set with). */
  clearCookie(name: string, options?: CookieOptions): this {
    return this.setCookie(clearedCookie(name, options))
  }

  private setCookie(line: string): this {
    if (this.state !== 'open') throw new Error('harrier: cookie() after the response head was sent')
    ;(this.names ??= []).push('set-cookie')
    ;(this.values ??= []).push(line)
    return this
  }

  /** The value of a header set so far (the first, if several). */
  getHeader(name: string): string | undefined {
    if (this.names === null) return undefined
    const i = this.names.indexOf(name.toLowerCase())
    return i < 0 ? undefined : this.values![i]
  }

  removeHeader(name: string): this {
    const names = this.names
    if (names === null) return this
    const lower = name.toLowerCase()
    for (let i = names.length - 1; i >= 0; i--) {
      if (names[i] === lower) {
        names.splice(i, 1)
        this.values!.splice(i, 1)
      }
    }
    return this
  }

  /** The default content type, unless the handler set one. */
  private typeUnlessSet(type: Buffer): Buffer | null {
    return this.names !== null && this.names.includes('content-type') ? null : type
  }

  /** A text body, `text/plain; charset=utf-8` unless a content-type was set. */
  text(body: string): void {
    this.full(String(body), TEXT)
  }

  /** A JSON body, `application/json; charset=utf-8` unless a content-type was set. */
  json(value: unknown): void {
    this.full(JSON.stringify(value) ?? 'null', JSON_TYPE)
  }

  /** A string (as text) or bytes (as `application/octet-stream`) unless a content-type was set. */
  send(body: string | Uint8Array): void {
    if (typeof body === 'string') this.full(body, TEXT)
    else if (body instanceof Uint8Array) this.full(body, BYTES)
    else throw new TypeError('harrier: send() takes a string, a Buffer or a Uint8Array')
  }

  /**
   * Streams a piece of the body (chunked transfer coding); the head goes with the first piece.
   * Returns false once more than `highWaterMark` bytes are queued and not yet taken by the
   * socket: wait for `drain` (or `await res.drained()`) before writing more.
   */
  write(chunk: string | Uint8Array, callback?: (error?: Error | null) => void): boolean {
    if (this.abandoned) {
      callback?.(null)
      return false
    }
    if (this.state === 'done') throw new Error('harrier: write() after the response ended')
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) throw new TypeError('harrier: write() takes a string, a Buffer or a Uint8Array')
    if (this.state === 'open') this.startStream(typeof chunk === 'string' ? TEXT : BYTES)
    this.queued += sizeOf(chunk)
    const over = this.queued > this.writableHighWaterMark
    // The first chunk past the mark asks the engine to say when the socket caught up.
    this.out.op(OP_CHUNK, this.thread, this.slot, this.rid, over && !this.awaitingDrain ? CHUNK_WANT_DRAIN : 0, null, null, null, chunk)
    if (over) this.awaitingDrain = true
    if (callback !== undefined) queueMicrotask(() => callback(null))
    return !over
  }

  /** Ends the response, with an optional last piece. Without an earlier `write`, it is sent whole with a length. */
  end(chunk?: string | Uint8Array | (() => void), callback?: () => void): this {
    if (typeof chunk === 'function') {
      callback = chunk
      chunk = undefined
    }
    if (callback !== undefined) this.once('finish', callback)
    if (this.state === 'open') {
      this.send(chunk ?? '')
      return this
    }
    if (this.abandoned) return this
    if (this.state === 'done') throw new Error('harrier: end() after the response ended')
    this.state = 'done'
    this.out.op(OP_END, this.thread, this.slot, this.rid, 0, null, null, null, chunk ?? null)
    this.onFinish()
    return this
  }

  /**
   * Answers with a file, served by the engine as `app.static` serves one: type, length,
   * validators and 304, ranges, precompressed variants, `options` as for `app.static`.
   * A relative `path` is resolved from the working directory. Headers set before are kept,
   * except those the file answer sets itself. A status set before (`res.status(404)`) answers
   * with the whole file under that status; otherwise the file answer's status stands (200,
   * 206, 304, or 404/403 when the file cannot be served).
   */
  sendFile(path: string, options: StaticOptions = {}): void {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) throw new TypeError('harrier: sendFile() needs a file path')
    checkStaticOptions(options)
    if (this.abandoned) return
    if (this.state !== 'open') throw new Error('harrier: the response was already sent')
    const names = this.names === null ? [] : [...this.names]
    const values = this.values === null ? [] : [...this.values]
    const option = (name: string, value: string) => {
      names.push(`:${name}`)
      values.push(value)
    }
    if (options.maxAge !== undefined) option('max-age', String(options.maxAge))
    if (options.immutable !== undefined) option('immutable', options.immutable ? '1' : '0')
    if (options.dotfiles !== undefined) option('dotfiles', options.dotfiles === 'allow' ? '1' : '0')
    if (options.precompressed !== undefined) option('precompressed', options.precompressed ? '1' : '0')
    if (options.index !== undefined) option('index', options.index)
    const req = this.request
    // Validators and ranges apply to GET and HEAD; any other method gets the whole file.
    if (req !== null && (req.method === 'GET' || req.method === 'HEAD')) {
      for (const name of FILE_CONDITIONS) {
        const value = req.header(name)
        if (value !== undefined) {
          names.push(`<${name}`)
          values.push(value)
        }
      }
    }
    this.state = 'done'
    this.out.op(OP_FILE, this.thread, this.slot, this.rid, this.statusCode, names, values, null, resolvePath(path))
    this.onFinish()
  }

  private full(body: string | Uint8Array, type: Buffer): void {
    if (this.abandoned) return
    if (this.state !== 'open') throw new Error('harrier: the response was already sent')
    this.state = 'done'
    this.out.op(OP_FULL, this.thread, this.slot, this.rid, this.statusCode, this.names, this.values, this.typeUnlessSet(type), body)
    this.onFinish()
  }

  private startStream(type: Buffer): void {
    this.state = 'streaming'
    this.out.op(OP_HEAD, this.thread, this.slot, this.rid, this.statusCode, this.names, this.values, this.typeUnlessSet(type), null)
  }

  /**
   * @internal the whole answer at once, with headers already checked and lower-case (the
   * fetch adapter): `type`, a pre-encoded header, unless null. Headers set before are kept.
   */
  answer(status: number, names: string[] | null, values: string[] | null, type: Buffer | null, body: string | Uint8Array | null): void {
    if (this.answerWith(OP_FULL, status, names, values, type, body)) this.onFinish()
  }

  /** @internal the head of a streamed answer, as `answer` takes it; `write` and `end` follow */
  answerHead(status: number, names: string[] | null, values: string[] | null, type: Buffer | null): void {
    this.answerWith(OP_HEAD, status, names, values, type, null)
  }

  /** `answer` and `answerHead`: the handler's headers set before come first; false if abandoned. */
  private answerWith(kind: number, status: number, names: string[] | null, values: string[] | null, type: Buffer | null, body: string | Uint8Array | null): boolean {
    if (this.abandoned) return false
    if (this.state !== 'open') throw new Error('harrier: the response was already sent')
    if (this.names !== null && names !== null) {
      names = this.names.concat(names)
      values = this.values!.concat(values!)
    } else if (names === null) {
      names = this.names
      values = this.values
    }
    this.state = kind === OP_FULL ? 'done' : 'streaming'
    this.out.op(kind, this.thread, this.slot, this.rid, status, names, values, type, body)
    return true
  }

  /** @internal answers an error after a handler failed, if nothing was sent yet */
  fail(status: number, message: string): void {
    if (this.abandoned || this.state === 'done') return
    if (this.state === 'streaming') {
      // The head is out: the best left is to end the body where it stands.
      this.end()
      return
    }
    this.names = null
    this.values = null
    this.statusCode = status
    this.full(message, TEXT)
  }
}
