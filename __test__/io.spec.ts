// The I/O backend: `new App({ io: 'auto' | 'epoll' | 'uring' })`, the HARRIER_IO
// environment variable, `app.io`, the fallback from io_uring to epoll where the kernel
// refuses io_uring, and the io_uring descriptors the engine holds.
//
// Where io_uring must be refused, the case runs in a child `node` (fixtures/io-child.cjs)
// under fixtures/deny-io-uring.c, a seccomp filter that makes io_uring_setup/enter/register
// fail with EPERM (a real refusal by the kernel, as in containers). Descriptors are
// counted in /proc/self/fd (links to `anon_inode:[io_uring]`); the tests that count them
// in this process are serial (ava runs them before the concurrent ones).
//
// Every test sets `io` and `driver` explicitly, or controls the environment of its child,
// so it means the same under any HARRIER_IO / HARRIER_DRIVER of the test run.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { App } from 'harrier'
import { denyIoUring } from './deny-io-uring.ts'
import { cleanEnv, root, testDir } from './distribution.ts'
import { closeApp, fetchT, rawReq, rawRequest, sha256, startApp, useApp } from './helpers.ts'

type Io = 'auto' | 'epoll' | 'uring'
type AppOptions = NonNullable<ConstructorParameters<typeof App>[0]>

const linux = process.platform === 'linux'
const WARNING = 'harrier: io_uring unavailable'
/** strerror(EPERM): the reason the seccomp filter gives */
const EPERM_TEXT = 'Operation not permitted'

/** The drivers every backend is checked with; the threads driver with two I/O threads. */
const DRIVERS: Array<{ name: string; options: AppOptions }> = [
  { name: 'inline', options: { driver: 'inline' } },
  { name: 'threads', options: { driver: 'threads', ioThreads: 2 } },
]

/** The io_uring descriptors this process holds. */
function rings(): number {
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[io_uring]') n++
    } catch {
      // closed between readdir and readlink
    }
  }
  return n
}

/** A TCP port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

interface ChildReport {
  constructed: boolean
  listened?: boolean
  ioBeforeListen?: unknown
  io?: unknown
  status?: number
  body?: string
  echoed?: boolean
  ringsBefore?: number
  ringsListening?: number
  ringsAfterRequests?: number
  ringsAfterClose?: number
  ringsAfter?: number
  socketsBefore?: number
  socketsAfter?: number
  listeningAfter?: boolean | null
  listening?: boolean
  error?: { isError?: boolean; name?: string; message?: string; code?: unknown }
}

interface ChildRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  report: ChildReport
  /** milliseconds from the report line to the exit of the child */
  exitAfterReport: number
  /** milliseconds from the spawn to the report line (to the exit, without one) */
  workMs: number
}

interface ChildSpec {
  options: AppOptions
  /** HARRIER_IO of the child (unset when undefined) */
  env?: string
  /** run under deny-io-uring: 'eperm' refuses io_uring, 'kill' kills the child if it uses io_uring */
  deny?: 'eperm' | 'kill'
  /** the port the child listens on (0 when undefined) */
  port?: number
}

/**
 * The most a child may take to exit once it printed its report: 5 s, or twice what its own
 * work took (start, listen, two requests, close) on a machine slow enough to stretch that.
 * A handle left open holds it to the 20 s limit below; one closed late, past this.
 */
const EXIT_LIMIT_MS = 5000
const exitLimit = (r: ChildRun): number => Math.max(EXIT_LIMIT_MS, 2 * r.workMs)

/**
 * Runs fixtures/io-child.cjs with a controlled environment (no HARRIER_IO unless given,
 * no HARRIER_DRIVER, libuv's own io_uring off) and waits for it to exit by itself.
 */
async function runChild(spec: ChildSpec): Promise<ChildRun> {
  const env = cleanEnv()
  delete env.HARRIER_IO
  delete env.HARRIER_DRIVER
  // libuv can use io_uring for file I/O when asked to; keep it off so that every ring is harrier's
  env.UV_USE_IO_URING = '0'
  if (spec.env !== undefined) env.HARRIER_IO = spec.env
  const nodeArgs = [path.join(testDir, 'fixtures', 'io-child.cjs'), JSON.stringify({ options: spec.options, port: spec.port ?? 0 })]
  const [command, args] =
    spec.deny === undefined
      ? [process.execPath, nodeArgs]
      : [denyIoUring(), [...(spec.deny === 'kill' ? ['--kill'] : []), process.execPath, ...nodeArgs]]
  const spawnedAt = Date.now()
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let reportAt = 0
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    if (reportAt === 0 && stdout.includes('\n')) reportAt = Date.now()
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const limit = 20_000
  const { code, signal, exitAt } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; exitAt: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the child did not exit by itself within ${limit} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, limit)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once('exit', () => {
      // 'exit' is when the process ended; 'close' comes once stdout/stderr are read to the end
      const exitAt = Date.now()
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, exitAt })
      })
    })
  })
  const lines = stdout.trim().split('\n')
  let report: ChildReport
  try {
    report = JSON.parse(lines[lines.length - 1]) as ChildReport
  } catch {
    throw new Error(`the child printed no report (exit ${code}, signal ${signal})\nstdout: ${stdout}\nstderr: ${stderr}`)
  }
  return { code, signal, stdout, stderr, report, workMs: (reportAt || exitAt) - spawnedAt, exitAfterReport: reportAt === 0 ? 0 : exitAt - reportAt }
}

/** The child exited by itself, soon after its report, with code 0. */
function assertCleanExit(t: ExecutionContext, r: ChildRun): void {
  t.is(r.signal, null, `the child was killed by ${r.signal}\nstderr: ${r.stderr}`)
  t.is(r.code, 0, `the child exited with ${r.code}\nstderr: ${r.stderr}`)
  t.true(r.exitAfterReport < exitLimit(r), `the child took ${r.exitAfterReport} ms to exit after its report (its work took ${r.workMs} ms)`)
}

/** The child listened, served GET / and the POST echo, and closed. */
function assertServed(t: ExecutionContext, r: ChildRun): void {
  t.true(r.report.constructed, `the App was not made: ${JSON.stringify(r.report.error)}`)
  t.true(r.report.listened, `listen() rejected: ${JSON.stringify(r.report.error)}\nstderr: ${r.stderr}`)
  t.is(r.report.ioBeforeListen, null, 'app.io before listen()')
  t.is(r.report.status, 200, `GET /: ${r.report.body}`)
  t.is(r.report.body, 'hello')
  t.true(r.report.echoed, 'the POST body was echoed')
  // The check the refusal tests rely on sees a listener where there is one.
  t.true(r.report.listening, 'listensOn() found the listening socket while serving')
}

/** The stderr lines that mention io_uring. */
function uringLines(stderr: string): string[] {
  return stderr.split(/\r?\n/).filter((line) => /io_uring/.test(line))
}

// ---------------------------------------------------------------------------
// The option
// ---------------------------------------------------------------------------

test('io: an unknown value is refused when the app is made, with a RangeError naming the option and the allowed values', (t) => {
  for (const value of ['fast', 'io_uring', 'URING', 'Epoll', 'kqueue', '', ' uring', 1, true, {}]) {
    // @ts-expect-error: not an io backend
    const error = t.throws(() => new App({ io: value }), { instanceOf: RangeError }, `io: ${JSON.stringify(value)}`)
    if (error === undefined) continue
    t.regex(error.message, /\bio\b/, `the message names the option io: ${error.message}`)
    for (const allowed of ['auto', 'epoll', 'uring']) {
      t.true(error.message.includes(allowed), `the message names '${allowed}': ${error.message}`)
    }
  }
})

test('io: auto, epoll, uring and no io are accepted, and app.io is null before listen()', (t) => {
  for (const io of [undefined, 'auto', 'epoll', 'uring'] as const) {
    const app = io === undefined ? new App() : new App({ io })
    t.is(app.io, null, `io: ${io}`)
  }
})

if (linux) {
  // -------------------------------------------------------------------------
  // The refusal fixture itself
  // -------------------------------------------------------------------------

  test('deny-io-uring: io_uring_setup fails with EPERM under the filter, and not without it', async (t) => {
    const exe = denyIoUring()
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(exe, ['--self-test'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let stdout = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      child.once('error', reject)
      child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`--self-test exited with ${code}: ${stdout}`))))
    })
    const [before, after] = out.trim().split('\n')
    t.regex(before, /^before (ok|\d+ .+)$/)
    t.false(before.startsWith('before 1 '), `io_uring_setup is already refused without the filter: ${before}`)
    t.is(after, `after 1 ${EPERM_TEXT}`)
  })

  // -------------------------------------------------------------------------
  // Descriptors held by this process (serial: nothing else runs meanwhile)
  // -------------------------------------------------------------------------

  for (const driver of DRIVERS) {
    test.serial(`io: epoll (${driver.name} driver) holds no io_uring descriptor`, async (t) => {
      const before = rings()
      const { app, base } = await startApp((app) => app.get('/', (req, res) => res.text('epoll')), { ...driver.options, io: 'epoll' })
      try {
        t.is(app.io, 'epoll')
        t.is(rings(), before, 'io_uring descriptors while listening')
        const r = await fetchT(`${base}/`)
        t.is(await r.text(), 'epoll')
        t.is(rings(), before, 'io_uring descriptors after a request')
      } finally {
        await closeApp(app)
      }
      t.is(rings(), before, 'io_uring descriptors after close()')
    })
  }

  test.serial('io: uring (inline driver) holds an io_uring descriptor while listening and closes it on close()', async (t) => {
    const before = rings()
    const { app, base } = await startApp((app) => app.get('/', (req, res) => res.text('uring')), { driver: 'inline', io: 'uring' })
    try {
      t.is(app.io, 'uring')
      const listening = rings()
      t.true(listening >= before + 1, `io_uring descriptors: ${before} before listen(), ${listening} while listening`)
      const r = await fetchT(`${base}/`)
      t.is(await r.text(), 'uring')
    } finally {
      await closeApp(app)
    }
    t.is(rings(), before, 'io_uring descriptors after close(): a ring was leaked')
  })

  test.serial('io: uring (threads driver, ioThreads: 2) holds one ring per I/O thread and closes them on close()', async (t) => {
    const before = rings()
    const { app, base } = await startApp((app) => app.get('/', (req, res) => res.text('uring threads')), {
      driver: 'threads',
      ioThreads: 2,
      io: 'uring',
    })
    try {
      t.is(app.io, 'uring')
      t.is(rings(), before + 2, 'io_uring descriptors while listening: one per I/O thread')
      const bodies = await Promise.all(Array.from({ length: 8 }, () => fetchT(`${base}/`).then((r) => r.text())))
      t.deepEqual(bodies, Array(8).fill('uring threads'))
      t.is(rings(), before + 2, 'io_uring descriptors after requests')
    } finally {
      await closeApp(app)
    }
    t.is(rings(), before, 'io_uring descriptors after close(): a ring was leaked')
  })

  test.serial('io: two apps in turn with uring leave no ring behind', async (t) => {
    const before = rings()
    for (const driver of DRIVERS) {
      const { app, base } = await startApp((app) => app.get('/', (req, res) => res.text('again')), { ...driver.options, io: 'uring' })
      try {
        t.is(app.io, 'uring', `${driver.name} driver`)
        t.true(rings() > before, `an io_uring descriptor while listening (${driver.name} driver)`)
        t.is(await (await fetchT(`${base}/`)).text(), 'again')
      } finally {
        await closeApp(app)
      }
      t.is(rings(), before, `io_uring descriptors after close() (${driver.name} driver)`)
    }
  })

  // -------------------------------------------------------------------------
  // app.io and auto where io_uring is allowed (this machine)
  // -------------------------------------------------------------------------

  test('io: auto uses io_uring where the kernel allows it', async (t) => {
    for (const driver of DRIVERS) {
      const { app } = await startApp((app) => app.get('/', (req, res) => res.text('auto')), { ...driver.options, io: 'auto' })
      try {
        t.is(app.io, 'uring', `${driver.name} driver`)
      } finally {
        await closeApp(app)
      }
    }
  })

  // -------------------------------------------------------------------------
  // Requests on each backend
  // -------------------------------------------------------------------------

  for (const io of ['epoll', 'uring'] as const) {
    for (const driver of DRIVERS) {
      test(`io: ${io} (${driver.name} driver) serves a GET, a 1 MiB POST echo and a pipelined pair`, async (t) => {
        const { app, base, port } = await useApp(
          t,
          (app) => {
            app.get('/hello/:name', (req, res) => res.text(`hello ${req.params.name} over ${io}`))
            app.post('/echo', async (req, res) => res.header('content-type', 'application/octet-stream').send(Buffer.from(await req.arrayBuffer())))
          },
          { ...driver.options, io, maxBodySize: 4 * 1024 * 1024 },
        )
        t.is(app.io, io)

        const get = await fetchT(`${base}/hello/world`)
        t.is(get.status, 200)
        t.is(await get.text(), `hello world over ${io}`)

        const data = randomBytes(1024 * 1024)
        const post = await fetchT(`${base}/echo`, { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream' } }, 10_000)
        t.is(post.status, 200)
        const echoed = Buffer.from(await post.arrayBuffer())
        t.is(echoed.length, data.length)
        t.is(sha256(echoed), sha256(data))

        const pair = Buffer.concat([rawReq('GET', '/hello/first'), rawReq('GET', '/hello/second')])
        const { responses } = await rawRequest(port, pair, { until: 2 })
        t.deepEqual(
          responses.map((r) => [r.status, r.body.toString()]),
          [
            [200, `hello first over ${io}`],
            [200, `hello second over ${io}`],
          ],
        )
      })
    }
  }

  // -------------------------------------------------------------------------
  // HARRIER_IO (children with a controlled environment)
  // -------------------------------------------------------------------------

  /** app.io tells the truth: a ring is held while listening on uring, none on epoll; none after close(). */
  function assertRingsMatch(t: ExecutionContext, r: ChildRun): void {
    if (r.report.io === 'epoll') t.is(r.report.ringsListening, r.report.ringsBefore, 'io_uring descriptors while listening on epoll')
    else t.true(r.report.ringsListening! > r.report.ringsBefore!, 'an io_uring descriptor while listening on uring')
    t.is(r.report.ringsAfterClose, r.report.ringsBefore, 'io_uring descriptors after close()')
  }

  for (const [env, expected] of [
    ['epoll', 'epoll'],
    ['uring', 'uring'],
    ['auto', 'uring'],
  ] as const) {
    test(`HARRIER_IO=${env} without the option: app.io is ${expected}`, async (t) => {
      const r = await runChild({ options: { driver: 'inline' }, env })
      assertServed(t, r)
      t.is(r.report.io, expected)
      assertRingsMatch(t, r)
      assertCleanExit(t, r)
    })
  }

  test('neither the option nor HARRIER_IO: the default backend is epoll, and no ring is made', async (t) => {
    const r = await runChild({ options: { driver: 'inline' } })
    assertServed(t, r)
    t.is(r.report.io, 'epoll')
    t.is(r.report.ringsListening, r.report.ringsBefore, 'io_uring descriptors while listening')
    assertCleanExit(t, r)
  })

  test('an unknown HARRIER_IO is refused at listen() with a RangeError naming it', async (t) => {
    const r = await runChild({ options: { driver: 'inline' }, env: 'fast' })
    t.is(r.report.error?.name, 'RangeError')
    t.regex(r.report.error?.message ?? '', /HARRIER_IO/)
    t.regex(r.report.error?.message ?? '', /'auto', 'epoll' or 'uring'/)
    assertCleanExit(t, r)
  })

  test('the io option wins over HARRIER_IO: io: epoll with HARRIER_IO=uring', async (t) => {
    const r = await runChild({ options: { driver: 'inline', io: 'epoll' }, env: 'uring' })
    assertServed(t, r)
    t.is(r.report.io, 'epoll')
    t.is(r.report.ringsListening, r.report.ringsBefore, 'io_uring descriptors while listening')
    assertCleanExit(t, r)
  })

  test('the io option wins over HARRIER_IO: io: uring with HARRIER_IO=epoll', async (t) => {
    const r = await runChild({ options: { driver: 'inline', io: 'uring' }, env: 'epoll' })
    assertServed(t, r)
    t.is(r.report.io, 'uring')
    t.true(r.report.ringsListening! > r.report.ringsBefore!, 'an io_uring descriptor while listening')
    assertCleanExit(t, r)
  })

  // -------------------------------------------------------------------------
  // Where the kernel refuses io_uring (children under deny-io-uring)
  // -------------------------------------------------------------------------

  /** The checks of a fallback from io_uring to epoll: served on epoll, and one line on stderr. */
  function assertFallback(t: ExecutionContext, r: ChildRun): void {
    assertServed(t, r)
    t.is(r.report.io, 'epoll')
    t.is(r.report.ringsListening, r.report.ringsBefore, 'io_uring descriptors while listening')
    const lines = uringLines(r.stderr)
    t.is(lines.length, 1, `one line about io_uring on stderr, got:\n${r.stderr}`)
    const line = lines[0] ?? ''
    t.true(line.startsWith(WARNING), `the line starts with "${WARNING}": ${line}`)
    t.true(line.includes(EPERM_TEXT), `the line gives the reason (${EPERM_TEXT}): ${line}`)
    t.regex(line, /epoll/, `the line says epoll is used: ${line}`)
    assertCleanExit(t, r)
  }

  for (const driver of DRIVERS) {
    test(`io: auto where io_uring is refused (${driver.name} driver) falls back to epoll with one line on stderr`, async (t) => {
      const r = await runChild({ options: { ...driver.options, io: 'auto' }, deny: 'eperm' })
      assertFallback(t, r)
    })

    test(`io: uring where io_uring is refused (${driver.name} driver): listen() rejects with HARRIER_IO_UNAVAILABLE, nothing listens, the process exits`, async (t) => {
      const port = await freePort()
      const r = await runChild({ options: { ...driver.options, io: 'uring' }, deny: 'eperm', port })
      t.true(r.report.constructed, `the App was not made: ${JSON.stringify(r.report.error)}`)
      t.false(r.report.listened, `listen() resolved although io_uring is refused (app.io: ${JSON.stringify(r.report.io)})`)
      const error = r.report.error ?? {}
      t.true(error.isError, `listen() rejected with an Error: ${JSON.stringify(error)}`)
      t.is(error.code, 'HARRIER_IO_UNAVAILABLE')
      t.regex(error.message ?? '', /io_uring/, 'the message mentions io_uring')
      t.true((error.message ?? '').includes(EPERM_TEXT), `the message gives the reason (${EPERM_TEXT}): ${error.message}`)
      t.is(r.report.listeningAfter, false, `the child still listens on port ${port} after the rejection`)
      t.is(r.report.socketsAfter, r.report.socketsBefore, 'sockets held before listen() and after its rejection')
      t.is(r.report.ringsAfter, r.report.ringsBefore, 'io_uring descriptors after the rejection')
      assertCleanExit(t, r)
    })
  }

  test('HARRIER_IO=uring where io_uring is refused: listen() rejects with HARRIER_IO_UNAVAILABLE', async (t) => {
    const port = await freePort()
    const r = await runChild({ options: { driver: 'inline' }, env: 'uring', deny: 'eperm', port })
    t.false(r.report.listened, `listen() resolved although io_uring is refused (app.io: ${JSON.stringify(r.report.io)})`)
    t.is(r.report.error?.code, 'HARRIER_IO_UNAVAILABLE')
    t.is(r.report.listeningAfter, false, `the child still listens on port ${port} after the rejection`)
    assertCleanExit(t, r)
  })

  test('HARRIER_IO=auto where io_uring is refused falls back to epoll with one line on stderr', async (t) => {
    const r = await runChild({ options: { driver: 'inline' }, env: 'auto', deny: 'eperm' })
    assertFallback(t, r)
  })

  test('the io option wins over HARRIER_IO where io_uring is refused: io: auto with HARRIER_IO=uring falls back to epoll', async (t) => {
    const r = await runChild({ options: { driver: 'inline', io: 'auto' }, env: 'uring', deny: 'eperm' })
    assertFallback(t, r)
  })

  for (const driver of DRIVERS) {
    test(`io: epoll (${driver.name} driver) never calls io_uring: it serves under a filter that kills on any io_uring call, silently`, async (t) => {
      const r = await runChild({ options: { ...driver.options, io: 'epoll' }, env: 'uring', deny: 'kill' })
      t.not(r.signal, 'SIGSYS', 'the process was killed for calling io_uring')
      assertServed(t, r)
      t.is(r.report.io, 'epoll')
      t.deepEqual(uringLines(r.stderr), [], 'nothing about io_uring on stderr')
      assertCleanExit(t, r)
    })
  }
} else {
  // Elsewhere there is no io_uring: asking for it is an error at listen(), auto serves on
  // the readiness backend (kqueue, IOCP) after one line saying why.
  test('io: uring where there is no io_uring: listen() rejects with HARRIER_IO_UNAVAILABLE', async (t) => {
    const app = new App({ io: 'uring' })
    const error = await t.throwsAsync(app.listen({ port: 0, host: '127.0.0.1', signals: false }))
    t.is((error as Error & { code?: string }).code, 'HARRIER_IO_UNAVAILABLE')
    t.regex(error.message, /io_uring/)
    t.is(app.io, null)
  })

  test('io: auto where there is no io_uring serves on the platform backend', async (t) => {
    const { app, base } = await startApp((a) => a.get('/', (req, res) => res.text('ok')), { io: 'auto' })
    t.teardown(() => closeApp(app))
    t.is(await (await fetchT(`${base}/`)).text(), 'ok')
    t.true(app.io === 'kqueue' || app.io === 'iocp', `app.io: ${app.io}`)
  })
}
