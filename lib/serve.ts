import { App } from './app'
import type { FetchHandler } from './fetch'
import { serveModule, type ServeModuleOptions, type Served } from './workers'
import type { AppOptions, TlsOptions } from './types'

export interface ServeOptions extends AppOptions {
  /** The web-standard handler: `(request, info) => Response | Promise<Response>` (`hono.fetch`). */
  fetch: FetchHandler
  /** Default: `PORT` from the environment, else 3000. 0 picks a free port (`app.port` tells which). */
  port?: number
  /** Default: `HOST` from the environment, else `0.0.0.0`. */
  host?: string
  /** Close gracefully on SIGINT and SIGTERM (default true). */
  signals?: boolean
  /** Serve HTTPS (see `ListenOptions.tls`). */
  tls?: TlsOptions
  /** See `MountOptions.overrideGlobalObjects` (default true). */
  overrideGlobalObjects?: boolean
}

/**
 * Serves `fetch` for every method and path, like `Bun.serve` and `Deno.serve`: resolves to the
 * listening App (`app.port`, `app.host`, `app.close()`). Other options are the App's.
 *
 * With `{ module, workers }` instead: serves the App that `module` exports from `workers`
 * worker threads on one port (see `ServeModuleOptions`), resolving to `Served`.
 */
export function serve(options: ServeModuleOptions): Promise<Served>
export function serve(options: ServeOptions): Promise<App>
export function serve(options: ServeOptions | ServeModuleOptions): Promise<App | Served> {
  if (options !== null && typeof options === 'object' && 'module' in options && options.module !== undefined) {
    if ('fetch' in options && options.fetch !== undefined) return Promise.reject(new TypeError('harrier: serve() takes { fetch } or { module }, not both'))
    return serveModule(options)
  }
  return serveFetch(options as ServeOptions)
}

async function serveFetch(options: ServeOptions): Promise<App> {
  if (options === null || typeof options !== 'object') throw new TypeError('harrier: serve() needs options: { fetch, port?, host? } or { module, workers? }')
  const { fetch, port, host, signals, tls, overrideGlobalObjects, ...appOptions } = options
  if (typeof fetch !== 'function') throw new TypeError('harrier: serve() needs a fetch function: { fetch: (request, info) => Response }')
  const app = new App(appOptions)
  app.mount('/', fetch, { overrideGlobalObjects })
  await app.listen({ port, host, signals, tls })
  return app
}
