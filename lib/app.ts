import { resolve as resolvePath } from 'node:path'
import { isMainThread, workerData } from 'node:worker_threads'
import { HttpError } from './errors'
import { InflightTable } from './inflight'
import { NativeServer, checkRoute, inlineSupported } from './native'
import { ReplyBuffer } from './reply-buffer'
import { Request, readParams } from './request'
import { Response, checkStaticOptions } from './response'
import { unwatchSignals, watchSignals } from './signals'
import { type EngineRoute, LoopDelayReporter, accessLogOptions } from './ops'
import type { FetchHandler, MountOptions } from './fetch'
import { loadTls, tlsError } from './tls'
import type { AppOptions, ErrorHook, Handler, IoBackend, Listening, ListenOptions, Metrics, Middleware, WorkerMetrics, Next, RouteParams, StaticOptions, TlsOptions } from './types'
import { WebSocket, acceptUpgrade, publish, type WebSocketBehavior, type WebSocketData, type WebSocketHub } from './websocket'
import {
  EVENT_ABORT, EVENT_BODY, EVENT_DRAIN, EVENT_END, EVENT_REQUEST, EVENT_WS_CLOSE, EVENT_WS_DRAIN, EVENT_WS_MESSAGE, EVENT_WS_OPEN, FLAG_UPGRADE, WS_ASCII, WS_BINARY_MESSAGE, WS_TEXT, requestWords,
} from './wire'

interface Route {
  method: string
  path: string
  paramNames: readonly string[]
  /** Position among routes and middleware, for running middleware in registration order. */
  order: number
  handlers: Handler[]
  /** Body limit of this route (`App.bodyLimit`), replacing `maxBodySize`. */
  bodyLimit?: number
  /** A directory the engine serves for this route (`app.static`). */
  static?: { root: string; options: StaticOptions }
  /** A WebSocket endpoint (`app.ws`). */
  ws?: WebSocketBehavior<any, any>
  /** Answered by the engine with its own figures (`metricsRoute`, `healthRoute`, `dashboard`). */
  ops?: EngineRoute
}

/** An accepted handshake whose 101 is on its way: what the socket will be given. */
interface Opening {
  behavior: WebSocketBehavior<any, any>
  data: unknown
  params: Record<string, string>
}

/** `ws.params` of a route without parameters or `upgrade`: one frozen object for every such socket. */
const NO_PARAMS: Record<string, string> = Object.freeze({})
/* Distinct client addresses kept before the table starts again. */
const MAX_REMOTES = 4096

/** Where a WebSocket (or its opening) is found by its thread and id. */
const socketKey = (thread: number, id: number) => id * 64 + thread

function checkBehavior(behavior: WebSocketBehavior<any, any>): void {
  if (behavior === null || typeof behavior !== 'object') throw new TypeError('harrier: ws() needs a behavior object')
  for (const key of ['upgrade', 'open', 'message', 'drain', 'close'] as const) {
    if (behavior[key] !== undefined && typeof behavior[key] !== 'function') throw new TypeError(`harrier: ws behavior ${key} must be a function`)
  }
  for (const key of ['maxPayloadLength', 'backpressureLimit'] as const) {
    const v = behavior[key]
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new RangeError(`harrier: ws option ${key} must be a non-negative integer, got ${v}`)
  }
  const idle = behavior.idleTimeout
  if (idle !== undefined && !(Number.isFinite(idle) && idle >= 0 && idle <= 2 ** 31 / 1000)) throw new RangeError(`harrier: ws option idleTimeout must be a number of seconds, got ${idle}`)
  const deflate = behavior.perMessageDeflate
  if (deflate !== undefined && typeof deflate !== 'boolean') {
    if (deflate === null || typeof deflate !== 'object') throw new TypeError('harrier: ws option perMessageDeflate must be a boolean or { threshold }')
    if (deflate.threshold !== undefined && !(Number.isSafeInteger(deflate.threshold) && deflate.threshold >= 0)) {
      throw new RangeError(`harrier: ws option perMessageDeflate.threshold must be a non-negative integer, got ${deflate.threshold}`)
    }
  }
  const protocols = behavior.protocols
  if (protocols !== undefined && !(Array.isArray(protocols) && protocols.every((p) => typeof p === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(p)))) {
    throw new TypeError('harrier: ws option protocols must be an array of subprotocol tokens')
  }
}

/** The fetch layer, loaded by the first `mount()` (or `serve({ fetch })`): it loads the
 * platform's undici, which an app without fetch handlers does not pay for (see platform.ts). */
let fetchModule: typeof import('./fetch') | undefined
const fetchLayer = (): typeof import('./fetch') => (fetchModule ??= require('./fetch') as typeof import('./fetch'))

const BODY_LIMIT = Symbol('harrier.bodyLimit')
/** How a worker of `serve({ module })` (lib/worker-entry.ts) listens: in its port group. */
export const LISTEN_GROUPED = Symbol.for('harrier.listenGrouped')

/** The id `serve()` gave this worker thread, or null (the main thread, or another worker). */
const WORKER_ID: number | null = (() => {
  if (isMainThread) return null
  const id = (workerData as { harrier?: { workerId?: unknown } } | null)?.harrier?.workerId
  return typeof id === 'number' ? id : null
})()

/** An engine's place among the workers serving one port. @internal */
export interface GroupPlace {
  role: 'founds' | 'joins'
  member: number
}

interface Use {
  prefix: string
  fn: Middleware
  order: number
}


const RESOLVED: Promise<void> = Promise.resolve()
const IO_NAMES = ['auto', 'epoll', 'uring'] as const

/** A backend the kernel refuses gets its own code; other failures (address in use) pass. */
function listenError(e: unknown, io: string | undefined): unknown {
  const message = e instanceof Error ? e.message : String(e)
  if (!message.startsWith('io unavailable: ')) return e
  const error = new Error(`harrier: io '${io}' was asked for, but ${message.slice('io unavailable: '.length)}`, { cause: e })
  ;(error as Error & { code: string }).code = 'HARRIER_IO_UNAVAILABLE'
  return error
}

/* A run of one socket's binary messages copied out together stays under this: what a
   message kept by user code keeps alive of the others. */
const MESSAGE_RUN_BYTES = 64 * 1024

/**
 * Where the run of binary messages that starts with the message event at `i` ends in
 * `bytes`: the messages of the same socket that follow it, each right after the one before.
 * They are copied out of the batch together, into one Buffer they share (as the chunks
 * Node reads from one socket do): one allocation for a read's worth of them, not one each.
 */
function binaryRunEnd(meta: Uint32Array, i: number): number {
  const id = meta[i + 1]
  const slot = meta[i + 2]
  const start = meta[i + 4]
  let end = start + meta[i + 5]
  for (let j = i + 6; j + 5 < meta.length; j += 6) {
    if (meta[j] !== EVENT_WS_MESSAGE || meta[j + 1] !== id || meta[j + 2] !== slot) break
    if (meta[j + 3] !== WS_BINARY_MESSAGE || meta[j + 4] !== end || end - start + meta[j + 5] > MESSAGE_RUN_BYTES) break
    end += meta[j + 5]
  }
  return end
}

/**
 * Whether `bytes` is all of its memory (a batch handed over in memory of its own, not a view
 * of an arena): then a run of one socket's messages that fills it may be viewed in place,
 * since `message.buffer` reaches nothing of any other socket's.
 */
function ownsMemory(bytes: Buffer): boolean {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length
}

/**
 * A body chunk in memory of its own: a view of the batch would let `chunk.buffer` reach the
 * heads of other requests (other clients' headers) read in the same wake.
 */
function ownCopy(bytes: Buffer, start: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafeSlow(length)
  bytes.copy(chunk, 0, start, start + length)
  return chunk
}
const done: Next = () => RESOLVED

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
}

function underPrefix(path: string, prefix: string): boolean {
  return prefix === '/' || path === prefix || (path.startsWith(prefix) && path[prefix.length] === '/')
}

function checkHandlers(handlers: unknown[]): Handler[] {
  if (handlers.length === 0) throw new TypeError('harrier: a route needs at least one handler')
  for (const h of handlers) if (typeof h !== 'function') throw new TypeError('harrier: handlers must be functions')
  return handlers as Handler[]
}

/**
 * An HTTP server: routes and middleware in TypeScript, the engine in Rust. Routing, 404 and
 * 405 happen in the engine; handlers see only requests for their routes.
 */
export class App {
  /**
   * Inside a worker of `serve({ module, workers })`: its id, `0..workers-1` (a restarted
   * worker keeps its id); `null` on the main thread and in threads `serve()` did not start.
   */
  static get workerId(): number | null {
    return WORKER_ID
  }

  /** Called once for every error a handler throws or rejects with; the default logs it. */
  onError: ErrorHook | null = null
  /** Called for every error a WebSocket callback throws or rejects with; the default logs it. */
  onWebSocketError: ((error: unknown, ws: WebSocket<any, any>) => void) | null = null

  private readonly settings: AppOptions
  private loopDelay: LoopDelayReporter | null = null
  /** Bytes a streamed response may queue before `write()` returns false; a request body's unread share likewise. */
  private get highWaterMark(): number {
    return this.settings.highWaterMark ?? 64 * 1024
  }
  private readonly routes: Route[] = []
  private readonly uses: Use[] = []
  private order = 0
  private chains: Handler[][] = []
  private native: NativeServer | null = null
  private out: ReplyBuffer | null = null
  private readonly inflight = new InflightTable<Request>()
  private closing: Promise<void> | null = null
  private keepAlive: NodeJS.Timeout | null = null
  private readonly openings = new Map<number, Opening>()
  /** Open WebSockets by I/O thread and connection slot (their ids tell a reused slot apart). */
  private readonly sockets: (WebSocket<any, any> | undefined)[][] = []
  /**
   * The client addresses WebSockets were opened from (the last 4,096), each string kept
   * once: every object a socket keeps lives as long as it does, and a crowd of sockets
   * comes from few addresses (a proxy, a NAT, a test client).
   */
  private readonly remotes = new Map<string, string>()
  private readonly topicHeaders = new Map<string, Buffer>()
  /** Serving as one of `serve()`'s workers: the other engines on the port share pub/sub. */
  private group: GroupPlace | null = null
  private grouped = false
  private readonly hub: WebSocketHub = {
    peerCount: (topic) => (this.grouped && this.native !== null ? this.native.peerSubscriberCount(topic) : 0),
    out: null as unknown as ReplyBuffer,
    topics: new Map(),
    topicHeader: (topic) => {
      let h = this.topicHeaders.get(topic)
      if (h === undefined) {
        const name = Buffer.from(topic)
        h = Buffer.alloc(8 + name.length)
        h.writeUInt32LE(name.length, 0)
        name.copy(h, 8)
        // Topics repeat; a bounded cache keeps their encoded form.
        if (this.topicHeaders.size >= 4096) this.topicHeaders.clear()
        this.topicHeaders.set(topic, h)
      }
      return h
    },
    failed: (error, ws) => {
      try {
        if (this.onWebSocketError) this.onWebSocketError(error, ws)
        else console.error('harrier: a WebSocket callback failed:', error)
      } catch (hookError) {
        console.error('harrier: onWebSocketError threw:', hookError)
      }
    },
  }

  constructor(options: AppOptions = {}) {
    for (const key of [
      'ioThreads', 'handlerTimeout', 'drainTimeout', 'drainDelay', 'highWaterMark', 'headerTimeout', 'bodyTimeout', 'keepAliveTimeout', 'writeTimeout',
      'maxHeaderSize', 'maxHeaderCount', 'maxUrlLength', 'maxConnections', 'maxConnectionsPerIp', 'rateBurst', 'maxPendingRequests',
    ] as const) {
      const v = options[key]
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 2 ** 31)) {
        throw new RangeError(`harrier: option ${key} must be a non-negative integer, got ${v}`)
      }
    }
    if (options.maxBodySize !== undefined && !(Number.isSafeInteger(options.maxBodySize) && options.maxBodySize >= 0)) {
      throw new RangeError(`harrier: option maxBodySize must be a non-negative integer, got ${options.maxBodySize}`)
    }
    if (options.rateLimit !== undefined && !(Number.isFinite(options.rateLimit) && options.rateLimit >= 0)) {
      throw new RangeError(`harrier: option rateLimit must be a non-negative number, got ${options.rateLimit}`)
    }
    if (options.io !== undefined && !IO_NAMES.includes(options.io)) {
      throw new RangeError(`harrier: option io must be 'auto', 'epoll' or 'uring', got ${String(options.io)}`)
    }
    const http2 = options.http2
    if (http2 !== undefined && typeof http2 !== 'boolean') {
      if (http2 === null || typeof http2 !== 'object') throw new TypeError('harrier: option http2 must be a boolean or an object of HTTP/2 options')
      for (const key of ['maxConcurrentStreams', 'initialWindowSize', 'maxHeaderListSize'] as const) {
        const v = http2[key]
        const max = key === 'initialWindowSize' ? 2 ** 31 - 1 : 2 ** 32 - 1
        if (v !== undefined && (!Number.isInteger(v) || v < (key === 'initialWindowSize' ? 1 : 0) || v > max)) {
          throw new RangeError(`harrier: option http2.${key} must be an integer from ${key === 'initialWindowSize' ? 1 : 0} to ${max}, got ${v}`)
        }
      }
    }
    if (options.balance !== undefined && options.balance !== 'reuseport' && options.balance !== 'handoff') {
      throw new RangeError(`harrier: option balance must be 'reuseport' or 'handoff', got ${String(options.balance)}`)
    }
    if (options.driver !== undefined && !['auto', 'inline', 'threads'].includes(options.driver)) {
      throw new RangeError(`harrier: option driver must be 'auto', 'inline' or 'threads', got ${String(options.driver)}`)
    }
    this.settings = { ...options }
  }

  /** The driver `listen()` uses: what was asked, else `HARRIER_DRIVER`, else inline where possible. */
  get driver(): 'inline' | 'threads' {
    let asked = this.settings.driver ?? 'auto'
    if (asked === 'auto') {
      const env = process.env.HARRIER_DRIVER
      if (env === 'inline' || env === 'threads') asked = env
    }
    if (asked === 'auto') asked = this.settings.ioThreads === undefined ? 'inline' : 'threads'
    if (asked === 'inline' && !inlineSupported()) {
      if (this.settings.driver === 'inline') throw new Error(`harrier: the inline driver is not available on ${process.platform}`)
      return 'threads'
    }
    return asked
  }

  /**
   * The I/O backend serving, once listening: `uring`, or `epoll` (`kqueue` on macOS); `null`
   * before `listen()` and after `close()`.
   */
  get io(): IoBackend | null {
    return (this.native?.io as IoBackend | undefined) ?? null
  }

  /** The backend asked for: the option, else `HARRIER_IO`, else the engine's default. */
  private askedIo(): 'auto' | 'epoll' | 'uring' | undefined {
    if (this.settings.io !== undefined) return this.settings.io
    const env = process.env.HARRIER_IO
    if (env === undefined || env === '') return undefined
    if (!(IO_NAMES as readonly string[]).includes(env)) {
      throw new RangeError(`harrier: HARRIER_IO must be 'auto', 'epoll' or 'uring', got ${JSON.stringify(env)}`)
    }
    return env as 'auto' | 'epoll' | 'uring'
  }

  get<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('GET', path, handlers)
  }
  post<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('POST', path, handlers)
  }
  put<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('PUT', path, handlers)
  }
  patch<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('PATCH', path, handlers)
  }
  delete<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('DELETE', path, handlers)
  }
  head<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('HEAD', path, handlers)
  }
  options<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('OPTIONS', path, handlers)
  }
  /** A route for every method. */
  all<P extends string>(path: P, ...handlers: Handler<RouteParams<P>>[]): this {
    return this.route('*', path, handlers)
  }

  /**
   * A WebSocket endpoint: a GET to `path` with a valid handshake becomes a WebSocket (after
   * `behavior.upgrade`, if given); one without gets 426. Framing, pings, the close handshake
   * and pub/sub fan-out happen in the engine; callbacks see whole messages.
   */
  ws<P extends string, Data = undefined>(path: P, behavior: WebSocketBehavior<Data, RouteParams<P>>): this {
    this.assertNotListening()
    if (typeof path !== 'string') throw new TypeError('harrier: a route path must be a string')
    checkBehavior(behavior as WebSocketBehavior<any, any>)
    const paramNames = checkRoute('GET', path)
    if (this.routes.some((r) => r.method === 'GET' && r.path === path)) throw new Error(`harrier: ${path} already has a GET route`)
    this.routes.push({ method: 'GET', path, paramNames, order: this.order++, handlers: [], ws: { ...behavior } })
    return this
  }

  /** Sends to every subscriber of `topic`, framed once in the engine; returns how many sockets it was queued for. */
  publish(topic: string, data: WebSocketData, compress = true): number {
    const count = (this.hub.topics.get(topic)?.size ?? 0) + this.hub.peerCount(topic)
    if (count > 0) publish(this.hub, topic, data, compress, null)
    return count
  }

  /**
   * Open sockets subscribed to `topic`; in a worker of `serve()`, on every worker (the other
   * workers' as their engines last applied them).
   */
  subscriberCount(topic: string): number {
    return (this.hub.topics.get(topic)?.size ?? 0) + this.hub.peerCount(topic)
  }

  /** Middleware for every route, or for the routes under a path prefix; runs in registration order with the routes. */
  use(middleware: Middleware): this
  use(prefix: string, middleware: Middleware): this
  use(prefixOrMiddleware: string | Middleware, middleware?: Middleware): this {
    this.assertNotListening()
    const prefix = typeof prefixOrMiddleware === 'string' ? prefixOrMiddleware : '/'
    const fn = typeof prefixOrMiddleware === 'string' ? middleware : prefixOrMiddleware
    if (typeof fn !== 'function') throw new TypeError('harrier: use() needs a middleware function')
    if (!prefix.startsWith('/')) throw new TypeError(`harrier: middleware prefix ${JSON.stringify(prefix)} must start with '/'`)
    this.uses.push({ prefix: prefix.length > 1 ? prefix.replace(/\/+$/, '') : prefix, fn, order: this.order++ })
    return this
  }

  /**
   * A route option, given among its handlers: `app.post('/upload', App.bodyLimit(50 * 2 ** 20), handler)`.
   * Bodies of that route may be up to `bytes` long instead of `maxBodySize` (0: no limit).
   */
  static bodyLimit(bytes: number): Middleware {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0)) throw new RangeError(`harrier: bodyLimit must be a non-negative integer, got ${bytes}`)
    return Object.assign((req: Request, res: Response, next: Next) => next(), { [BODY_LIMIT]: bytes })
  }

  /**
   * Serves the files under `root` at `prefix` (`app.static('/assets', './public')`), in the
   * engine: requests for them never reach JavaScript or middleware.
   */
  static(prefix: string, root: string, options: StaticOptions = {}): this {
    this.assertNotListening()
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new TypeError(`harrier: static prefix ${JSON.stringify(prefix)} must start with '/'`)
    if (typeof root !== 'string' || root === '') throw new TypeError('harrier: static() needs a root directory')
    checkStaticOptions(options)
    const bare = prefix.replace(/\/+$/, '')
    const mount = { root: resolvePath(root), options: { ...options } }
    // `/assets/*` (which also answers `/assets/`), and `/assets` itself
    for (const path of bare === '' ? ['/*'] : [`${bare}/*`, bare]) {
      const paramNames = checkRoute('GET', path)
      if (this.routes.some((r) => r.method === 'GET' && r.path === path)) throw new Error(`harrier: ${path} already has a GET route`)
      this.routes.push({ method: 'GET', path, paramNames, order: this.order++, handlers: [], static: mount })
    }
    return this
  }

  /**
   * Serves a web-standard `fetch(request, info)` handler (`hono.fetch`) for every method and
   * path under `prefix` (`prefix` itself, and everything below it). The handler sees the full
   * path unless `stripPrefix` is set. Routes, static files and WebSockets registered on the
   * app keep their paths: the more specific route wins, as between any two routes.
   * Middleware added with `use()` before the mount runs before the handler.
   */
  mount(prefix: string, fetch: FetchHandler, options: MountOptions = {}): this {
    this.assertNotListening()
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new TypeError(`harrier: mount prefix ${JSON.stringify(prefix)} must start with '/'`)
    if (/[:*]/.test(prefix)) throw new TypeError(`harrier: mount prefix ${JSON.stringify(prefix)} cannot have params or wildcards`)
    if (options === null || typeof options !== 'object') throw new TypeError('harrier: mount options must be an object')
    const bare = prefix.replace(/\/+$/, '')
    const { fetchHandler, installGlobals } = fetchLayer()
    const handler = fetchHandler(fetch, bare, options, () => {
      const host = this.host ?? '127.0.0.1'
      return `${host.includes(':') ? `[${host}]` : host}:${this.port ?? 0}`
    })
    if (options.overrideGlobalObjects !== false) installGlobals()
    for (const path of bare === '' ? ['/*'] : [`${bare}/*`, bare]) this.route('*', path, [handler])
    return this
  }

  /** The port the app listens on; `null` before `listen()` resolves and after `close()`. */
  get port(): number | null {
    return this.native?.port ?? null
  }

  /** The address the app listens on (as given to `listen()`); `null` when not listening. */
  get host(): string | null {
    return this.native?.host ?? null
  }

  /** `path` answers with the engine's figures in Prometheus text format (never reaching JS). */
  metricsRoute(path: string): this {
    return this.engineRoute(path, 'metrics')
  }

  /**
   * `path` answers `200 ok` while serving and `503 draining` from the moment `close()` (or
   * SIGINT/SIGTERM) starts the drain, from the engine, so that a load balancer stops sending first.
   */
  healthRoute(path: string): this {
    return this.engineRoute(path, 'health')
  }

  /** A live page of the engine's figures at `path`, fed by an event stream at `path/events`. */
  dashboard(path: string): this {
    const bare = path.replace(/\/+$/, '')
    this.engineRoute(bare === '' ? '/' : bare, 'dashboard')
    return this.engineRoute(`${bare}/events`, 'dashboardEvents')
  }

  /** The engine's figures now (see `Metrics`); only while listening. */
  metrics(): Metrics {
    if (!this.native) throw new Error('harrier: metrics() needs a listening app')
    return JSON.parse(this.native.metricsJson()) as Metrics
  }

  private engineRoute(path: string, ops: EngineRoute): this {
    this.assertNotListening()
    if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError(`harrier: route path ${JSON.stringify(path)} must start with '/'`)
    const paramNames = checkRoute('GET', path)
    if (paramNames.length > 0) throw new TypeError(`harrier: ${path}: an engine route takes no params`)
    if (this.routes.some((r) => r.method === 'GET' && r.path === path)) throw new Error(`harrier: ${path} already has a GET route`)
    this.routes.push({ method: 'GET', path, paramNames, order: this.order++, handlers: [], ops })
    return this
  }

  private route(method: string, path: string, handlers: unknown[]): this {
    this.assertNotListening()
    if (typeof path !== 'string') throw new TypeError('harrier: a route path must be a string')
    const options = handlers.filter((h) => typeof h === 'function' && BODY_LIMIT in h) as Array<{ [BODY_LIMIT]: number }>
    const checked = checkHandlers(handlers.filter((h) => !options.includes(h as never)))
    const bodyLimit = options.length > 0 ? options[options.length - 1][BODY_LIMIT] : undefined
    const paramNames = checkRoute(method, path)
    const same = this.routes.find((r) => r.method === method && r.path === path)
    if (same) {
      same.handlers.push(...checked)
      if (bodyLimit !== undefined) same.bodyLimit = bodyLimit
    } else this.routes.push({ method, path, paramNames, order: this.order++, handlers: [...checked], bodyLimit })
    return this
  }

  private assertNotListening(): void {
    if (this.native) throw new Error('harrier: routes and middleware must be added before listen()')
  }

  /** Middleware that applies to `route`, then its handlers. */
  private compile(route: Route): Handler[] {
    const chain: Handler[] = []
    const dynamic = /[:*]/.test(route.path)
    for (const use of this.uses) {
      if (use.order > route.order) continue
      if (underPrefix(route.path, use.prefix)) chain.push(use.fn as Handler)
      else if (dynamic) {
        // Whether a path with params falls under the prefix is known only per request.
        const { prefix, fn } = use
        chain.push((req, res, next) => (underPrefix(req.path, prefix) ? fn(req, res, next) : next()))
      }
    }
    chain.push(...route.handlers)
    return chain
  }

  /** Starts serving; resolves once every I/O thread listens. */
  async listen(options: ListenOptions = {}): Promise<Listening> {
    if (this.native) throw new Error('harrier: already listening')
    const port = options.port ?? (process.env.PORT ? Number(process.env.PORT) : 3000)
    const host = options.host ?? process.env.HOST ?? '0.0.0.0'
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`harrier: port must be 0-65535, got ${port}`)
    const io = this.askedIo()
    const tls = options.tls === undefined ? undefined : await loadTls(options.tls)
    if (this.native) throw new Error('harrier: already listening')
    this.chains = this.routes.map((r) => this.compile(r))
    const out = new ReplyBuffer(
      (ops) => this.native?.respond(ops),
      (buffer) => this.native?.replyBuffer(buffer),
    )
    let native: NativeServer
    try {
      native = NativeServer.listen(
      {
        host,
        port,
        driver: this.group !== null ? 'inline' : this.driver,
        ioThreads: this.settings.ioThreads,
        portGroup: this.group?.role,
        groupMember: this.group?.member,
        balance: this.settings.balance,
        io,
        handlerTimeoutMs: this.settings.handlerTimeout,
        drainTimeoutMs: this.settings.drainTimeout,
        headerTimeoutMs: this.settings.headerTimeout,
        bodyTimeoutMs: this.settings.bodyTimeout,
        keepAliveTimeoutMs: this.settings.keepAliveTimeout,
        writeTimeoutMs: this.settings.writeTimeout,
        maxHeaderSize: this.settings.maxHeaderSize,
        maxHeaderCount: this.settings.maxHeaderCount,
        maxUrlLength: this.settings.maxUrlLength,
        maxBodySize: this.settings.maxBodySize,
        maxConnections: this.settings.maxConnections,
        maxConnectionsPerIp: this.settings.maxConnectionsPerIp,
        rateLimit: this.settings.rateLimit,
        rateBurst: this.settings.rateBurst,
        maxPendingRequests: this.settings.maxPendingRequests,
        tls,
        highWaterMark: this.highWaterMark,
        ...accessLogOptions(this.settings.accessLog),
        http2: this.settings.http2 !== false,
        http2MaxConcurrentStreams: typeof this.settings.http2 === 'object' ? this.settings.http2.maxConcurrentStreams : undefined,
        http2InitialWindowSize: typeof this.settings.http2 === 'object' ? this.settings.http2.initialWindowSize : undefined,
        http2MaxHeaderListSize: typeof this.settings.http2 === 'object' ? this.settings.http2.maxHeaderListSize : undefined,
      },
      this.routes.map((r) => ({
        method: r.method,
        path: r.path,
        bodyLimit: r.bodyLimit,
        staticRoot: r.static?.root,
        maxAge: r.static?.options.maxAge,
        immutable: r.static?.options.immutable,
        index: r.static?.options.index,
        fallback: r.static?.options.fallback,
        dotfiles: r.static?.options.dotfiles,
        precompressed: r.static?.options.precompressed,
        websocket: r.ws !== undefined,
        maxPayloadLength: r.ws?.maxPayloadLength,
        idleTimeoutMs: r.ws?.idleTimeout === undefined ? undefined : Math.round(r.ws.idleTimeout * 1000),
        backpressureLimit: r.ws?.backpressureLimit,
        protocols: r.ws?.protocols,
        perMessageDeflate: r.ws === undefined ? undefined : r.ws.perMessageDeflate !== undefined && r.ws.perMessageDeflate !== false,
        deflateThreshold: typeof r.ws?.perMessageDeflate === 'object' ? r.ws.perMessageDeflate.threshold : undefined,
        upgradeInHandler: r.ws?.upgrade !== undefined,
        ops: r.ops,
      })),
      (bytes, meta, bytesStart, bytesEnd, metaStart, metaEnd) =>
        // The inline driver writes heads-only batches into arenas it reuses: views of them.
        bytesStart === undefined ? this.onBatch(bytes, meta) : this.onBatch(bytes.subarray(bytesStart, bytesEnd), meta.subarray(metaStart, metaEnd)),
      out.buffer,
      out.shared,
    )
    } catch (e) {
      throw listenError(e, io)
    }
    this.native = native
    this.grouped = native.grouped
    this.loopDelay = new LoopDelayReporter(native)
    this.out = out
    ;(this.hub as { out: ReplyBuffer }).out = out
    // The engine's callback does not hold the process open; this does, until close().
    this.keepAlive = setInterval(() => {}, 2 ** 30)
    if (options.signals !== false) watchSignals(this)
    return { port: native.port, host: native.host }
  }

  /** Listens as one of the workers of `serve()` on its port. @internal */
  [LISTEN_GROUPED](listen: ListenOptions, group: GroupPlace, options: AppOptions): Promise<Listening> {
    // What serve() was given applies over the app's own options (checked there already).
    Object.assign(this.settings, options, { driver: 'inline', ioThreads: undefined })
    this.group = group
    return this.listen(listen).catch((e: unknown) => {
      this.group = null
      throw e
    })
  }

  /**
   * The figures of every worker of `serve()` this app serves among, summed (`app.metrics()`
   * is too), and each worker's own: how the kernel spread the connections. `null` outside.
   */
  workerMetrics(): WorkerMetrics | null {
    if (!this.native) throw new Error('harrier: workerMetrics() needs a listening app')
    const json = this.native.groupMetricsJson()
    return json === null || json === undefined ? null : (JSON.parse(json) as WorkerMetrics)
  }

  /**
   * New TLS handshakes use these certificates; connections open already keep theirs. Rejects
   * (and the certificates in use stay) if they cannot serve: an error with
   * `code: 'ERR_HARRIER_TLS'` that names the option and why.
   */
  async reloadTls(tls: TlsOptions): Promise<void> {
    const loaded = await loadTls(tls)
    if (!this.native) throw tlsError('reloadTls: the app is not listening')
    this.native.reloadTls(loaded)
  }

  /** Stops accepting, lets in-flight requests finish, closes idle connections, then resolves. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    const native = this.native
    if (!native) return RESOLVED
    this.closing = (async () => {
      try {
        const delay = this.settings.drainDelay ?? 0
        if (delay > 0) {
          native.announceDrain()
          await new Promise((resolve) => setTimeout(resolve, delay))
        }
        this.out?.flush()
        await native.close()
        for (const req of this.inflight.drain()) {
          req.response?.gone()
          req.abort()
        }
        // Sockets the drain did not see close (a client that never answered the 1001).
        for (const table of this.sockets) if (table !== undefined) for (const ws of table) ws?.closed(1006, '')
      } finally {
        // Whatever went wrong above, the app lets go of the process and can listen again.
        this.sockets.length = 0
        this.openings.clear()
        if (this.keepAlive) clearInterval(this.keepAlive)
        this.keepAlive = null
        unwatchSignals(this)
        this.loopDelay?.stop()
        this.loopDelay = null
        this.native = null
        this.grouped = false
        this.out = null
        this.closing = null
      }
    })()
    return this.closing
  }

  /** One batch from an I/O thread: every event it gathered in one wake. */
  private onBatch(bytes: Buffer, meta: Uint32Array): void {
    const out = this.out
    if (out === null) return
    const thread = meta[0]
    // The inline driver has begun the turn and takes the answers at its end; otherwise the
    // answers of this batch go in one call when it is dispatched.
    const ownTurn = out.beginTurn()
    // The binary messages copied out last, and where they began in `bytes`.
    let run: Buffer | null = null
    let runStart = 0
    try {
      let i = 1
      while (i < meta.length) {
        const kind = meta[i]
        if (kind === EVENT_REQUEST) {
          const route = meta[i + 3]
          const upgrade = (meta[i + 4] & FLAG_UPGRADE) !== 0
          const req = new Request(thread, bytes, meta, i, this.routes[route].paramNames)
          const res = new Response(out, thread, req.slot, req.rid, this.inflight, this.highWaterMark)
          req.response = res
          req.out = out
          res.request = req
          this.inflight.add(thread, req)
          i += requestWords(meta, i)
          if (upgrade) this.upgrade(this.routes[route].ws!, req, res)
          else this.run(this.chains[route], req, res)
        } else if (kind === EVENT_BODY) {
          this.inflight.get(thread, meta[i + 1])?.pushBody(ownCopy(bytes, meta[i + 2], meta[i + 3]))
          i += 4
        } else if (kind === EVENT_END) {
          this.inflight.get(thread, meta[i + 1])?.endBody()
          i += 2
        } else if (kind === EVENT_ABORT) {
          const req = this.inflight.get(thread, meta[i + 1])
          if (req) {
            this.inflight.delete(thread, req.rid)
            req.response?.gone()
            req.abort()
          }
          this.openings.delete(socketKey(thread, meta[i + 1]))
          i += 2
        } else if (kind === EVENT_WS_MESSAGE) {
          const ws = this.socket(thread, meta[i + 1], meta[i + 2])
          if (ws !== undefined && ws.behavior.message !== undefined) {
            const kind = meta[i + 3]
            const off = meta[i + 4]
            const end = off + meta[i + 5]
            if (kind === WS_ASCII) ws.received(bytes.latin1Slice(off, end))
            else if (kind === WS_TEXT) ws.received(bytes.utf8Slice(off, end))
            else {
              if (run === null || off < runStart || end > runStart + run.length) {
                runStart = off
                const runEnd = binaryRunEnd(meta, i)
                run = off === 0 && runEnd === bytes.length && ownsMemory(bytes) ? bytes : ownCopy(bytes, off, runEnd - off)
              }
              ws.received(run.subarray(off - runStart, end - runStart))
            }
          }
          i += 6
        } else if (kind === EVENT_WS_OPEN) {
          this.opened(thread, bytes, meta, i)
          i += 8 + meta[i + 7] * 2
        } else if (kind === EVENT_WS_CLOSE) {
          const ws = this.socket(thread, meta[i + 1], meta[i + 2])
          this.openings.delete(socketKey(thread, meta[i + 1]))
          if (ws !== undefined) {
            this.sockets[thread][meta[i + 2]] = undefined
            const off = meta[i + 4]
            ws.closed(meta[i + 3], bytes.utf8Slice(off, off + meta[i + 5]))
          }
          i += 6
        } else if (kind === EVENT_DRAIN) {
          this.inflight.get(thread, meta[i + 1])?.response?.drain(meta[i + 3])
          i += 4
        } else if (kind === EVENT_WS_DRAIN) {
          this.socket(thread, meta[i + 1], meta[i + 2])?.drained(meta[i + 3])
          i += 4
        } else {
          throw new Error(`harrier: unknown batch event ${kind}`)
        }
      }
    } finally {
      if (ownTurn) out.endTurn()
    }
  }

  /** A valid handshake: the route's `upgrade` decides (if it has one), then the 101 goes out. */
  private upgrade(behavior: WebSocketBehavior<any, any>, req: Request, res: Response): void {
    const accept = (data: unknown) => {
      if (req.aborted || res.finished) return
      this.inflight.delete(req.thread, req.rid)
      res.abandoned = true
      this.openings.set(socketKey(req.thread, req.rid), { behavior, data, params: req.params })
      acceptUpgrade(this.out!, req)
    }
    if (behavior.upgrade === undefined) return accept(undefined)
    try {
      const result = behavior.upgrade(req)
      if (isThenable(result)) result.then(accept, (e) => this.fail(e, req, res))
      else accept(result)
    } catch (e) {
      this.fail(e, req, res)
    }
  }

  /**
   * The 101 is out: the socket exists, `open` runs. A route without `upgrade` is upgraded by
   * the engine: its socket is first heard of here, with its params.
   */
  private opened(thread: number, bytes: Buffer, meta: Uint32Array, i: number): void {
    const key = socketKey(thread, meta[i + 1])
    let opening = this.openings.get(key)
    if (opening === undefined) {
      const route = this.routes[meta[i + 6]]
      if (route?.ws === undefined || route.ws.upgrade !== undefined) return
      const params = route.paramNames.length === 0 ? NO_PARAMS : readParams(bytes, meta, i + 8, route.paramNames)
      opening = { behavior: route.ws, data: undefined, params }
    } else this.openings.delete(key)
    const protocol = meta[i + 5] === 0 ? '' : opening.behavior.protocols?.[meta[i + 5] - 1] ?? ''
    const remote = this.remoteString(bytes.latin1Slice(meta[i + 3], meta[i + 3] + meta[i + 4]))
    const ws = new WebSocket(this.hub, thread, meta[i + 2], meta[i + 1], opening.behavior, opening.data, opening.params, remote, protocol)
    ;(this.sockets[thread] ??= [])[ws.slot] = ws
    if (opening.behavior.open !== undefined) ws.call(() => opening.behavior.open!(ws))
  }

  /** The one string kept for this address (see `remotes`). */
  private remoteString(remote: string): string {
    const kept = this.remotes.get(remote)
    if (kept !== undefined) return kept
    if (this.remotes.size >= MAX_REMOTES) this.remotes.clear()
    this.remotes.set(remote, remote)
    return remote
  }

  private socket(thread: number, id: number, slot: number): WebSocket<any, any> | undefined {
    const ws = this.sockets[thread]?.[slot]
    return ws !== undefined && ws.id === id ? ws : undefined
  }

  private run(chain: Handler[], req: Request, res: Response): void {
    if (chain.length === 1) {
      try {
        const result = chain[0](req, res, done)
        if (isThenable(result)) result.then(undefined, (e) => this.fail(e, req, res))
      } catch (e) {
        this.fail(e, req, res)
      }
      return
    }
    let index = 0
    const next: Next = () => {
      const fn = chain[index++]
      if (fn === undefined) return RESOLVED
      let p: Promise<void>
      try {
        p = Promise.resolve(fn(req, res, next)).then(() => {})
      } catch (e) {
        p = Promise.reject(e)
      }
      if (index > 1) {
        // Inner calls: the middleware may await and handle the error; if nobody answers, it is reported.
        p.catch((e) => setImmediate(() => !res.finished && this.fail(e, req, res)))
      }
      return p
    }
    next().then(undefined, (e) => this.fail(e, req, res))
  }

  private readonly failed = new WeakSet<Request>()

  /** A handler threw or rejected: report it once, answer 500 (or the HttpError's status). */
  private fail(error: unknown, req: Request, res: Response): void {
    if (this.failed.has(req)) return
    this.failed.add(req)
    // A client that went away is not a handler failure: its body read rejects, nobody is answered.
    if (req.aborted) return
    const http = error instanceof HttpError && error.status >= 400 && error.status <= 599 ? error : null
    if (!http || http.status >= 500) {
      try {
        if (this.onError) this.onError(error, req)
        else console.error(`harrier: ${req.method} ${req.url} failed:`, error)
      } catch (hookError) {
        console.error('harrier: onError threw:', hookError)
      }
    }
    res.fail(http ? http.status : 500, http ? http.message : 'Internal Server Error')
  }
}
