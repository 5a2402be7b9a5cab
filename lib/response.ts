import type { InflightTable } from './inflight'
import { encodedHeader, type ReplyBuffer } from './reply-buffer'
import { OP_CHUNK, OP_END, OP_FULL, OP_HEAD } from './wire'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\r\n\0]|[^\u0000-\u00ff]/

const TEXT = encodedHeader('content-type', 'text/plain; charset=utf-8')
const JSON_TYPE = encodedHeader('content-type', 'application/json; charset=utf-8')
const BYTES = encodedHeader('content-type', 'application/octet-stream')

type State = 'open' | 'streaming' | 'done'

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

  /** @internal `inflight` holds this exchange until the response is complete. */
  constructor(
    private readonly out: ReplyBuffer,
    private readonly thread: number,
    private readonly slot: number,
    private readonly rid: number,
    private readonly inflight: InflightTable<{ readonly rid: number }>,
  ) {}

  private onFinish(): void {
    this.inflight.delete(this.thread, this.rid)
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

  /** Streams a piece of the body (chunked transfer coding); the head goes with the first piece. */
  write(chunk: string | Uint8Array): boolean {
    if (this.abandoned) return false
    if (this.state === 'done') throw new Error('harrier: write() after the response ended')
    if (this.state === 'open') this.startStream(typeof chunk === 'string' ? TEXT : BYTES)
    this.out.op(OP_CHUNK, this.thread, this.slot, this.rid, 0, null, null, null, chunk)
    return true
  }

  /** Ends the response, with an optional last piece. Without an earlier `write`, it is sent whole with a length. */
  end(chunk?: string | Uint8Array): void {
    if (this.state === 'open') {
      this.send(chunk ?? '')
      return
    }
    if (this.abandoned) return
    if (this.state === 'done') throw new Error('harrier: end() after the response ended')
    this.state = 'done'
    this.out.op(OP_END, this.thread, this.slot, this.rid, 0, null, null, null, chunk ?? null)
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
