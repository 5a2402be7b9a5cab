// `serve({ module, workers })`: one port, the handlers on N worker threads of one process.
// Each worker imports the module and serves its default-exported App with the inline driver
// on a listener of its own (SO_REUSEPORT: the kernel spreads connections); the engines of
// one port form a group in Rust (engine/group.rs) that shares pub/sub, subscriber counts,
// figures and the drain. The main thread runs no handler: it starts, restarts and drains.
import { availableParallelism } from 'node:os'
import { isAbsolute, join, resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { App, type GroupPlace } from './app'
import { groupAnnounceDrain, groupMetricsJson } from './native'
import { unwatchSignals, watchSignals } from './signals'
import { loadTls } from './tls'
import type { AppOptions, TlsOptions, WorkerFigures, WorkerMetrics } from './types'

export interface ServeModuleOptions extends Omit<AppOptions, 'driver' | 'ioThreads'> {
  /**
   * The module each worker imports: a URL (`new URL('./app.ts', import.meta.url)`), a
   * `file:` URL string, or a path (relative to the working directory). Its default export
   * is an App, not listening. TypeScript needs a loader in the workers too: the process's
   * `--import` / `--loader` flags are theirs as well (`node --import=tsx server.ts`).
   */
  module: string | URL
  /** Worker threads: a count, or `'auto'` (default) for one per core. */
  workers?: number | 'auto'
  /** Default: `PORT` from the environment, else 3000. 0 picks a free port (the result's `port`). */
  port?: number
  /** Default: `HOST` from the environment, else `0.0.0.0`. */
  host?: string
  /** Close every worker gracefully on SIGINT and SIGTERM (default true). */
  signals?: boolean
  /** Serve HTTPS (see `ListenOptions.tls`): every worker with the same certificates. */
  tls?: TlsOptions
  /**
   * Told of every worker that crashed while serving (an uncaught exception, `process.exit`),
   * and of every restart that failed; the default logs it. The worker is restarted after a
   * back-off either way.
   */
  onError?: (error: unknown, worker: { workerId: number; restarts: number }) => void
  /** Milliseconds before the first restart of a crashed worker (default 100); doubled per crash in a row, up to 10 s. */
  restartDelay?: number
}

/** What `serve({ module })` resolves to once every worker listens. */
export interface Served {
  port: number
  host: string
  /** How many workers serve. */
  workers: number
  /** Drains every worker as `app.close()` does (health routes answer 503 at once), then resolves. */
  close(): Promise<void>
  /** The engines' figures summed over the workers, and each worker's (the kernel's spread). */
  metrics(): WorkerMetrics
  /** Restarts so far, per worker id. */
  restarts(): number[]
}

/** What a worker is given (`workerData.harrier`). @internal */
export interface WorkerData {
  workerId: number
  module: string
  port: number
  host: string
  tls: ListenTls | undefined
  group: GroupPlace
  options: AppOptions
}
type ListenTls = TlsOptions

/** @internal */
export type ToWorker = { type: 'close' }
/** @internal */
export type ToMain = { type: 'listening'; port: number; host: string } | { type: 'failed'; error: unknown; extra: Record<string, unknown> } | { type: 'closed'; error?: string }

const MAX_BACKOFF_MS = 10_000
/** A worker that served this long without crashing starts its back-off anew. */
const STABLE_MS = 10_000

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href
  if (typeof module !== 'string' || module === '') throw new TypeError('harrier: serve() needs { module }: a URL or a path')
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !isAbsolute(module)) return module
  return pathToFileURL(resolvePath(module)).href
}

function workerCount(workers: number | 'auto' | undefined): number {
  if (workers === undefined || workers === 'auto') return availableParallelism()
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`harrier: workers must be 1-64 or 'auto', got ${String(workers)}`)
  return workers
}

class Slot {
  worker: Worker | null = null
  restarts = 0
  crashesInRow = 0
  listeningSince = 0
  timer: NodeJS.Timeout | null = null
  closed: Promise<void> | null = null
  constructor(readonly id: number) {}
}

/**
 * Serves `module`'s App on `port` from `workers` worker threads. Resolves once every worker
 * listens; rejects (and nothing stays listening) if a worker's module throws at import or a
 * worker cannot listen.
 */
export async function serveModule(options: ServeModuleOptions): Promise<Served> {
  if (options === null || typeof options !== 'object') throw new TypeError('harrier: serve() needs options: { module, workers?, port?, host? }')
  const { module, workers, port: askedPort, host: askedHost, signals, tls, onError, restartDelay, ...appOptions } = options
  const url = moduleUrl(module)
  const count = workerCount(workers)
  if (restartDelay !== undefined && !(Number.isFinite(restartDelay) && restartDelay >= 0)) throw new RangeError(`harrier: restartDelay must be a non-negative number, got ${restartDelay}`)
  const asked = appOptions as AppOptions
  if ((asked.driver !== undefined && asked.driver !== 'inline' && asked.driver !== 'auto') || asked.ioThreads !== undefined) throw new TypeError('harrier: serve({ module }) runs each worker on the inline driver: no driver or ioThreads')
  // Checked here, once, as App checks them.
  new App({ ...appOptions, driver: undefined })
  const port = askedPort ?? (process.env.PORT ? Number(process.env.PORT) : 3000)
  const host = askedHost ?? process.env.HOST ?? '0.0.0.0'
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`harrier: port must be 0-65535, got ${port}`)
  // Checked once here; each worker loads them for itself (what it is given is cloned).
  if (tls !== undefined) await loadTls(tls)
  const firstDelay = restartDelay ?? 100
  const entry = join(__dirname, 'worker-entry.js')
  const slots = Array.from({ length: count }, (_, i) => new Slot(i))
  let bound = { port, host }
  let closing: Promise<void> | null = null

  const report = (error: unknown, slot: Slot) => {
    try {
      if (onError) onError(error, { workerId: slot.id, restarts: slot.restarts })
      else console.error(`harrier: worker ${slot.id} failed:`, error)
    } catch (hookError) {
      console.error('harrier: onError threw:', hookError)
    }
  }

  /** Starts the worker of `slot`; resolves once it listens, rejects with why it could not. */
  const start = (slot: Slot, role: GroupPlace['role']): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const data: WorkerData = {
        workerId: slot.id,
        module: url,
        port: bound.port,
        host: bound.host,
        tls,
        group: { role, member: slot.id },
        options: appOptions,
      }
      const worker = new Worker(entry, { workerData: { harrier: data } })
      slot.worker = worker
      let listening = false
      let failure: unknown = null
      worker.on('message', (message: ToMain) => {
        if (message.type === 'listening') {
          listening = true
          slot.listeningSince = Date.now()
          if (role === 'founds') bound = { port: message.port, host: message.host }
          resolve()
        } else if (message.type === 'failed') {
          const error = message.error
          if (error !== null && typeof error === 'object') Object.assign(error, message.extra)
          failure = error
        }
      })
      worker.on('error', (error) => {
        failure ??= error
      })
      worker.on('exit', (code) => {
        if (slot.worker === worker) slot.worker = null
        if (!listening) {
          reject(failure ?? new Error(`harrier: worker ${slot.id} exited with code ${code} before it listened`))
          return
        }
        if (closing !== null) return
        // A crash while serving: its connections went with it; the others serve on.
        report(failure ?? new Error(`harrier: worker ${slot.id} exited with code ${code}`), slot)
        restart(slot)
      })
    })

  const restart = (slot: Slot) => {
    if (Date.now() - slot.listeningSince >= STABLE_MS) slot.crashesInRow = 0
    const delay = Math.min(firstDelay * 2 ** slot.crashesInRow, MAX_BACKOFF_MS)
    slot.crashesInRow++
    slot.timer = setTimeout(() => {
      slot.timer = null
      if (closing !== null) return
      slot.restarts++
      // The port is held by the others (or free again, if this was the only worker): join it.
      start(slot, 'joins').then(
        () => {
          if (closing !== null) void stop(slot)
        },
        (error) => {
          if (closing !== null) return
          report(error, slot)
          restart(slot)
        },
      )
    }, delay)
  }

  /** Drains the worker of `slot` (its App's close()), then ends the thread. */
  const stop = (slot: Slot): Promise<void> => {
    if (slot.timer) clearTimeout(slot.timer)
    slot.timer = null
    const worker = slot.worker
    if (worker === null) return Promise.resolve()
    slot.closed ??= new Promise<void>((resolve) => {
      const finish = () => {
        worker.off('message', onMessage)
        void worker.terminate().then(() => resolve(), () => resolve())
      }
      const onMessage = (message: ToMain) => {
        if (message.type === 'closed') finish()
      }
      worker.on('message', onMessage)
      worker.once('exit', () => resolve())
      worker.postMessage({ type: 'close' } satisfies ToWorker)
    }).finally(() => {
      slot.closed = null
    })
    return slot.closed
  }

  const served: Served = {
    get port() {
      return bound.port
    },
    get host() {
      return bound.host
    },
    workers: count,
    close() {
      closing ??= (async () => {
        // Every member's health route says draining at once, before any stops accepting.
        groupAnnounceDrain(bound.host, bound.port)
        await Promise.all(slots.map(stop))
        unwatchSignals(served)
      })()
      return closing
    },
    metrics() {
      const json = groupMetricsJson(bound.host, bound.port)
      if (json === null || json === undefined) throw new Error('harrier: metrics(): no worker is serving')
      const figures = JSON.parse(json) as WorkerMetrics
      figures.workers.sort((a: WorkerFigures, b: WorkerFigures) => a.id - b.id)
      return figures
    },
    restarts() {
      return slots.map((s) => s.restarts)
    },
  }

  try {
    // The first binds (port 0 becomes a port; a port held elsewhere is refused), the others join it.
    await start(slots[0], 'founds')
    await Promise.all(slots.slice(1).map((slot) => start(slot, 'joins')))
  } catch (error) {
    closing = Promise.resolve()
    await Promise.all(slots.map((slot) => slot.worker?.terminate()))
    throw error
  }
  if (signals !== false) watchSignals(served)
  return served
}
