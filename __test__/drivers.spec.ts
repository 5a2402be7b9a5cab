import fs from 'node:fs'

import test from 'ava'
import { App } from 'harrier'

import { PATIENCE_MS, fetchT, useApp, waitUntil } from './helpers'

/** Names of this process's threads that the engine started. */
function ioThreads(): string[] {
  if (process.platform !== 'linux') return []
  return fs
    .readdirSync('/proc/self/task')
    .map((tid) => fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim())
    .filter((name) => name.startsWith('harrier-io'))
}

test.serial('the inline driver serves from the JS thread: no I/O thread exists', async (t) => {
  const before = ioThreads().length
  const { base, app } = await useApp(t, (app) => app.get('/', (req, res) => res.text('inline')), { driver: 'inline' })
  t.is(app.driver, 'inline')
  const res = await fetchT(`${base}/`)
  t.is(await res.text(), 'inline')
  t.is(ioThreads().length, before)
})

test.serial('the threads driver starts its I/O threads', async (t) => {
  const before = ioThreads().length
  const { base, app } = await useApp(t, (app) => app.get('/', (req, res) => res.text('threads')), { driver: 'threads', ioThreads: 3 })
  t.is(app.driver, 'threads')
  const res = await fetchT(`${base}/`)
  t.is(await res.text(), 'threads')
  if (process.platform === 'linux') {
    // A thread takes its name when it first runs: on a loaded machine one may not have run
    // yet when the first answer comes back (from another thread of the port).
    await waitUntil(() => ioThreads().length >= before + 3, PATIENCE_MS, 'three I/O threads to have taken their names').catch(() => {})
    t.is(ioThreads().length, before + 3)
  }
})

test('auto: HARRIER_DRIVER decides if set, else threads when ioThreads is set, else inline', (t) => {
  const env = process.env.HARRIER_DRIVER
  t.is(new App({ ioThreads: 2 }).driver, env === 'inline' ? 'inline' : 'threads')
  t.is(new App().driver, env === 'threads' ? 'threads' : 'inline')
  t.is(new App({ driver: 'threads' }).driver, 'threads')
})

test('an unknown driver is refused when the app is made', (t) => {
  // @ts-expect-error: not a driver
  t.throws(() => new App({ driver: 'fast' }), { instanceOf: RangeError, message: /driver/ })
})
