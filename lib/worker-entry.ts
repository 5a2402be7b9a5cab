// The entry of each worker thread of `serve({ module, workers })` (lib/workers.ts): imports
// the user's module, serves its default-exported App on the group's port with the inline
// driver, and drains it when the main thread says so.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parentPort, workerData } from 'node:worker_threads'
import { App } from './app'
import type { ListenOptions } from './types'
import type { WorkerData, ToMain, ToWorker } from './workers'

// A real dynamic import (ES modules, URLs, the process's loaders), which TypeScript would
// turn into require() in this CommonJS build.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>

const data = (workerData as { harrier: WorkerData }).harrier
const port = parentPort!

function isApp(value: unknown): value is App {
  if (value instanceof App) return true
  // Another copy of harrier loaded by the module (a nested node_modules): its App still has
  // what serving needs.
  return value !== null && typeof value === 'object' && typeof (value as App).listen === 'function' && typeof (value as App).close === 'function' && typeof (value as { [k: symbol]: unknown })[Symbol.for('harrier.listenGrouped')] === 'function'
}

/**
 * Imports the module. A TypeScript module that the thread cannot load (Node 20 does not give
 * workers the loader hooks that `--import=tsx` registered on the main thread) is loaded
 * again after registering tsx in this thread, if the module's project has it.
 */
async function load(specifier: string): Promise<unknown> {
  try {
    return await importModule(specifier)
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !/\.[cm]?tsx?$/.test(specifier)) throw error
    type Api = { register: () => unknown }
    let register: Array<() => unknown>
    try {
      const from = createRequire(specifier)
      const esm = pathToFileURL(join(dirname(from.resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href
      register = [((await importModule(esm)) as Api).register, (from('tsx/cjs/api') as Api).register]
    } catch {
      throw error
    }
    for (const r of register) r()
    // The failed import stays cached under its URL: ask again under another.
    return importModule(`${specifier}${specifier.includes('?') ? '&' : '?'}harrier-worker`)
  }
}

async function main(): Promise<void> {
  const loaded = (await load(data.module)) as { default?: unknown }
  let app = loaded.default
  // A CommonJS module's exports arrive as `default`; `module.exports.default` too.
  if (!isApp(app) && app !== null && typeof app === 'object' && isApp((app as { default?: unknown }).default)) app = (app as { default: unknown }).default
  if (!isApp(app)) throw new TypeError(`harrier: serve(): ${data.module} must export an App (not listening) as its default export`)
  const served = app
  let closing: Promise<void> | null = null
  port.on('message', (message: ToWorker) => {
    if (message.type === 'close' && closing === null) {
      closing = served.close().then(
        () => port.postMessage({ type: 'closed' } satisfies ToMain),
        (error: unknown) => port.postMessage({ type: 'closed', error: String(error) } satisfies ToMain),
      )
    }
  })
  const listen: ListenOptions = { port: data.port, host: data.host, signals: false, tls: data.tls }
  const grouped = (served as unknown as Record<symbol, (l: ListenOptions, g: WorkerData['group'], o: WorkerData['options']) => Promise<{ port: number; host: string }>>)[Symbol.for('harrier.listenGrouped')]
  const at = await grouped.call(served, listen, data.group, data.options)
  port.postMessage({ type: 'listening', port: at.port, host: at.host } satisfies ToMain)
}

main().catch((error: unknown) => {
  // Told as it is (a structured clone keeps an Error an Error, with its stack), with the
  // properties a clone leaves out; then the worker ends.
  const extra: Record<string, unknown> = {}
  if (error !== null && typeof error === 'object') {
    for (const key of Object.keys(error)) {
      const value = (error as Record<string, unknown>)[key]
      if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) extra[key] = value
    }
  }
  try {
    port.postMessage({ type: 'failed', error, extra } satisfies ToMain)
  } catch {
    port.postMessage({ type: 'failed', error: String(error), extra } satisfies ToMain)
  }
  process.exit(1)
})
