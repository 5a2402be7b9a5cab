import { App } from './app'
import type { FetchHandler } from './fetch'
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
 */
export async function serve(options: ServeOptions): Promise<App> {
  if (options === null || typeof options !== 'object') throw new TypeError('harrier: serve() needs options: { fetch, port?, host? }')
  const { fetch, port, host, signals, tls, overrideGlobalObjects, ...appOptions } = options
  if (typeof fetch !== 'function') throw new TypeError('harrier: serve() needs a fetch function: { fetch: (request, info) => Response }')
  const app = new App(appOptions)
  app.mount('/', fetch, { overrideGlobalObjects })
  await app.listen({ port, host, signals, tls })
  return app
}
