// h2spec (the HTTP/2 conformance suite) against harrier's HTTP/2: in cleartext (prior
// knowledge), then over TLS (h2 by ALPN, `--tls -k`).
//
//   node scripts/h2spec.mjs [--port N] [--strict] [--cleartext | --tls] [-- extra h2spec arguments]
//
// Without --port it starts scripts/h2spec/server.mjs (one route answering every path) under
// the current HARRIER_IO / HARRIER_DRIVER, once per mode; the TLS run uses a self-signed
// certificate made with openssl into node_modules/.cache/h2spec/ on first use. Prints
// h2spec's summary per mode and every failing case; exits 1 unless every case passed.
//
// h2spec v2.2.1 is installed on first use into .tools/ (gitignored) with
// `GOBIN=$PWD/.tools go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible`
// (the only v2 the Go module proxy serves; it reports itself as 2.0.0). H2SPEC names another
// h2spec binary.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const tools = path.join(root, '.tools')
const MODULE = 'github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible'
const cache = path.join(root, 'node_modules', '.cache', 'h2spec')

function log(line) {
  console.log(`h2spec: ${line}`)
}

function parseArgs(argv) {
  const args = { port: null, strict: false, modes: ['cleartext', 'tls'], extra: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      args.extra = argv.slice(i + 1)
      break
    } else if (a === '--port') args.port = Number(argv[++i])
    else if (a.startsWith('--port=')) args.port = Number(a.slice(7))
    else if (a === '--strict') args.strict = true
    else if (a === '--cleartext') args.modes = ['cleartext']
    else if (a === '--tls') args.modes = ['tls']
    else {
      console.error(`h2spec: unknown argument ${a}\nusage: node scripts/h2spec.mjs [--port N] [--strict] [--cleartext | --tls] [-- h2spec arguments]`)
      process.exit(2)
    }
  }
  return args
}

function h2specBinary() {
  if (process.env.H2SPEC) return process.env.H2SPEC
  const bin = path.join(tools, process.platform === 'win32' ? 'h2spec.exe' : 'h2spec')
  if (fs.existsSync(bin)) return bin
  log(`installing ${MODULE} into ${tools}`)
  fs.mkdirSync(tools, { recursive: true })
  const r = spawnSync('go', ['install', MODULE], { stdio: 'inherit', env: { ...process.env, GOBIN: tools } })
  if (r.error) throw new Error(`go: ${r.error.message} (h2spec is installed with Go)`)
  if (r.status !== 0 || !fs.existsSync(bin)) throw new Error(`go install ${MODULE} exited with ${r.status ?? r.signal}`)
  return bin
}

/** A self-signed certificate for 127.0.0.1 and localhost, made once with openssl. */
function certificate() {
  const cert = path.join(cache, 'cert.pem')
  const key = path.join(cache, 'key.pem')
  if (fs.existsSync(cert) && fs.existsSync(key)) return { cert, key }
  fs.mkdirSync(cache, { recursive: true })
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '3650', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) throw new Error(`openssl could not make a certificate: ${r.error?.message ?? r.stderr}`)
  return { cert, key }
}

/** Starts scripts/h2spec/server.mjs; resolves with the child and its port once it listens. */
function startServer(mode) {
  const env = { ...process.env }
  if (mode === 'tls') {
    const { cert, key } = certificate()
    env.H2SPEC_CERT = cert
    env.H2SPEC_KEY = key
  }
  const server = spawn(process.execPath, [path.join(root, 'scripts', 'h2spec', 'server.mjs')], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      server.kill('SIGKILL')
      reject(new Error(`the harrier server printed no port within 30 s: ${out}`))
    }, 30_000)
    server.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the harrier server exited with ${code ?? signal} before listening: ${out}`))
    })
    server.stdout.setEncoding('utf8').on('data', (d) => {
      out += d
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line === undefined) return
      clearTimeout(timer)
      server.removeAllListeners('exit')
      const info = JSON.parse(line)
      log(`harrier server on port ${info.port} (io ${info.io}, driver ${info.driver}, ${info.tls ? 'TLS' : 'cleartext'}), pid ${server.pid}`)
      resolve({ server, port: info.port })
    })
  })
}

function stopServer(server) {
  return new Promise((resolve) => {
    if (server.exitCode !== null || server.signalCode !== null) return resolve()
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000)
    server.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    server.kill('SIGTERM')
  })
}

function runH2spec(bin, port, mode, args) {
  const argv = ['-h', '127.0.0.1', '-p', String(port), '-o', '5', ...(mode === 'tls' ? ['-t', '-k'] : []), ...(args.strict ? ['-S'] : []), ...args.extra]
  log(`$ ${bin} ${argv.join(' ')}`)
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d))
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, out }))
  })
}

/** One run of h2spec in `mode`; returns the number of cases that did not pass. */
async function runMode(bin, mode, args) {
  const started = args.port === null ? await startServer(mode) : { server: null, port: args.port }
  let result
  try {
    result = await runH2spec(bin, started.port, mode, args)
  } finally {
    if (started.server) await stopServer(started.server)
  }
  // The colours h2spec prints are not wanted in logs.
  const out = result.out.replace(/\x1b\[[0-9;]*m/g, '')
  const failures = out.indexOf('Failures:')
  if (failures >= 0) console.log(out.slice(failures))
  const summary = out.match(/(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/)
  if (!summary) {
    console.log(out.slice(-4000))
    log(`${mode}: no summary from h2spec (exit ${result.code ?? result.signal})`)
    return 1
  }
  log(`${mode}: ${summary[0]}`)
  const [, total, passed] = summary.map(Number)
  return total - passed
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const bin = h2specBinary()
  let failed = 0
  for (const mode of args.modes) failed += await runMode(bin, mode, args)
  if (failed > 0) {
    log(`${failed} cases did not pass`)
    process.exit(1)
  }
  log(`all cases passed (${args.modes.join(', ')})`)
}

main().catch((e) => {
  console.error(`h2spec: ${e.message}`)
  process.exit(1)
})
