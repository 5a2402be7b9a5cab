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
  /** Milliseconds a handler may take before the engine answers 503 for it (default 30000). */
  handlerTimeout?: number
  /** Milliseconds `close()` waits for in-flight requests before closing what is left (default 30000). */
  drainTimeout?: number
}

export interface ListenOptions {
  /** Default: `PORT` from the environment, else 3000. 0 picks a free port. */
  port?: number
  /** Default: `HOST` from the environment, else `0.0.0.0`. */
  host?: string
  /** Close gracefully on SIGINT and SIGTERM (default true). */
  signals?: boolean
}

export interface Listening {
  port: number
  host: string
}
