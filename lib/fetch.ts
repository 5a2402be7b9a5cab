// Web-standard handlers: a `fetch(request, info)` function (Hono, itty-router, h3, ...) served
// by the engine. The Request it gets is made lazily over harrier's own request (nothing is
// decoded until read); the Response it gives is read without a stream when its body is a
// string or bytes (see FastResponse).

import type { Request as HarrierRequest } from './request'
import { encodedHeader } from './reply-buffer'
import type { Response as HarrierResponse } from './response'
import { formKind, parseFormData, unparsable } from './form-data'
import { platform } from './platform'
import type { Handler } from './types'

/** The platform's classes (undici's in Node), taken before `installGlobals` may replace them. */
const { Request: PlatformRequest, Response: PlatformResponse, Headers: PlatformHeaders, fetch: platformFetch } = platform()

type WebRequest = globalThis.Request
type WebResponse = globalThis.Response
type BodyInit = NonNullable<ConstructorParameters<typeof globalThis.Response>[0]>
type HeadersInit = NonNullable<ConstructorParameters<typeof globalThis.Headers>[0]>
type RequestInfo = ConstructorParameters<typeof globalThis.Request>[0]

/** What a fetch handler gets besides the request. */
export interface FetchInfo {
  /** The client's address (`127.0.0.1`, `::1`). */
  readonly remoteAddress: string
}

/** A web-standard handler: `(request, info) => Response | Promise<Response>` (`hono.fetch`). */
export type FetchHandler = (request: WebRequest, info: FetchInfo) => WebResponse | PromiseLike<WebResponse>

export interface MountOptions {
  /**
   * Whether the handler sees paths without the mount prefix: mounted at `/api`, a request for
   * `/api/users` reaches it as `/users` (and `/api` as `/`). Default false: the full path, as
   * Hono expects of a sub-app mounted with `app.route('/api', sub)` or `basePath('/api')`.
   */
  stripPrefix?: boolean
  /**
   * Whether harrier's `Response` (and a `Request` that takes the requests it hands over) go
   * into the global scope, as `@hono/node-server` does with its own (default true): a
   * `new Response('text')` then costs an object rather than a stream. `false` leaves the
   * platform's classes alone (answers then cost what the platform's Response costs).
   */
  overrideGlobalObjects?: boolean
}

const noop = () => {}

// ------------------------------------------------------------------------------- headers

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\r\n\0]|[^\u0000-\u00ff]/

/** Response header names seen before, as given, mapped to their checked lower-case form. */
const checkedNames = new Map<string, string>()

function headerName(name: string): string {
  let lower = checkedNames.get(name)
  if (lower !== undefined) return lower
  if (!TOKEN.test(name)) throw new TypeError(`harrier: invalid header name ${JSON.stringify(name)} in the fetch handler's Response`)
  lower = name.toLowerCase()
  if (checkedNames.size >= 1024) checkedNames.clear()
  checkedNames.set(name, lower)
  return lower
}

function headerValue(name: string, value: string): string {
  if (BAD_VALUE.test(value)) throw new TypeError(`harrier: invalid character in the value of header ${JSON.stringify(name)} in the fetch handler's Response`)
  return value
}

/** The lines of a `HeadersInit` (or a Headers), lower-case names, each checked; `type`: whether one is content-type. */
interface Lines {
  names: string[] | null
  values: string[] | null
  hasType: boolean
}

function headerLines(init: unknown): Lines {
  const lines: Lines = { names: null, values: null, hasType: false }
  if (init === undefined || init === null) return lines
  const names: string[] = []
  const values: string[] = []
  const add = (rawName: string, value: string) => {
    const name = headerName(rawName)
    names.push(name)
    values.push(headerValue(name, value))
    if (name === 'content-type') lines.hasType = true
  }
  if (init instanceof PlatformHeaders || init instanceof FastHeaders) {
    // Iteration gives lower-case names, and every set-cookie line on its own.
    for (const [name, value] of init as Headers) add(name, value)
  } else if (typeof init === 'object' && Symbol.iterator in init) {
    for (const pair of init as Iterable<[string, string]>) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError("harrier: the fetch handler's Response has a header that is not a [name, value] pair")
      add(String(pair[0]), String(pair[1]))
    }
  } else if (typeof init === 'object') {
    const record = init as Record<string, unknown>
    for (const key in record) {
      const value = record[key]
      if (Array.isArray(value)) for (const v of value) add(key, String(v))
      else if (value !== undefined) add(key, String(value))
    }
  } else throw new TypeError("harrier: the fetch handler's Response has headers that are neither a Headers, a record nor pairs")
  if (names.length > 0) {
    lines.names = names
    lines.values = values
  }
  return lines
}

/**
 * The headers of a request, read from harrier's request when asked for one by name;
 * everything else (iteration, changes) works on a platform `Headers` made once, on first need.
 */
class FastHeaders {
  #native: HarrierRequest
  #headers: Headers | null = null

  constructor(native: HarrierRequest) {
    this.#native = native
  }

  #all(): Headers {
    if (this.#headers !== null) return this.#headers
    const headers = new PlatformHeaders()
    const raw = this.#native.rawHeaders()
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1])
    return (this.#headers = headers)
  }

  get(name: string): string | null {
    if (this.#headers !== null) return this.#headers.get(name)
    name = String(name)
    if (!TOKEN.test(name)) throw new TypeError(`Headers.get: ${JSON.stringify(name)} is an invalid header name.`)
    return this.#native.header(name) ?? null
  }

  has(name: string): boolean {
    if (this.#headers !== null) return this.#headers.has(name)
    name = String(name)
    if (!TOKEN.test(name)) throw new TypeError(`Headers.has: ${JSON.stringify(name)} is an invalid header name.`)
    return this.#native.header(name) !== undefined
  }

  set(name: string, value: string): void {
    this.#all().set(name, value)
  }

  append(name: string, value: string): void {
    this.#all().append(name, value)
  }

  delete(name: string): void {
    this.#all().delete(name)
  }

  getSetCookie(): string[] {
    return this.#all().getSetCookie()
  }

  keys(): IterableIterator<string> {
    return this.#all().keys()
  }

  values(): IterableIterator<string> {
    return this.#all().values()
  }

  entries(): IterableIterator<[string, string]> {
    return this.#all().entries()
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#all().forEach((value, key) => callback.call(thisArg, value, key, this as unknown as Headers))
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#all().entries()
  }

  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.#all()
  }
}
Object.setPrototypeOf(FastHeaders.prototype, PlatformHeaders.prototype)

// ------------------------------------------------------------------------------- request

/** A target needing no normalisation by the URL parser (no dot segments, escapes or odd bytes). */
const SIMPLE_TARGET = /^\/[!$%-;=?-\[\]_a-z~]*$/
/** A `.` or `..` segment, also percent-encoded, which the URL parser resolves. */
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:[/?#]|$)/i
/** A host the URL parser leaves as it is: lower-case name or IPv4, optional port. */
const SIMPLE_HOST = /^[a-z0-9.-]+(?::\d{1,5})?$/

/** The request body as a stream, fed by harrier's request as its pieces arrive (no copy). */
function bodyStream(native: HarrierRequest): ReadableStream<Uint8Array> {
  let pieces: AsyncIterator<Buffer> | null = null
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        pieces ??= native[Symbol.asyncIterator]()
        const next = await pieces.next()
        if (next.done) controller.close()
        else controller.enqueue(next.value)
      },
      cancel() {
        pieces?.return?.()?.catch?.(noop)
      },
    },
    { highWaterMark: 0 },
  )
}

function bodyUnusable(): Promise<never> {
  return Promise.reject(new TypeError('Body is unusable: the request body was already read'))
}

/**
 * The `Request` a fetch handler gets: `method`, `url`, `headers`, `body`, `signal` and the body
 * readers are served from harrier's request, each made when first read; anything else (and
 * `clone()`) goes to a platform `Request` made then, over the same body stream.
 */
export class FastRequest {
  #native: HarrierRequest
  #mount: Mount
  #url: string | undefined
  #headers: FastHeaders | undefined
  #body: ReadableStream<Uint8Array> | null | undefined
  #real: WebRequest | undefined

  /** @internal */
  constructor(native: HarrierRequest, mount: Mount) {
    this.#native = native
    this.#mount = mount
  }

  get method(): string {
    return this.#native.method
  }

  get url(): string {
    return (this.#url ??= requestUrl(this.#native, this.#mount))
  }

  get headers(): Headers {
    if (this.#real !== undefined) return this.#real.headers
    return (this.#headers ??= new FastHeaders(this.#native)) as unknown as Headers
  }

  get signal(): AbortSignal {
    return this.#native.signal
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.#real !== undefined) return this.#real.body
    if (this.#body === undefined) this.#body = this.#native.hasBody ? bodyStream(this.#native) : null
    return this.#body
  }

  get bodyUsed(): boolean {
    if (this.#real !== undefined) return this.#real.bodyUsed
    return this.#native.bodyUsed
  }

  get cache(): WebRequest['cache'] {
    return 'default'
  }
  get credentials(): WebRequest['credentials'] {
    return 'same-origin'
  }
  get destination(): WebRequest['destination'] {
    return ''
  }
  get integrity(): string {
    return ''
  }
  get keepalive(): boolean {
    return false
  }
  get mode(): WebRequest['mode'] {
    return 'cors'
  }
  get redirect(): WebRequest['redirect'] {
    return 'follow'
  }
  get referrer(): string {
    return 'about:client'
  }
  get referrerPolicy(): WebRequest['referrerPolicy'] {
    return ''
  }
  get duplex(): 'half' {
    return 'half'
  }

  /** @internal the platform Request this stands for, made on first need */
  toPlatform(): WebRequest {
    if (this.#real !== undefined) return this.#real
    const method = this.method
    const init: RequestInit & { duplex?: 'half' } = { method, headers: this.headers, signal: this.signal }
    if (method !== 'GET' && method !== 'HEAD') {
      init.body = this.body
      init.duplex = 'half'
    }
    return (this.#real = new PlatformRequest(this.url, init))
  }

  clone(): WebRequest {
    return this.toPlatform().clone()
  }

  /** Reads the whole body: from the stream if it was taken (or a platform Request), else straight from harrier's request. */
  #read<T>(direct: (native: HarrierRequest) => Promise<T>, platform: (r: WebRequest) => Promise<T>): Promise<T> {
    if (this.#real !== undefined || this.#body) return platform(this.toPlatform())
    const native = this.#native
    if (native.bodyUsed) return bodyUnusable()
    return direct(native)
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#read((n) => n.arrayBuffer(), (r) => r.arrayBuffer())
  }

  bytes(): Promise<Uint8Array> {
    return this.#read(
      (n) => n.arrayBuffer().then((b) => new Uint8Array(b)),
      (r) => r.arrayBuffer().then((b) => new Uint8Array(b)),
    )
  }

  text(): Promise<string> {
    return this.#read((n) => n.text(), (r) => r.text())
  }

  json(): Promise<any> {
    return this.#read((n) => n.json(), (r) => r.json())
  }

  blob(): Promise<Blob> {
    const type = this.#native.header('content-type') ?? ''
    return this.#read(
      (n) => n.arrayBuffer().then((b) => new Blob([b], { type })),
      (r) => r.blob(),
    )
  }

  formData(): Promise<FormData> {
    const type = this.#native.header('content-type')
    return this.#read(
      (n) => (formKind(type) === null ? Promise.reject(unparsable(type)) : n.arrayBuffer().then((b) => parseFormData(new Uint8Array(b), type))),
      (r) => r.formData(),
    )
  }

  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return { method: this.method, url: this.url, headers: this.headers }
  }
}
Object.setPrototypeOf(FastRequest.prototype, PlatformRequest.prototype)

/** `scheme://host` + the target (less the mount prefix when stripped), as the URL parser would write it. */
function requestUrl(native: HarrierRequest, mount: Mount): string {
  const simple = native.simpleUrl(mount.strip)
  if (simple !== null) return simple
  const host = native.header('host')
  let target = native.url
  const strip = mount.strip
  if (strip > 0) {
    target = target.slice(strip)
    if (target === '' || target.charCodeAt(0) !== 47) target = `/${target}`
  }
  const scheme = native.secure ? 'https://' : 'http://'
  if (host !== undefined && SIMPLE_HOST.test(host) && SIMPLE_TARGET.test(target) && !DOT_SEGMENT.test(target)) return scheme + host + target
  return normalisedUrl(scheme, host, mount.base(), target)
}

/** The URL parser's form of a request URL; a Host header that is no authority gives way to the listening address. */
function normalisedUrl(scheme: string, host: string | undefined, base: string, target: string): string {
  let authority = base
  if (host !== undefined && host !== '' && !/[/?#@\\\s]/.test(host)) {
    try {
      authority = new URL(`${scheme}${host}`).host || base
    } catch {
      authority = base
    }
  }
  try {
    return new URL(`${scheme}${authority}${target}`).href
  } catch {
    return `${scheme}${authority}/`
  }
}

/** What the requests of one mount share: the prefix's length when stripped, the listening address. */
interface Mount {
  strip: number
  /** Scheme-less authority for requests whose Host header is no authority. */
  base: () => string
}

class Info implements FetchInfo {
  #native: HarrierRequest
  constructor(native: HarrierRequest) {
    this.#native = native
  }
  get remoteAddress(): string {
    return this.#native.remoteAddress
  }
}

// ------------------------------------------------------------------------------- response

const CACHE = Symbol('harrier.response')
const REAL = Symbol('harrier.platformResponse')

/** A body FastResponse keeps as given. */
type Kept = string | Uint8Array | ArrayBuffer | ArrayBufferView | Blob | URLSearchParams | ReadableStream | null

interface Cached {
  status: number
  statusText: string
  body: Kept
  /** The init's headers as given, or the Headers made from them once read. */
  headers: unknown
}

const TEXT_PLAIN = 'text/plain;charset=UTF-8'
const FORM_URLENCODED = 'application/x-www-form-urlencoded;charset=UTF-8'

function defaultType(body: Kept): string | null {
  if (typeof body === 'string') return TEXT_PLAIN
  if (body instanceof URLSearchParams) return FORM_URLENCODED
  if (body instanceof Blob) return body.type === '' ? null : body.type
  return null
}

function keeps(body: unknown): body is Kept {
  return (
    body === null ||
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof ReadableStream ||
    body instanceof Blob ||
    body instanceof URLSearchParams
  )
}

/**
 * A `Response` that keeps what it was made of: a string or bytes body is answered as it is,
 * with no stream and no copy. It becomes a platform `Response` the moment anything else
 * is asked of it (its body stream, a body reader, `clone()`).
 */
export class FastResponse {
  [CACHE]: Cached | undefined;
  [REAL]: WebResponse | undefined

  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof PlatformResponse
  }

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    if (body === undefined) body = null
    if (keeps(body) && (init === undefined || (init !== null && typeof init === 'object' && !(init instanceof PlatformResponse)))) {
      let status = 200
      let statusText = ''
      let headers: unknown
      if (init !== undefined) {
        if (init.status !== undefined) {
          status = init.status
          if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Response constructor: Invalid response status code ${status}`)
        }
        if (init.statusText !== undefined) statusText = String(init.statusText)
        headers = init.headers
      }
      if (body !== null && (status === 101 || status === 204 || status === 205 || status === 304)) {
        throw new TypeError(`Response constructor: Invalid response status code ${status}`)
      }
      this[CACHE] = { status, statusText, body, headers }
      this[REAL] = undefined
      return
    }
    this[CACHE] = undefined
    this[REAL] = new PlatformResponse(body as BodyInit | null, init)
  }

  /** @internal the platform Response this stands for, made on first need */
  toPlatform(): WebResponse {
    const real = this[REAL]
    if (real !== undefined) return real
    const cache = this[CACHE]!
    this[CACHE] = undefined
    const body = cache.body
    const init: ResponseInit = cache.headers === undefined ? { status: cache.status, statusText: cache.statusText } : { status: cache.status, statusText: cache.statusText, headers: cache.headers as HeadersInit }
    return (this[REAL] = new PlatformResponse(body as BodyInit | null, init))
  }

  get status(): number {
    return this[CACHE]?.status ?? this.toPlatform().status
  }

  get ok(): boolean {
    const status = this.status
    return status >= 200 && status <= 299
  }

  get statusText(): string {
    return this[CACHE]?.statusText ?? this.toPlatform().statusText
  }

  get headers(): Headers {
    const cache = this[CACHE]
    if (cache === undefined) return this.toPlatform().headers
    if (cache.headers instanceof PlatformHeaders) return cache.headers
    const headers = new PlatformHeaders(cache.headers as HeadersInit | undefined)
    const type = defaultType(cache.body)
    if (type !== null && !headers.has('content-type')) headers.set('content-type', type)
    cache.headers = headers
    return headers
  }

  get type(): WebResponse['type'] {
    return this[CACHE] !== undefined ? 'default' : this.toPlatform().type
  }
  get url(): string {
    return this[CACHE] !== undefined ? '' : this.toPlatform().url
  }
  get redirected(): boolean {
    return this[CACHE] !== undefined ? false : this.toPlatform().redirected
  }
  get body(): ReadableStream<Uint8Array> | null {
    return this.toPlatform().body
  }
  get bodyUsed(): boolean {
    return this[CACHE] !== undefined ? false : this.toPlatform().bodyUsed
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.toPlatform().arrayBuffer()
  }
  blob(): Promise<Blob> {
    return this.toPlatform().blob()
  }
  bytes(): Promise<Uint8Array> {
    return this.toPlatform().arrayBuffer().then((b) => new Uint8Array(b))
  }
  formData(): Promise<FormData> {
    return this.toPlatform().formData()
  }
  json(): Promise<any> {
    return this.toPlatform().json()
  }
  text(): Promise<string> {
    return this.toPlatform().text()
  }
  clone(): WebResponse {
    return this.toPlatform().clone()
  }

  static json(data: unknown, init?: ResponseInit): WebResponse {
    const body = JSON.stringify(data)
    if (body === undefined) throw new TypeError('Response.json: the data is not JSON serializable')
    let headers: HeadersInit
    if (init?.headers !== undefined) {
      const h = new PlatformHeaders(init.headers)
      if (!h.has('content-type')) h.set('content-type', 'application/json')
      headers = h
    } else headers = { 'content-type': 'application/json' }
    return new FastResponse(body, { status: init?.status, statusText: init?.statusText, headers }) as unknown as WebResponse
  }

  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this[CACHE] !== undefined ? { status: this.status, headers: this.headers, body: this[CACHE]!.body } : this[REAL]
  }
}
Object.setPrototypeOf(FastResponse, PlatformResponse)
Object.setPrototypeOf(FastResponse.prototype, PlatformResponse.prototype)

/**
 * The global `Request`: the platform's, except that a request a fetch handler got from
 * harrier can be given to it (`new Request(request, init)`).
 */
class GlobalRequest extends PlatformRequest {
  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof PlatformRequest
  }

  constructor(input: RequestInfo, init?: RequestInit & { duplex?: 'half' }) {
    if (input instanceof FastRequest) input = (input as unknown as FastRequest).toPlatform()
    if (init?.body instanceof ReadableStream && init.duplex === undefined) init = { ...init, duplex: 'half' }
    super(input, init)
  }
}

let installed = false

/** The global `fetch`, taking the requests harrier hands over as well. */
function globalFetch(input: RequestInfo, init?: RequestInit): Promise<WebResponse> {
  return platformFetch(input instanceof FastRequest ? (input as unknown as FastRequest).toPlatform() : input, init)
}

/**
 * Puts harrier's `Response` (and a `Request` and a `fetch` that take harrier's requests) in
 * the global scope, as `@hono/node-server` does with its own: `new Response('text')` in a
 * handler then costs an object, not a stream. Everything else behaves as the platform's.
 */
export function installGlobals(): void {
  if (installed && globalThis.Response === (FastResponse as unknown)) return
  installed = true
  Object.defineProperty(globalThis, 'Response', { value: FastResponse, writable: true, configurable: true, enumerable: false })
  Object.defineProperty(globalThis, 'Request', { value: GlobalRequest, writable: true, configurable: true, enumerable: false })
  if (typeof platformFetch === 'function') Object.defineProperty(globalThis, 'fetch', { value: globalFetch, writable: true, configurable: true, enumerable: false })
}

// ------------------------------------------------------------------------------- answering

/** undici's internal state of a Response (its body's source): read where the platform has it. */
const STATE: symbol | undefined = (() => {
  try {
    const probe = new PlatformResponse('x')
    return Object.getOwnPropertySymbols(probe).find((s) => s.description === 'state' && (probe as any)[s]?.body?.source === 'x')
  } catch {
    return undefined
  }
})()

const TYPE_TEXT = encodedHeader('content-type', TEXT_PLAIN)
const TYPE_FORM = encodedHeader('content-type', FORM_URLENCODED)

/** Blobs up to this size are read whole and answered with a length; larger ones are streamed. */
const WHOLE_BLOB = 1 << 24

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'no constructor'})`
  return `a ${typeof value}`
}

function notAResponse(value: unknown): TypeError {
  return new TypeError(`harrier: the fetch handler returned ${describe(value)}, not a Response (or a promise of one)`)
}

function asBytes(body: ArrayBuffer | ArrayBufferView): Uint8Array {
  return body instanceof ArrayBuffer ? new Uint8Array(body) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
}

/** Answers `res` with `response`; a promise while a body is still being read or streamed. */
function send(response: unknown, req: HarrierRequest, res: HarrierResponse): void | Promise<void> {
  if (response === null || typeof response !== 'object') throw notAResponse(response)
  const cache = (response as FastResponse)[CACHE]
  if (cache !== undefined) return sendKept(cache, req, res)
  const real = (response as FastResponse)[REAL]
  if (real !== undefined) return sendPlatform(real, req, res)
  if (!(response instanceof PlatformResponse)) throw notAResponse(response)
  return sendPlatform(response as WebResponse, req, res)
}

function sendKept(cache: Cached, req: HarrierRequest, res: HarrierResponse): void | Promise<void> {
  const lines = headerLines(cache.headers)
  const body = cache.body
  const status = cache.status
  if (body === null) return res.answer(status, lines.names, lines.values, null, null)
  if (typeof body === 'string') return res.answer(status, lines.names, lines.values, lines.hasType ? null : TYPE_TEXT, body)
  if (body instanceof Uint8Array) return res.answer(status, lines.names, lines.values, null, body)
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return res.answer(status, lines.names, lines.values, null, asBytes(body))
  if (body instanceof URLSearchParams) return res.answer(status, lines.names, lines.values, lines.hasType ? null : TYPE_FORM, body.toString())
  if (body instanceof Blob) {
    if (!lines.hasType && body.type !== '') {
      ;(lines.names ??= []).push('content-type')
      ;(lines.values ??= []).push(headerValue('content-type', body.type))
    }
    if (body.size > WHOLE_BLOB) return pump(body.stream(), status, lines, req, res)
    return body.arrayBuffer().then((bytes) => res.answer(status, lines.names, lines.values, null, new Uint8Array(bytes)))
  }
  return pump(body, status, lines, req, res)
}

function sendPlatform(response: WebResponse, req: HarrierRequest, res: HarrierResponse): void | Promise<void> {
  const lines = headerLines(response.headers)
  const status = response.status
  if (response.bodyUsed) throw new TypeError("harrier: the fetch handler's Response body was already read")
  const state = STATE === undefined ? undefined : (response as any)[STATE]
  const inner = state?.body
  if (state !== undefined && (inner === null || inner === undefined)) return res.answer(status, lines.names, lines.values, null, null)
  if (inner !== undefined && inner.stream?.locked === false) {
    const source = inner.source
    if (typeof source === 'string' || source instanceof Uint8Array) return res.answer(status, lines.names, lines.values, null, source)
  }
  const stream = response.body
  if (stream === null) return res.answer(status, lines.names, lines.values, null, null)
  // A body whose length the platform knows (FormData, Blob) is read whole and sent with it.
  if (typeof inner?.length === 'number' && inner.length <= WHOLE_BLOB) {
    return new PlatformResponse(stream).arrayBuffer().then((bytes) => res.answer(status, lines.names, lines.values, null, new Uint8Array(bytes)))
  }
  return pump(stream, status, lines, req, res)
}

/** Resolves at the next turn of the event loop (answers written so far are flushed). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Without `res.drained`, the pump gives the event loop a turn after this many bytes. */
const YIELD_BYTES = 1 << 20

/**
 * Waits until the connection takes more (`res.drained()`, where the build has it) or the
 * client goes away; without `drained`, one turn of the event loop.
 */
function drained(res: HarrierResponse, aborted: Promise<void>): Promise<void> {
  const wait = (res as unknown as { drained?: () => Promise<void> }).drained
  if (typeof wait !== 'function') return nextTurn()
  return Promise.race([wait.call(res), aborted])
}

function chunkOf(value: unknown): Uint8Array | string {
  if (value instanceof Uint8Array) return value
  if (typeof value === 'string') return value
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return asBytes(value)
  throw new TypeError(`harrier: a Response body stream gave ${describe(value)}; chunks must be Uint8Array`)
}

const pendingRead = Symbol('pending')

/** Whether `read` settles within a few microtasks: a stream that has its chunks ready. */
function readNow<T>(read: Promise<T>): Promise<T | typeof pendingRead> {
  return Promise.race([read, Promise.resolve().then(() => Promise.resolve(pendingRead))])
}

/**
 * Streams `stream` as the body: what is ready at once is read first, and a stream that ends
 * there is answered whole, with its length; otherwise chunked, each piece written when the
 * connection takes more (`if (!res.write(chunk)) await res.drained()`). The client going away
 * cancels the stream.
 */
async function pump(stream: ReadableStream, status: number, lines: Lines, req: HarrierRequest, res: HarrierResponse): Promise<void> {
  if (res.abandoned) {
    stream.cancel().catch(noop)
    return
  }
  const reader = stream.getReader()
  let onAbort: (() => void) | null = null
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => {
      reader.cancel(req.signal.reason).catch(noop)
      resolve()
    }
  })
  req.signal.addEventListener('abort', onAbort!, { once: true })
  try {
    const ready: (Uint8Array | string)[] = []
    let read: Promise<{ done: boolean; value?: unknown }> | null = reader.read()
    for (let i = 0; i < 2; i++) {
      const got = await readNow(read!)
      if (got === pendingRead) break
      read = null
      if (got.done) {
        if (req.aborted || res.abandoned) return
        const body = ready.length === 0 ? null : ready.length === 1 ? ready[0] : Buffer.concat(ready.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)))
        res.answer(status, lines.names, lines.values, null, body)
        return
      }
      ready.push(chunkOf(got.value))
      read = reader.read()
    }
    if (req.aborted || res.abandoned) return
    res.answerHead(status, lines.names, lines.values, null)
    let sinceTurn = 0
    const write = async (chunk: Uint8Array | string) => {
      const length = typeof chunk === 'string' ? chunk.length : chunk.byteLength
      if (length === 0) return
      if (!res.write(chunk)) {
        if (!res.abandoned) await drained(res, aborted)
      } else if ((sinceTurn += length) >= YIELD_BYTES && typeof (res as unknown as { drained?: unknown }).drained !== 'function') {
        sinceTurn = 0
        await nextTurn()
      }
    }
    for (const chunk of ready) await write(chunk)
    for (;;) {
      if (req.aborted || res.abandoned) return
      const got = await (read ?? reader.read())
      read = null
      if (got.done) break
      if (req.aborted || res.abandoned) return
      await write(chunkOf(got.value))
    }
    if (!res.abandoned) res.end()
  } catch (error) {
    if (req.aborted || res.abandoned) return
    reader.cancel(error).catch(noop)
    // A body cut short must not look whole: once the head is out, the connection is closed
    // where the body stands (where the build has destroy()); the error goes to onError.
    if (res.headersSent && typeof (res as unknown as { destroy?: unknown }).destroy === 'function') res.destroy()
    throw error
  } finally {
    req.signal.removeEventListener('abort', onAbort!)
  }
}

// ------------------------------------------------------------------------------- the handler

/**
 * A harrier handler that serves `fetch` for the requests of a mount: `prefix` is the mount's
 * path (no trailing slash, `''` for the root), `base()` the listening address for requests
 * whose Host header is no authority.
 */
export function fetchHandler(fetch: FetchHandler, prefix: string, options: MountOptions, base: () => string): Handler {
  if (typeof fetch !== 'function') throw new TypeError('harrier: mount() and serve() need a fetch function: (request, info) => Response')
  const mount: Mount = { strip: options.stripPrefix === true ? prefix.length : 0, base }
  return (req, res) => {
    const request = new FastRequest(req, mount)
    const result = fetch(request as unknown as WebRequest, new Info(req))
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      return Promise.resolve(result).then((response) => send(response, req, res))
    }
    return send(result, req, res)
  }
}
