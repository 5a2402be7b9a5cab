// The demo site (`npm run demo`) as a user runs it: a child process on a free port, its
// pages over HTTP, its chat over WebSocket with two real clients.

import test from 'ava'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { PATIENCE_MS, withTimeout } from './helpers.ts'
import { useClient } from './ws-helpers.ts'

const demo = fileURLToPath(new URL('../examples/demo.mjs', import.meta.url))

async function startDemo(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const child = spawn(process.execPath, [demo], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d
        const m = /listening on http:\/\/[^:]+:(\d+)/.exec(out)
        if (m) resolve(Number(m[1]))
      })
      child.on('exit', (code) => reject(new Error(`the demo exited with ${code}: ${out}`)))
    }),
    PATIENCE_MS,
    'the demo to listen',
  )
}

test('the demo serves its page and its routes', async (t) => {
  const port = await startDemo(t)
  const page = await fetch(`http://127.0.0.1:${port}/`)
  t.is(page.status, 200)
  t.regex(await page.text(), /new WebSocket\(/, 'the page holds the chat')
  t.is(await (await fetch(`http://127.0.0.1:${port}/hello`)).text(), 'Hello, World!')
  t.deepEqual(await (await fetch(`http://127.0.0.1:${port}/users/42?q=x`)).json(), { id: '42', q: 'x' })
  t.is((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404)
})

test("the demo's chat: a second guest is announced, what it says reaches the first, and its leaving", async (t) => {
  const port = await startDemo(t)
  const a = await useClient(t, port, '/chat/lobby')
  t.regex(await a.nextText(), /^welcome, guest \d+: 0 other\(s\) here$/)
  const b = await useClient(t, port, '/chat/lobby')
  const name = /^welcome, (guest \d+): 1 other\(s\) here$/.exec(await b.nextText())?.[1]
  t.truthy(name, 'the second guest is told one other is here')
  t.is(await a.nextText(), `${name} joined`)
  await b.send('hello there')
  t.is(await a.nextText(), `${name}: hello there`)
  b.close()
  t.is(await a.nextText(), `${name} left`)
})
