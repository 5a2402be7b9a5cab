import type { Request } from './request'
import type { Response } from './response'

/** The names of the `:params` in a route path. */
type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never

/** `'*'` when the path ends with a wildcard. */
type WildcardName<P extends string> = P extends `${string}*` ? '*' : never

/**
 * The params object a route path gives its handlers: `'/users/:id'` gives `{ id: string }`.
 * A path that is not a literal type (a `string` variable) gives `Record<string, string>`.
 */
export type RouteParams<P extends string> = string extends P
  ? Record<string, string>
  : { [K in ParamNames<P> | WildcardName<P>]: string }

/** Calls the next middleware or handler; resolves when it (and those after it) finished. */
export type Next = () => Promise<void>

export type Handler<Params extends Record<string, string> = Record<string, string>> = (
  req: Request<Params>,
  res: Response,
  next: Next,
) => unknown

export type Middleware = Handler<Record<string, string>>

/** An I/O backend the engine runs on (see `AppOptions.io`). */
export type IoBackend = 'epoll' | 'kqueue' | 'iocp' | 'uring'

export type ErrorHook = (error: unknown, req: Request) => void

export interface AppOptions {
  /**
   * Who runs the engine: `inline` (on the JS thread, driven by Node's event loop: the least
   * CPU and latency per request), `threads` (native I/O threads hand batches to JS: for spare
   * cores). `auto` (default) is `inline` where the platform has it, unless `ioThreads` is set.
   * The `HARRIER_DRIVER` environment variable overrides `auto`.
   */
  driver?: 'auto' | 'inline' | 'threads'
  /** I/O threads of the `threads` driver (default: one per core). */
  ioThreads?: number
  /**
   * How new connections are spread over the threads that serve one port (the `threads`
   * driver's I/O threads, the workers of `serve({ module })`): `reuseport` (a listener per
   * thread with `SO_REUSEPORT`, the kernel picks one by a hash of the connection's
   * addresses: the default on Linux), or `handoff` (one listener, accepted by a thread of its
   * own that hands each connection to the next thread in turn, as Node's `cluster` does by
   * default: the default elsewhere, where `SO_REUSEPORT` gives every connection to one
   * socket or is missing).
   */
  balance?: 'reuseport' | 'handoff'
  /**
   * The I/O backend: `epoll` (mio: epoll on Linux, kqueue on macOS; the default), `uring`
   * (io_uring, Linux 6.0 or later: `listen()` fails with code `HARRIER_IO_UNAVAILABLE` where
   * the kernel refuses it), or `auto` (io_uring where the kernel allows it, else epoll with one
   * line on stderr saying why). The `HARRIER_IO` environment variable is used when this is
   * not given. `app.io` tells which backend serves.
   */
  io?: 'auto' | 'epoll' | 'uring'
  /** Milliseconds a handler may take before the engine answers 503 for it (default 30000). */
  handlerTimeout?: number
  /** Milliseconds `close()` waits for in-flight requests before closing what is left (default 30000). */
  drainTimeout?: number

  // Protection. Every limit is enforced by the engine before JavaScript sees the request;
  // 0 turns a timeout or limit off.

  /** Milliseconds a request head may take to arrive, from its first byte; then 408 and close (default 10000). */
  headerTimeout?: number
  /** Milliseconds a request body may go without a byte; then 408 and close (default 10000). */
  bodyTimeout?: number
  /**
   * Milliseconds a connection may sit with no request under way (before its first or between
   * two) before it is closed (default 5000); announced as `Keep-Alive: timeout=N` seconds.
   */
  keepAliveTimeout?: number
  /** Milliseconds a client may take none of its response while some is waiting; then close (default 10000). */
  writeTimeout?: number
  /** Bytes of the header section (the field lines after the request line); past it 431 (default 16384). */
  maxHeaderSize?: number
  /** Header fields in a request; past it 431 (default 100, at most 1024). */
  maxHeaderCount?: number
  /** Bytes of the request target (path and query); past it 414 (default 8192). */
  maxUrlLength?: number
  /**
   * Bytes of a request body; past it 413 and close: at once when `Content-Length` says so, the
   * moment a chunked body crosses it (default 1048576). `App.bodyLimit(bytes)` sets it per route.
   */
  maxBodySize?: number
  /** Open connections; past it new ones are closed at once, open ones are not touched (default 10000). */
  maxConnections?: number
  /** Open connections from one client address; past it its new ones are closed at once (default 0: off). */
  maxConnectionsPerIp?: number
  /** Requests per second from one client address (token bucket); past it 429 with `Retry-After` (default 0: off). */
  rateLimit?: number
  /** Requests one client address may send in a burst (default: one second's worth of `rateLimit`). */
  rateBurst?: number
  /**
   * Requests handed to handlers and not answered yet; past it the engine answers 503 with
   * `Retry-After: 1` and stops reading from connections that already wait (default 4096).
   */
  maxPendingRequests?: number
  /**
   * HTTP/2 on the same port as HTTP/1.1, to the same handlers (default on): in cleartext a
   * connection that starts with the HTTP/2 preface is HTTP/2 (prior knowledge, h2c); over TLS
   * ALPN offers `h2` then `http/1.1`. `Upgrade: h2c` is not offered. `false` turns it off.
   */
  http2?: boolean | Http2Options

  /**
   * One line per request (and per WebSocket session), written by the engine off the request
   * path: `'combined'` (Apache/nginx combined format) or `'json'` (JSON lines) to standard
   * output, or `{ format, path }` appended to a file. Off by default.
   */
  accessLog?: AccessLogFormat | { format: AccessLogFormat; path?: string }
  /**
   * Milliseconds `close()` (and SIGINT/SIGTERM) keeps serving, with health routes answering
   * `503 draining`, before it stops accepting and drains: time for a load balancer to see the
   * health check fail and stop sending (default 0: stop accepting at once).
   */
  drainDelay?: number
  /**
   * Bytes (default 65536): a streamed response with more than this queued and not yet taken
   * by the socket makes `res.write()` return false until `drain`; a request body with more
   * than this delivered and not yet read by its handler stops the engine reading from that
   * connection (the client is held back by TCP) until the handler reads on.
   */
  highWaterMark?: number
}

/** What HTTP/2 connections allow (see `AppOptions.http2`). */
export interface Http2Options {
  /** Streams a client may have open at once on one connection; past it, `REFUSED_STREAM` (default 100). */
  maxConcurrentStreams?: number
  /**
   * Bytes of flow-control window per request body (the connection's is four times it): what a
   * client may send before the handler has read it (default 1048576, at most 2147483647).
   */
  initialWindowSize?: number
  /** Bytes of a request's decoded header list; past it, 431 (default: `maxHeaderSize`). */
  maxHeaderListSize?: number
}

export type AccessLogFormat = 'combined' | 'json'

/** The engine's figures (`app.metrics()`, and what the dashboard's stream carries). Totals count since `listen()`. */
export interface Metrics {
  uptimeSeconds: number
  requests: {
    total: number
    byStatus: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number }
    byProtocol: { 'http/1.0': number; 'http/1.1': number; h2: number }
    /** Requests the handlers hold, not answered yet (sampled every 100 ms). */
    inFlight: number
  }
  /** From the end of a request's head to the last byte of its answer handed to the socket. */
  latency: {
    count: number
    sumMs: number
    p50Ms: number
    p90Ms: number
    p99Ms: number
    p999Ms: number
    /** Cumulative: requests answered in less than `leMs`, at each power of two of microseconds. */
    buckets: { leMs: number; count: number }[]
  }
  bytes: { in: number; out: number }
  connections: { open: number; idle: number; accepted: number }
  /** Requests the engine refused, by the status it answered, and connections a limit closed. */
  refusals: { '400': number; '408': number; '413': number; '414': number; '429': number; '431': number; '503': number; connectionLimit: number }
  websockets: { open: number; messagesIn: number; messagesOut: number }
  process: { rssBytes: number; eventLoopDelayMs: { p50: number; p99: number; max: number } }
  accessLog: { droppedLines: number }
}

export interface ListenOptions {
  /** Default: `PORT` from the environment, else 3000. 0 picks a free port. */
  port?: number
  /** Default: `HOST` from the environment, else `0.0.0.0`. */
  host?: string
  /** Close gracefully on SIGINT and SIGTERM (default true). */
  signals?: boolean
  /** Serve HTTPS (and `wss://`): TLS terminated in the engine with rustls. */
  tls?: TlsOptions
}

/** A certificate and its key: each a path, or the PEM itself (a string starting with `-----BEGIN`, or a Buffer). */
export interface TlsCertificate {
  /** The certificate chain, leaf first. */
  cert: string | Buffer
  /** The private key: PKCS#8, PKCS#1 RSA or SEC1 EC, not encrypted. */
  key: string | Buffer
}

export interface TlsOptions extends TlsCertificate {
  /**
   * More certificates, chosen by the server name the client asks for (SNI): exact names
   * (`api.example.com`) and wildcards one label deep (`*.example.com`). Without a match the
   * default `cert` answers.
   */
  sni?: Record<string, TlsCertificate>
  /** The lowest protocol version accepted (default `TLSv1.2`). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
}

export interface Listening {
  port: number
  host: string
}

/** How `app.static` and `res.sendFile` serve files (all answered by the engine, not by JS). */
export interface StaticOptions {
  /** Seconds for `Cache-Control: public, max-age=N`; no `Cache-Control` when absent. */
  maxAge?: number
  /** Adds `immutable` to `Cache-Control`. */
  immutable?: boolean
  /** The file served for a directory (default `index.html`; `''`: none, a directory is 404). */
  index?: string
  /** A file, relative to the root, served for paths that name nothing (single-page apps). */
  fallback?: string
  /** Whether files and directories whose name starts with `.` are served (default `ignore`: 404). */
  dotfiles?: 'ignore' | 'allow'
  /** Whether `file.br` / `file.gz` beside `file` are served to clients that accept them (default true). */
  precompressed?: boolean
}

/** One worker's own figures among the workers of `serve({ module, workers })`. */
export interface WorkerFigures {
  /** `App.workerId` of the worker. */
  id: number
  /** Connections the kernel handed this worker's listener (SO_REUSEPORT spreads them). */
  accepted: number
  /** Requests it answered. */
  requests: number
  /** Connections open on it now. */
  open: number
  inFlight: number
}

/** The figures of the workers of `serve()`: summed over them all, and each one's. */
export interface WorkerMetrics {
  total: Metrics
  workers: WorkerFigures[]
}
