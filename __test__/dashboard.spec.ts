// The live dashboard (`app.dashboard(path)`) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core. The page of a real App draws its charts from the engine's event
// stream, counts the requests the test made, reports no error, and says when the stream is
// gone. Screenshots land in __test__/output/.

import test from 'ava'
import type { Browser, Page } from 'puppeteer-core'
import { fetchT, useApp } from './helpers.ts'
import {
  BROWSER_PATIENCE_MS,
  LAPTOP,
  PHONE,
  launchBrowser,
  screenshot,
  startFakeDashboard,
  tileValue,
  until,
  waitForSamples,
  watchPage,
} from './browser.ts'

let browser: Browser

test.before(async (t) => {
  t.timeout(BROWSER_PATIENCE_MS, 'starting chromium')
  browser = await launchBrowser(t)
})

test.after.always(async () => {
  await browser?.close()
})

const driver = process.env.HARRIER_DRIVER ?? 'inline'

async function open(url: string, viewport = LAPTOP, scheme: 'light' | 'dark' = 'light') {
  const page = await browser.newPage()
  page.setDefaultTimeout(BROWSER_PATIENCE_MS)
  const watched = watchPage(page)
  await page.setViewport(viewport)
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }])
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' })
  return { page, watched, response }
}

/** How many points the chart `id` drew. */
const points = (page: Page, id: string) => page.$eval(`#chart-${id}`, (c) => Number((c as HTMLCanvasElement).dataset.points))

/** True if the canvas `id` holds pixels of more than one colour: something was drawn. */
const inked = (page: Page, id: string) =>
  page.$eval(`#chart-${id}`, (c) => {
    const canvas = c as HTMLCanvasElement
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data
    const colours = new Set<number>()
    for (let i = 0; i < data.length; i += 4 * 7) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2] | (data[i + 3] << 24))
    return colours.size
  })

test.serial('the dashboard of a real App draws its charts from live data and counts the requests made', async (t) => {
  t.timeout(BROWSER_PATIENCE_MS * 4)
  const { base } = await useApp(t, (app) => {
    app.get('/hello', (req, res) => res.text('Hello, World!'))
    app.get('/teapot', (req, res) => res.status(418).text('short and stout'))
    app.ws('/ws', { message: (ws, m) => ws.send(m) })
    app.dashboard('/_harrier')
  })
  const made = 120
  for (let i = 0; i < made; i += 12) {
    await Promise.all(Array.from({ length: 12 }, (_, j) => fetchT(`${base}/${(i + j) % 6 ? 'hello' : 'teapot'}`).then((r) => r.text())))
  }
  t.is((await fetchT(`${base}/nope`)).status, 404)

  const { page, watched, response } = await open(`${base}/_harrier`)
  t.is(response?.status(), 200)
  t.regex(response?.headers()['content-type'] ?? '', /^text\/html/)
  await waitForSamples(page, 2)
  await until(page, (n: number) => Number(document.querySelector<HTMLElement>('[data-tile="total"]')?.dataset.value) >= n, made + 1)
  t.is(await page.$eval('body', (b) => b.dataset.state), 'live')
  t.true((await tileValue(page, 'total')) >= made + 1, 'the total counts every request made (and the 404)')
  t.true((await tileValue(page, 'errors')) >= made / 6 + 1, 'the 418s and the 404 are among the 4xx')
  // The charts drew from the samples: every chart has points, and its canvas holds a drawing.
  for (const id of ['requests', 'latency', 'connections', 'throughput', 'rss', 'loop', 'messages']) {
    t.true((await points(page, id)) >= 1, `chart ${id} has points`)
    t.true((await inked(page, id)) > 2, `chart ${id} drew something`)
  }
  const canvas = await page.$eval('#chart-requests', (c) => ({ w: (c as HTMLCanvasElement).width, css: c.clientWidth, dpr: devicePixelRatio }))
  t.is(canvas.w, Math.round(canvas.css * canvas.dpr), 'the canvas is sized for the device pixels')
  t.true((await tileValue(page, 'rss')) > 0, 'RSS is shown')

  // More traffic while the page looks: the total moves without a reload.
  const before = await tileValue(page, 'total')
  await Promise.all(Array.from({ length: 30 }, () => fetchT(`${base}/hello`).then((r) => r.text())))
  await until(page, (n: number) => Number(document.querySelector<HTMLElement>('[data-tile="total"]')?.dataset.value) >= n, before + 30)
  await screenshot(page, `dashboard-${driver}-laptop`, t.log)

  // A phone, in the dark.
  const phone = await open(`${base}/_harrier`, PHONE, 'dark')
  await waitForSamples(phone.page, 2)
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  t.true(overflow <= 0, `nothing wider than the phone (${overflow} px too wide)`)
  await screenshot(phone.page, `dashboard-${driver}-phone`, t.log)

  t.deepEqual([...watched.errors, ...phone.watched.errors], [], 'no console error, page error or failed request')
  await phone.page.close()
  await page.close()
})

test.serial('the page finds its stream under the path it is mounted at, and says when the server is gone', async (t) => {
  t.timeout(BROWSER_PATIENCE_MS * 3)
  const { app, base } = await useApp(t, (a) => {
    a.get('/hello', (req, res) => res.text('Hello, World!'))
    a.dashboard('/ops/live')
  })
  await fetchT(`${base}/hello`)
  const { page, watched } = await open(`${base}/ops/live`)
  await waitForSamples(page, 2)
  t.true((await tileValue(page, 'total')) >= 1)
  t.is((await fetchT(`${base}/_harrier`)).status, 404, 'only the path given serves the page')
  await app.close()
  await until(page, () => document.body.dataset.state === 'disconnected')
  t.true(await page.$eval('#banner', (b) => getComputedStyle(b).display !== 'none'), 'the disconnected banner shows')
  // The browser's own report of the refused reconnection is not the page's error.
  t.deepEqual(watched.errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|events/.test(e)), [])
  await page.close()
})

test.serial('the page reconnects after its stream ends or is refused, and goes on drawing (against a stand-in for the engine)', async (t) => {
  t.timeout(BROWSER_PATIENCE_MS * 3)
  const fake = await startFakeDashboard({ intervalMs: 250 })
  t.teardown(() => fake.close())
  const { page, watched } = await open(`${fake.base}/_harrier`)
  await waitForSamples(page, 3)
  t.is(await page.$eval('body', (b) => b.dataset.state), 'live')

  // The stream ends: EventSource reconnects by itself.
  const drawn = Number(await page.$eval('body', (b) => b.dataset.samples))
  fake.dropStreams()
  await until(page, () => document.body.dataset.state === 'disconnected')
  await until(page, (n: number) => document.body.dataset.state === 'live' && Number(document.body.dataset.samples) > n, drawn)

  // The stream is refused (503): EventSource gives up, the page starts again itself.
  fake.refuse = true
  fake.dropStreams()
  await until(page, () => document.body.dataset.state === 'disconnected')
  t.true(await page.$eval('#banner', (b) => getComputedStyle(b).display !== 'none'))
  fake.refuse = false
  const again = Number(await page.$eval('body', (b) => b.dataset.samples))
  await until(page, (n: number) => document.body.dataset.state === 'live' && Number(document.body.dataset.samples) > n + 2, again)
  t.true((await points(page, 'requests')) >= 3)
  await screenshot(page, 'dashboard-fake-reconnected', t.log)
  t.deepEqual(watched.errors, [], 'no console error, page error or failed request')
  await page.close()
})
