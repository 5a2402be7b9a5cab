// The demo site (`npm run demo`) as a user runs it: a child process on a free port, its
// pages over HTTP, its chat over WebSocket with two real clients, and the site in a real
// browser (chromium, headless): the landing page, its load burst, the dashboard moving, the
// chat between two tabs, on a laptop and a phone. Screenshots land in __test__/output/.

import test from 'ava'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Browser, Page } from 'puppeteer-core'
import { PATIENCE_MS, withTimeout } from './helpers.ts'
import { useClient } from './ws-helpers.ts'
import {
  BROWSER_PATIENCE_MS,
  LAPTOP,
  PHONE,
  launchBrowser,
  screenshot,
  tileValue,
  until,
  untilSelector,
  waitForSamples,
  watchPage,
  type Watched,
} from './browser.ts'

const demo = fileURLToPath(new URL('../examples/demo.mjs', import.meta.url))
const driver = process.env.HARRIER_DRIVER ?? 'inline'

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
  const base = `http://127.0.0.1:${port}`
  const page = await fetch(`${base}/`)
  t.is(page.status, 200)
  const html = await page.text()
  t.regex(html, /src="\/assets\/demo\.js"/, 'the page loads its script from the assets')
  t.regex(html, /href="\/_harrier"/, 'the page links the dashboard')
  // The script holds the chat; it is a static file, answered by the engine: the middleware
  // that stamps every JavaScript answer never saw it.
  const script = await fetch(`${base}/assets/demo.js`)
  t.is(script.status, 200)
  t.regex(script.headers.get('content-type') ?? '', /javascript/)
  t.is(script.headers.get('x-powered-by'), null, 'static files never reach middleware')
  t.regex(await script.text(), /new WebSocket\(/, 'the page holds the chat')
  t.is((await fetch(`${base}/assets/style.css`)).status, 200)
  const hello = await fetch(`${base}/hello`)
  t.is(await hello.text(), 'Hello, World!')
  t.is(hello.headers.get('x-powered-by'), 'harrier', 'JavaScript answers go through the middleware')
  t.is(((await (await fetch(`${base}/json`)).json()) as { message: string }).message, 'Hello, World!')
  t.deepEqual(await (await fetch(`${base}/users/42?q=x`)).json(), { id: '42', q: 'x' })
  t.is(await (await fetch(`${base}/echo`, { method: 'POST', body: 'ping' })).text(), 'ping')
  t.is(await (await fetch(`${base}/stream`)).text(), 'line 1\nline 2\nline 3\nline 4\nline 5\ndone\n')
  t.is((await fetch(`${base}/nope`)).status, 404)
  // The clock: an event stream, resumed after the last id a client saw.
  const clock = await fetch(`${base}/clock`, { headers: { 'last-event-id': '41' }, signal: AbortSignal.timeout(PATIENCE_MS) })
  t.is(clock.status, 200)
  t.regex(clock.headers.get('content-type') ?? '', /^text\/event-stream/)
  const reader = clock.body!.getReader()
  let stream = ''
  // events are blocks of `field: value` lines ended by an empty line
  const events = () => stream.split('\n\n').slice(0, -1).map((block) => Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()])))
  while (!events().some((e) => e.event === 'tick')) stream += new TextDecoder().decode((await reader.read()).value)
  await reader.cancel()
  const tick = events().find((e) => e.event === 'tick')!
  t.is(tick.id, '42', 'the count goes on after Last-Event-ID')
  t.true(Math.abs(Date.parse(JSON.parse(tick.data).now) - Date.now()) < PATIENCE_MS, 'it carries the time')
  // Operations, answered by the engine.
  const dashboard = await fetch(`${base}/_harrier`)
  t.is(dashboard.status, 200)
  t.regex(dashboard.headers.get('content-type') ?? '', /^text\/html/)
  t.regex(await (await fetch(`${base}/metrics`)).text(), /^harrier_http_requests_total\{status="2xx"\} \d+$/m)
  const health = await fetch(`${base}/health`)
  t.is(health.status, 200)
  t.is((await health.text()).trim(), 'ok')
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

// ---------------------------------------------------------------------------
// In a browser
// ---------------------------------------------------------------------------

let browser: Browser | undefined

test.after.always(async () => {
  await browser?.close()
})

async function open(t: { timeout(ms: number, message?: string): void }, url: string, viewport = LAPTOP): Promise<{ page: Page; watched: Watched }> {
  browser ??= await launchBrowser(t)
  const page = await browser.newPage()
  page.setDefaultTimeout(BROWSER_PATIENCE_MS)
  const watched = watchPage(page)
  await page.setViewport(viewport)
  const response = await page.goto(url, { waitUntil: 'load' })
  if (response?.status() !== 200) throw new Error(`${url} answered ${response?.status()}`)
  return { page, watched }
}

const tooWide = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)

test.serial('the demo in a browser: the landing page runs a load burst, and the dashboard in another tab moves', async (t) => {
  t.timeout(BROWSER_PATIENCE_MS * 6)
  const port = await startDemo(t)
  const base = `http://127.0.0.1:${port}`
  const landing = await open(t, `${base}/`)
  const page = landing.page
  t.true(await page.$eval('link[rel=stylesheet]', (l) => ((l as HTMLLinkElement).sheet?.cssRules.length ?? 0) > 10), 'the stylesheet from /assets applied')
  await untilSelector(page, '#chat-card[data-state=open]')
  // The welcome comes after the socket opens: waited for, not read at once.
  await until(page, () => /welcome, guest \d+/.test(document.getElementById('log')!.textContent ?? ''))
  await until(page, () => Number(document.getElementById('clock-card')!.dataset.ticks) >= 2)
  t.regex(await page.$eval('#clock', (c) => c.textContent ?? ''), /^\d\d:\d\d:\d\d$/, 'the server clock ticks')
  t.is(await page.$eval('#open-dashboard', (a) => a.getAttribute('href')), '/_harrier')

  // The dashboard, in another tab, before the burst.
  const dash = await open(t, `${base}/_harrier`)
  await waitForSamples(dash.page, 2)
  const before = await tileValue(dash.page, 'total')

  // A tab in the background runs no animation frames, which clicking waits for.
  await page.bringToFront()
  await page.click('#burst')
  await untilSelector(page, '#burst-result[data-state=done]', BROWSER_PATIENCE_MS * 2)
  const result = await page.$eval('#burst-result', (r) => ({ ...(r as HTMLElement).dataset }))
  t.is(result.requests, '2000')
  t.is(result.errors, '0')
  t.true(Number(result.rps) > 0, `the burst reports its rate (${result.rps} req/s)`)
  t.log(`load burst from the browser: ${result.rps} req/s`)

  // The dashboard saw it: the total moved by the 2,000, and a rate showed on the chart.
  await until(dash.page, (n: number) => Number(document.querySelector<HTMLElement>('[data-tile="total"]')?.dataset.value) >= n, before + 2000)
  await until(dash.page, () => Number(document.querySelector<HTMLElement>('[data-tile="rps"]')?.dataset.peak) > 0)
  t.true(Number(await dash.page.$eval('#chart-requests', (c) => (c as HTMLElement).dataset.points)) >= 2)

  await screenshot(page, `demo-${driver}-laptop`, t.log)
  await screenshot(dash.page, `demo-dashboard-${driver}-laptop`, t.log)
  t.true((await tooWide(page)) <= 0, 'the landing page fits the laptop')

  // The same on a phone. A phone's viewport reloads a page: the dashboard starts again, and
  // a landing page of its own runs a second burst, tapped.
  await dash.page.setViewport(PHONE)
  await waitForSamples(dash.page, 2)
  const again = await tileValue(dash.page, 'total')
  const phone = await open(t, `${base}/`, PHONE)
  await untilSelector(phone.page, '#chat-card[data-state=open]')
  await phone.page.tap('#burst')
  await untilSelector(phone.page, '#burst-result[data-state=done]', BROWSER_PATIENCE_MS * 2)
  t.is(await phone.page.$eval('#burst-result', (r) => (r as HTMLElement).dataset.errors), '0')
  await until(dash.page, (n: number) => Number(document.querySelector<HTMLElement>('[data-tile="total"]')?.dataset.value) >= n, again + 2000)
  await until(dash.page, () => Number(document.querySelector<HTMLElement>('[data-tile="rps"]')?.dataset.peak) > 0)
  t.true((await tooWide(phone.page)) <= 0, `the landing page fits the phone (${await tooWide(phone.page)} px too wide)`)
  t.true((await tooWide(dash.page)) <= 0, `the dashboard fits the phone (${await tooWide(dash.page)} px too wide)`)
  await screenshot(phone.page, `demo-${driver}-phone`, t.log)
  await screenshot(dash.page, `demo-dashboard-${driver}-phone`, t.log)

  t.deepEqual([...landing.watched.errors, ...dash.watched.errors, ...phone.watched.errors], [], 'no console error, page error or failed request')
  await phone.page.close()
  await dash.page.close()
  await page.close()
})

test.serial('the demo in a browser: two tabs talk in the chat room, and the routes answer on the page', async (t) => {
  t.timeout(BROWSER_PATIENCE_MS * 4)
  const port = await startDemo(t)
  const base = `http://127.0.0.1:${port}`
  const a = await open(t, `${base}/`)
  await untilSelector(a.page, '#chat-card[data-state=open]')
  const b = await open(t, `${base}/`)
  await untilSelector(b.page, '#chat-card[data-state=open]')
  await until(b.page, () => /1 other\(s\) here/.test(document.getElementById('log')!.textContent ?? ''))
  await until(b.page, () => /welcome, guest \d+/.test(document.getElementById('log')!.textContent ?? ''))
  const name = await b.page.$eval('#log', (l) => /welcome, (guest \d+)/.exec(l.textContent ?? '')?.[1])
  t.truthy(name)
  await until(a.page, (n: string) => document.getElementById('log')!.textContent!.includes(`${n} joined`), name!)

  await b.page.bringToFront()
  await b.page.type('#text', 'hello from the other tab')
  await b.page.click('#say button')
  await until(a.page, (n: string) => document.getElementById('log')!.textContent!.includes(`${n} hello from the other tab`), name!)
  await until(b.page, () => /\(you\): hello from the other tab/.test(document.getElementById('log')!.textContent ?? ''))

  // The route explorer: a JSON answer through JavaScript, a 404 from the engine, a stream.
  await a.page.bringToFront()
  await a.page.click('[data-try="/users/42?q=harrier"]')
  await untilSelector(a.page, '#route-out[data-state=done]')
  t.regex(await a.page.$eval('#route-out', (o) => o.textContent ?? ''), /HTTP 200[\s\S]*answered by: JavaScript[\s\S]*"id":"42"/)
  await a.page.click('[data-try="/nope"]')
  await untilSelector(a.page, '#route-out[data-status="404"]')
  t.regex(await a.page.$eval('#route-out', (o) => o.textContent ?? ''), /answered by: the engine/)
  await a.page.click('[data-try="/stream"]')
  await until(a.page, () => /line 5\ndone/.test(document.getElementById('route-out')!.textContent ?? ''))
  await a.page.click('#compare')
  await untilSelector(a.page, '#headers:not([hidden])')
  const headers = await a.page.$$eval('#headers tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)))
  t.deepEqual(headers.find((r) => r[0] === 'x-powered-by'), ['x-powered-by', '–', 'harrier'])
  await a.page.click('#scrape')
  await untilSelector(a.page, '#metrics-out:not([hidden])')
  t.regex(await a.page.$eval('#metrics-out', (o) => o.textContent ?? ''), /harrier_http_requests_total/)
  await untilSelector(a.page, '#health[data-state=ok]')

  await b.page.close()
  await until(a.page, (n: string) => document.getElementById('log')!.textContent!.includes(`${n} left`), name!)
  await screenshot(a.page, `demo-chat-${driver}-laptop`, t.log)
  // The one 404 asked for is reported by the browser; nothing else is.
  const errors = [...a.watched.errors, ...b.watched.errors].filter((e) => !/status of 404 .*\/nope"/.test(e))
  t.deepEqual(errors, [], 'no console error, page error or failed request')
  await a.page.close()
})
