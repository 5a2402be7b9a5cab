// Helpers for the tests that drive a real browser (Debian's chromium, headless, through
// puppeteer-core). Not a spec file.
//
// `ensureChromium` installs chromium when it is missing (apt-get, as root or through
// `sudo -n`), once per machine even when several test files ask at the same time;
// `launchBrowser` starts it for a test file; `watchPage` collects what a page reports as an
// error; `screenshot` saves a PNG under __test__/output/ and says where.
// `startFakeDashboard` is a stand-in for the engine's dashboard routes (the page and a stream
// of made-up snapshots), to work on and test the page by itself; it is not part of harrier.

import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const DASHBOARD_HTML = fileURLToPath(new URL('../crates/harrier-core/src/ops/dashboard.html', import.meta.url))
export const OUTPUT_DIR = fileURLToPath(new URL('./output/', import.meta.url))

/** How long a browser test waits for something the page must do (a loaded 2-core machine). */
export const BROWSER_PATIENCE_MS = 60_000
/** Long enough to install chromium with apt-get on a slow mirror. */
export const INSTALL_PATIENCE_MS = 15 * 60_000

const LOCK = path.join(os.tmpdir(), 'harrier-chromium-install.lock')

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.stderr.on('data', (d: Buffer) => (out += d))
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${out.slice(-2000)}`))))
  })
}

async function aptGet(args: string[]): Promise<void> {
  if (process.getuid?.() === 0) return run('apt-get', args)
  return run('sudo', ['-n', 'apt-get', ...args])
}

async function install(): Promise<void> {
  const packages = ['install', '-y', '--no-install-recommends', 'chromium']
  try {
    await aptGet(packages)
  } catch {
    // The package lists may be missing or old: refresh them once and try again.
    await aptGet(['update'])
    await aptGet(packages)
  }
}

let installing: Promise<string> | undefined

/**
 * The path of chromium, installed with apt-get if it is not there. Several test processes may
 * ask at once: one installs (holding a lock file), the others wait for it.
 */
export function ensureChromium(): Promise<string> {
  installing ??= (async () => {
    const deadline = Date.now() + INSTALL_PATIENCE_MS
    while (!fs.existsSync(CHROMIUM)) {
      let fd: number | undefined
      try {
        fd = fs.openSync(LOCK, 'wx')
      } catch {
        // Someone else is installing; a lock older than the patience is a leftover.
        try {
          if (Date.now() - fs.statSync(LOCK).mtimeMs > INSTALL_PATIENCE_MS) fs.rmSync(LOCK, { force: true })
        } catch {}
        if (Date.now() > deadline) throw new Error(`timed out waiting for another process to install chromium (lock ${LOCK})`)
        await new Promise((resolve) => setTimeout(resolve, 1000))
        continue
      }
      try {
        if (!fs.existsSync(CHROMIUM)) {
          console.log(`# installing chromium with apt-get (not found at ${CHROMIUM})`)
          await install()
        }
      } finally {
        fs.closeSync(fd)
        fs.rmSync(LOCK, { force: true })
      }
      if (!fs.existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium, but ${CHROMIUM} is not there`)
    }
    return CHROMIUM
  })()
  return installing
}

interface Ctx {
  timeout(ms: number, message?: string): void
}

/**
 * Installs chromium if needed and launches it headless. Close it yourself (`browser.close()`).
 * When it has to install, the test `t` is given the time that takes.
 */
export async function launchBrowser(t?: Ctx): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) t?.timeout(INSTALL_PATIENCE_MS + 5 * BROWSER_PATIENCE_MS, 'installing chromium, then the test')
  const executablePath = await ensureChromium()
  return puppeteer.launch({
    executablePath,
    headless: true,
    // root has no sandbox; /dev/shm is small in containers; no GPU here
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--hide-scrollbars'],
    protocolTimeout: BROWSER_PATIENCE_MS * 2,
  })
}

export const LAPTOP = { width: 1280, height: 800, deviceScaleFactor: 1 }
export const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

export interface Watched {
  /** console errors, uncaught exceptions and failed requests, as text */
  errors: string[]
}

const watchedPages = new WeakMap<Page, Watched>()

/** Records every console error, uncaught exception and failed request of `page`. */
export function watchPage(page: Page): Watched {
  const w: Watched = { errors: [] }
  watchedPages.set(page, w)
  page.on('console', (msg) => {
    if (msg.type() === 'error') w.errors.push(`console: ${msg.text()} ${JSON.stringify(msg.location())}`)
  })
  page.on('pageerror', (e) => w.errors.push(`page error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`))
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText ?? ''
    // A stream cut short when the page goes away is not the page's fault.
    if (why !== 'net::ERR_ABORTED') w.errors.push(`request failed: ${r.method()} ${r.url()} ${why}`)
  })
  return w
}

/** Saves a full-page screenshot as __test__/output/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string, log?: (s: string) => void): Promise<string> {
  fs.mkdirSync(OUTPUT_DIR, { recursive: true })
  const file = path.join(OUTPUT_DIR, `${name}.png`)
  await page.bringToFront() // a tab in the background does not paint
  await page.screenshot({ path: file as `${string}.png`, fullPage: true })
  log?.(`screenshot: ${file}`)
  console.log(`# screenshot: ${file}`)
  return file
}

/**
 * Waits until `fn(arg)` is true in `page`. It polls on a timer rather than on animation frames,
 * which a tab in the background does not run.
 */
export async function until<A>(page: Page, fn: (arg: A) => unknown, arg?: A, ms = BROWSER_PATIENCE_MS): Promise<void> {
  try {
    await page.waitForFunction(fn as (arg: unknown) => unknown, { timeout: ms, polling: 100 }, arg)
  } catch (e) {
    const what = arg === undefined ? String(fn) : `${String(fn)} with ${JSON.stringify(arg)}`
    const errors = watchedPages.get(page)?.errors ?? []
    const said = errors.length ? `; the page reported: ${errors.join(' | ')}` : ''
    throw new Error(`waiting in ${page.url()} for ${what}: ${e instanceof Error ? e.message : String(e)}${said}`, { cause: e })
  }
}

/** Waits until an element matches `selector` in `page`. */
export function untilSelector(page: Page, selector: string, ms = BROWSER_PATIENCE_MS): Promise<void> {
  return until(page, (sel: string) => document.querySelector(sel) !== null, selector, ms)
}

/** Waits until the dashboard in `page` drew at least `n` samples from its stream. */
export async function waitForSamples(page: Page, n: number, ms = BROWSER_PATIENCE_MS): Promise<void> {
  await until(page, (min: number) => Number(document.body.dataset.samples) >= min, n, ms)
}

/** The number a dashboard tile shows (its `data-value`), or NaN. */
export async function tileValue(page: Page, tile: string): Promise<number> {
  return page.$eval(`[data-tile="${tile}"]`, (e) => Number((e as HTMLElement).dataset.value || NaN))
}

export function chromiumVersion(): string {
  try {
    return execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

// ---------------------------------------------------------------------------
// A stand-in for the engine's dashboard routes
// ---------------------------------------------------------------------------

export interface FakeDashboard {
  base: string
  port: number
  /** snapshots sent so far */
  sent: number
  /** ends every open event stream, cleanly (the page should reconnect) */
  dropStreams(): void
  /** while true, the event stream is refused with 503 */
  refuse: boolean
  close(): Promise<void>
}

/**
 * Serves the dashboard page at `path` and an event stream of made-up snapshots at
 * `path + '/events'`, one at once then one every `intervalMs`, shaped like the engine's.
 */
export async function startFakeDashboard(opts: { path?: string; intervalMs?: number } = {}): Promise<FakeDashboard> {
  const mount = opts.path ?? '/_harrier'
  const interval = opts.intervalMs ?? 1000
  const streams = new Set<http.ServerResponse>()
  const started = Date.now()
  const s = {
    total: 0,
    byStatus: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 } as Record<string, number>,
    latency: new Array(31).fill(0) as number[],
    sumMs: 0,
    bytesIn: 0,
    bytesOut: 0,
    accepted: 0,
    wsIn: 0,
    wsOut: 0,
    refusals: { '400': 0, '408': 0, '413': 0, '414': 0, '429': 0, '431': 0, '503': 0, connectionLimit: 0 } as Record<string, number>,
  }
  let tick = 0
  const snapshot = () => {
    tick++
    const up = (Date.now() - started) / 1000
    const load = Math.max(0, Math.round(800 + 600 * Math.sin(tick / 9) + 300 * Math.random()))
    const share = { '2xx': 0.93, '3xx': 0.02, '4xx': 0.045, '5xx': 0.005 } as Record<string, number>
    for (const k of Object.keys(share)) {
      const n = Math.round(load * share[k])
      s.byStatus[k] += n
      s.total += n
    }
    for (let i = 0; i < load; i++) {
      // log-normal around 0.2 ms, a slower tail when the load is high
      const latency = 0.2 * Math.exp(0.8 * gauss()) * (1 + load / 2000)
      s.sumMs += latency
      const us = Math.max(1, latency * 1000)
      s.latency[Math.min(30, Math.ceil(Math.log2(us)))]++
    }
    s.bytesIn += load * 180
    s.bytesOut += load * 320
    s.accepted += Math.round(load / 50)
    s.wsIn += 20 + Math.round(10 * Math.random())
    s.wsOut += 60 + Math.round(30 * Math.random())
    if (Math.random() < 0.1) s.refusals['408']++
    if (Math.random() < 0.03) s.refusals['431']++
    let cumulative = 0
    const count = s.latency.reduce((a, b) => a + b, 0)
    const quantile = (q: number) => {
      let seen = 0
      for (let i = 0; i < s.latency.length; i++) {
        seen += s.latency[i]
        if (seen >= q * count) return 2 ** i * 0.75 / 1000
      }
      return 0
    }
    return {
      uptimeSeconds: Number(up.toFixed(3)),
      requests: { total: s.total, byStatus: { ...s.byStatus }, byProtocol: { 'http/1.0': 0, 'http/1.1': s.total, h2: 0 }, inFlight: Math.round(load / 100) },
      latency: {
        count,
        sumMs: s.sumMs,
        p50Ms: quantile(0.5),
        p90Ms: quantile(0.9),
        p99Ms: quantile(0.99),
        p999Ms: quantile(0.999),
        buckets: s.latency.map((n, i) => ({ leMs: 2 ** i / 1000, count: (cumulative += n) })),
      },
      bytes: { in: s.bytesIn, out: s.bytesOut },
      connections: { open: 40 + Math.round(load / 40), idle: 30, accepted: s.accepted },
      refusals: { ...s.refusals },
      websockets: { open: 12 + (tick % 7), messagesIn: s.wsIn, messagesOut: s.wsOut },
      process: { rssBytes: 60e6 + tick * 20e3 + Math.round(2e6 * Math.random()), eventLoopDelayMs: { p50: 0.02, p99: 0.4 + Math.random(), max: 1 + 3 * Math.random() } },
    }
  }
  const fake: FakeDashboard = {
    base: '',
    port: 0,
    sent: 0,
    refuse: false,
    dropStreams() {
      for (const r of streams) r.end()
      streams.clear()
    },
    close: () =>
      new Promise<void>((resolve) => {
        fake.dropStreams()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
  const send = (res: http.ServerResponse) => {
    res.write(`data: ${JSON.stringify(snapshot())}\n\n`)
    fake.sent++
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === mount || url.pathname === `${mount}/`) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(fs.readFileSync(DASHBOARD_HTML))
    } else if (url.pathname === `${mount}/events`) {
      if (fake.refuse) {
        res.writeHead(503, { 'content-type': 'text/plain' })
        res.end('draining')
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
      streams.add(res)
      send(res)
      const timer = setInterval(() => send(res), interval)
      res.on('close', () => {
        clearInterval(timer)
        streams.delete(res)
      })
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('not found')
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.port = (server.address() as { port: number }).port
  fake.base = `http://127.0.0.1:${fake.port}`
  return fake
}

function gauss(): number {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
}

// `node --import=tsx __test__/browser.ts`: the fake alone, to look at the page.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  void startFakeDashboard().then((fake) => console.log(`fake dashboard on ${fake.base}/_harrier`))
}
