// Autobahn|Testsuite (the fuzzing client) against harrier's WebSocket server.
//
//   node scripts/autobahn.mjs [--cases '1.*,2.*,...'] [--url ws://127.0.0.1:PORT]
//
// Without --url it starts scripts/autobahn/server.mjs (a harrier echo server on port 0,
// perMessageDeflate on, maxPayloadLength 16 MiB) under the current HARRIER_IO /
// HARRIER_DRIVER. The default cases are 1.* to 10.* (everything but the compression cases
// 12.* and 13.*; `--cases '12.*,13.*'` runs those). Exits 1 unless every case's behavior
// and behaviorClose are OK, NON-STRICT or INFORMATIONAL; prints the counts per behaviour
// and the failing cases.
//
// The testsuite is Python 2.7 only. What it needs is installed once, on first use, into
// node_modules/.cache/autobahn/: a Python 3 venv holding virtualenv<20.22 (the last
// virtualenv that makes Python 2.7 environments), a virtualenv made by it from pyenv's
// Python 2.7.18 ($(pyenv root)/versions/2.7.18/bin/python), and autobahntestsuite==25.10.1
// installed into that with pip. AUTOBAHN_PYTHON2 names another Python 2.7 interpreter.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cache = path.join(root, 'node_modules', '.cache', 'autobahn')
const TESTSUITE = 'autobahntestsuite==25.10.1'
const VIRTUALENV = 'virtualenv<20.22'
const PASSING = new Set(['OK', 'NON-STRICT', 'INFORMATIONAL'])
const DEFAULT_CASES = ['1.*', '2.*', '3.*', '4.*', '5.*', '6.*', '7.*', '8.*', '9.*', '10.*']

function parseArgs(argv) {
  const args = { cases: DEFAULT_CASES, url: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const eq = a.indexOf('=')
      if (eq >= 0) return a.slice(eq + 1)
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--cases' || a.startsWith('--cases=')) {
      args.cases = value()
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean)
    } else if (a === '--url' || a.startsWith('--url=')) {
      args.url = value()
    } else if (a === '-h' || a === '--help') {
      usage()
    } else {
      usage(`unknown argument ${a}`)
    }
  }
  if (args.cases.length === 0) usage('--cases is empty')
  return args
}

function usage(error) {
  if (error) console.error(`autobahn: ${error}`)
  console.error("usage: node scripts/autobahn.mjs [--cases '1.*,2.*,...'] [--url ws://127.0.0.1:PORT]")
  process.exit(error ? 2 : 0)
}

function log(line) {
  console.log(`autobahn: ${line}`)
}

/** Runs a command to completion with its output shown; throws when it fails. */
function sh(command, args, options = {}) {
  log(`$ ${[command, ...args].join(' ')}`)
  const r = spawnSync(command, args, { stdio: 'inherit', ...options })
  if (r.error) throw new Error(`${command}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.status ?? r.signal}`)
}

function python2() {
  if (process.env.AUTOBAHN_PYTHON2) return process.env.AUTOBAHN_PYTHON2
  let pyenvRoot = process.env.PYENV_ROOT
  const r = spawnSync('pyenv', ['root'], { encoding: 'utf8' })
  if (r.status === 0 && r.stdout.trim()) pyenvRoot = r.stdout.trim()
  pyenvRoot ??= path.join(os.homedir(), '.pyenv')
  const python = path.join(pyenvRoot, 'versions', '2.7.18', 'bin', 'python')
  if (!fs.existsSync(python)) {
    throw new Error(`no Python 2.7.18 at ${python}: install it with \`pyenv install 2.7.18\`, or set AUTOBAHN_PYTHON2`)
  }
  return python
}

function python3() {
  // PATH's python3 first, then any Python 3 that pyenv holds (Debian's may lack ensurepip).
  const pyenvVersions = path.join(process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv'), 'versions')
  const pyenv3 = fs.existsSync(pyenvVersions)
    ? fs.readdirSync(pyenvVersions).filter((v) => v.startsWith('3.')).sort().reverse().map((v) => path.join(pyenvVersions, v, 'bin', 'python'))
    : []
  for (const candidate of [process.env.AUTOBAHN_PYTHON3, 'python3', ...pyenv3]) {
    if (!candidate) continue
    const r = spawnSync(candidate, ['-c', 'import sys, venv, ensurepip; print(sys.version_info[0])'], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim() === '3') return candidate
  }
  throw new Error('no python3 with the venv module on PATH (AUTOBAHN_PYTHON3 names one)')
}

const py2Dir = path.join(cache, 'py2')
const wstest = path.join(py2Dir, 'bin', 'wstest')
const marker = path.join(cache, `installed-${TESTSUITE.replace(/[^\w.-]/g, '_')}`)

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Installs the testsuite into the cache unless it is there already; one installer at a time. */
function ensureInstalled() {
  if (fs.existsSync(marker) && fs.existsSync(wstest)) return
  fs.mkdirSync(cache, { recursive: true })
  const lock = path.join(cache, 'install.lock')
  const deadline = Date.now() + 15 * 60_000
  for (;;) {
    try {
      fs.mkdirSync(lock)
      break
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
      if (fs.existsSync(marker) && fs.existsSync(wstest)) return
      // a lock left by an installer that died
      const age = Date.now() - fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs
      if (age > 15 * 60_000) fs.rmSync(lock, { recursive: true, force: true })
      if (Date.now() > deadline) throw new Error(`another install holds ${lock} since 15 minutes`)
      sleepSync(1000)
    }
  }
  try {
    if (fs.existsSync(marker) && fs.existsSync(wstest)) return
    log(`installing ${TESTSUITE} into ${cache}`)
    const py2 = python2()
    const venv3 = path.join(cache, 'venv3')
    fs.rmSync(venv3, { recursive: true, force: true })
    fs.rmSync(py2Dir, { recursive: true, force: true })
    sh(python3(), ['-m', 'venv', venv3])
    sh(path.join(venv3, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--quiet', VIRTUALENV])
    sh(path.join(venv3, 'bin', 'virtualenv'), ['--quiet', '-p', py2, py2Dir])
    sh(path.join(py2Dir, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--no-python-version-warning', '--quiet', TESTSUITE])
    sh(wstest, ['--autobahnversion'])
    fs.writeFileSync(marker, `${new Date().toISOString()}\n`)
  } finally {
    fs.rmSync(lock, { recursive: true, force: true })
  }
}

/** Starts scripts/autobahn/server.mjs and resolves with its URL once it prints its port. */
function startServer() {
  const server = spawn(process.execPath, [path.join(root, 'scripts', 'autobahn', 'server.mjs')], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  })
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      server.kill('SIGKILL')
      reject(new Error(`the harrier echo server printed no port within 30 s: ${out}`))
    }, 30_000)
    server.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    server.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the harrier echo server exited with ${code ?? signal} before it listened: ${out}`))
    })
    server.stdout.setEncoding('utf8').on('data', (d) => {
      out += d
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (!line || !out.includes('\n')) return
      clearTimeout(timer)
      server.removeAllListeners('exit')
      const info = JSON.parse(line)
      log(`harrier echo server on port ${info.port} (io ${info.io}, driver ${info.driver}), pid ${server.pid}`)
      resolve({ server, url: `ws://127.0.0.1:${info.port}` })
    })
  })
}

function stopServer(server) {
  if (!server || server.exitCode !== null || server.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000)
    server.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    server.kill('SIGTERM')
  })
}

function runWstest(runDir) {
  return new Promise((resolve, reject) => {
    const logFile = path.join(runDir, 'wstest.log')
    const out = fs.openSync(logFile, 'w')
    const child = spawn(wstest, ['-m', 'fuzzingclient', '-s', 'spec.json'], { cwd: runDir, stdio: ['ignore', out, out] })
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      fs.closeSync(out)
      resolve({ code, signal, logFile })
    })
  })
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  ensureInstalled()
  let server = null
  let url = args.url
  const stop = () => stopServer(server)
  process.once('SIGINT', () => stop().then(() => process.exit(130)))
  process.once('SIGTERM', () => stop().then(() => process.exit(143)))
  try {
    if (!url) ({ server, url } = await startServer())
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'harrier-autobahn-'))
    const outdir = path.join(runDir, 'reports', 'servers')
    const spec = {
      outdir,
      servers: [{ agent: 'harrier', url }],
      cases: args.cases,
      'exclude-cases': [],
      'exclude-agent-cases': {},
    }
    fs.writeFileSync(path.join(runDir, 'spec.json'), JSON.stringify(spec, null, 2))
    log(`running cases ${args.cases.join(',')} against ${url} (reports in ${outdir})`)
    const started = Date.now()
    const r = await runWstest(runDir)
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    const indexFile = path.join(outdir, 'index.json')
    if (!fs.existsSync(indexFile)) {
      const tail = fs.readFileSync(r.logFile, 'utf8').split('\n').slice(-40).join('\n')
      throw new Error(`wstest exited with ${r.code ?? r.signal} after ${seconds} s and wrote no ${indexFile}:\n${tail}`)
    }
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf8'))
    const results = index.harrier ?? Object.values(index)[0] ?? {}
    const ids = Object.keys(results).sort(compareCaseIds)
    const behavior = {}
    const behaviorClose = {}
    const failing = []
    for (const id of ids) {
      const c = results[id]
      behavior[c.behavior] = (behavior[c.behavior] ?? 0) + 1
      behaviorClose[c.behaviorClose] = (behaviorClose[c.behaviorClose] ?? 0) + 1
      if (!PASSING.has(c.behavior) || !PASSING.has(c.behaviorClose)) failing.push({ id, ...c })
    }
    log(`${ids.length} cases in ${seconds} s (wstest exited with ${r.code ?? r.signal})`)
    log(`behavior: ${JSON.stringify(behavior)}`)
    log(`behaviorClose: ${JSON.stringify(behaviorClose)}`)
    for (const f of failing) {
      log(`FAILED ${f.id}: behavior ${f.behavior}, behaviorClose ${f.behaviorClose}, remoteCloseCode ${f.remoteCloseCode}, report ${path.join(outdir, f.reportfile ?? '')}`)
    }
    if (ids.length === 0) throw new Error('no case ran: are the --cases right?')
    // wstest gives up on the cases left when the server stops answering, and still exits 0
    const planned = /will run (\d+) test cases/.exec(fs.readFileSync(r.logFile, 'utf8'))
    const missing = planned ? Number(planned[1]) - ids.length : 0
    const refused = /Connection to \S+ failed/.test(fs.readFileSync(r.logFile, 'utf8'))
    if (missing > 0 || refused) log(`only ${ids.length} of ${planned?.[1] ?? '?'} cases ran: the server stopped answering (${r.logFile})`)
    if (server && (server.exitCode !== null || server.signalCode !== null)) log(`the harrier echo server died during the run (${server.exitCode ?? server.signalCode})`)
    if (failing.length > 0 || missing > 0 || refused || r.code !== 0) {
      log(`${failing.length} of ${ids.length} cases failed; the reports are in ${outdir}`)
      process.exitCode = 1
    } else {
      log(`all ${ids.length} cases passed`)
      fs.rmSync(runDir, { recursive: true, force: true })
    }
  } finally {
    await stop()
  }
}

function compareCaseIds(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1)
    if (d !== 0) return d
  }
  return 0
}

main().catch((e) => {
  console.error(`autobahn: ${e.message}`)
  process.exit(1)
})
