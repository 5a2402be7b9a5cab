import { spawn } from 'node:child_process'
import path from 'node:path'

import test from 'ava'

import { PATIENCE_MS, fetchT, withTimeout } from './helpers'

const fixture = path.join(__dirname, 'fixtures', 'serve-until-signal.mjs')

/** Starts the fixture; resolves with the child and its port once it listens. */
function startChild(args: string[]) {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  const port = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d
      const m = /listening (\d+)/.exec(stdout)
      if (m) resolve(Number(m[1]))
    })
    child.on('exit', () => reject(new Error(`child exited before listening: ${stderr}`)))
  })
  const requested = () => stdout.includes('request')
  return { child, port, exited, requested, stderr: () => stderr }
}

async function whenRequested(requested: () => boolean): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS
  while (!requested()) {
    if (Date.now() > deadline) throw new Error('the handler never started')
    await new Promise((r) => setTimeout(r, 10))
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} drains: the in-flight request completes, then the process ends by the signal`, async (t) => {
    const c = startChild([])
    const port = await withTimeout(c.port, PATIENCE_MS, 'child listening')
    const response = fetchT(`http://127.0.0.1:${port}/slow`)
    await whenRequested(c.requested)
    c.child.kill(signal)
    const res = await response
    t.is(res.status, 200)
    t.is(await res.text(), 'finished')
    const exit = await withTimeout(c.exited, PATIENCE_MS, 'child exit')
    t.is(exit.signal, signal, `stderr: ${c.stderr()}`)
  })
}

test('with signals: false, SIGTERM is left to Node (the process dies at once)', async (t) => {
  const c = startChild(['nosignals'])
  const port = await withTimeout(c.port, PATIENCE_MS, 'child listening')
  const response = fetchT(`http://127.0.0.1:${port}/slow`).then(
    (r) => r.status,
    () => 'failed',
  )
  await whenRequested(c.requested)
  c.child.kill('SIGTERM')
  t.is(await response, 'failed')
  const exit = await withTimeout(c.exited, PATIENCE_MS, 'child exit')
  t.is(exit.signal, 'SIGTERM')
})
