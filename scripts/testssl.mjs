// `node scripts/testssl.mjs`: testssl.sh against a harrier TLS App (the built package).
//
// Installs testssl.sh when it is missing (apt-get, as root or through `sudo -n`), makes
// test certificates the way the tests do (__test__/tls-certs.ts: a CA and a leaf for
// localhost and 127.0.0.1), serves `GET /` over TLS from the built package (index.mjs) on a
// free port, runs testssl.sh against it with the test CA added, prints the protocols offered
// and the findings by severity, and exits non-zero when
//   - any protocol below TLS 1.2 (SSLv2, SSLv3, TLS 1.0, TLS 1.1) is offered, or TLS 1.2 or
//     TLS 1.3 is not,
//   - any finding rated MEDIUM or worse remains, other than the ones that come from the test
//     CA and the test setup (EXPECTED below, each with its reason),
//   - testssl.sh reports a scan problem (a FATAL finding, or no result for the protocols).
// Environment: HARRIER_TESTSSL_ARGS replaces the check selection (default below);
// HARRIER_TESTSSL_KEEP=1 keeps the temporary directory with the JSON and the log.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const started = Date.now()
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`

/**
 * Findings that come from the test CA or the test setup, not from harrier: left out of the
 * verdict (still printed). Each is matched by id (and, where the id alone would hide a real
 * problem, by its text too).
 */
const EXPECTED = [
  // the test CA publishes no revocation information (no CRL distribution point, no OCSP
  // responder): "NOT ok -- neither CRL nor OCSP URI provided" (HIGH)
  { id: /^cert_revocation/, why: 'the test CA has neither a CRL nor an OCSP responder' },
  { id: /^cert_crlDistributionPoints/, why: 'the test CA has no CRL' },
  { id: /^cert_ocspURL/, why: 'the test CA has no OCSP responder' },
  // a CA made a moment ago is not in any trust store testssl.sh knows; --add-ca makes its
  // own check pass, but the per-store results may still say so
  { id: /^cert_chain_of_trust/, why: 'the test CA is in no public trust store (it is passed with --add-ca)' },
  { id: /^cert_trust/, finding: /./, why: 'the certificate is for localhost/127.0.0.1, made by the test CA' },
]

function log(line = '') {
  process.stdout.write(`${line}\n`)
}

// ---------------------------------------------------------------------------
// testssl.sh
// ---------------------------------------------------------------------------

function which(names) {
  for (const name of names) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  return null
}

function ensureTestssl() {
  // Debian's package installs /usr/bin/testssl; upstream's script is testssl.sh
  const found = which(['testssl.sh', 'testssl'])
  if (found) return found
  log('testssl.sh is not installed: installing it with apt-get')
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const prefix = asRoot ? [] : ['sudo', '-n']
  if (!asRoot && !which(['sudo'])) throw new Error('testssl.sh is missing, and installing it needs root or sudo -n')
  const apt = (args) => {
    const [cmd, ...rest] = [...prefix, 'apt-get', ...args]
    return spawnSync(cmd, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status
  }
  if (apt(['install', '-y', '--no-install-recommends', 'testssl.sh']) !== 0) {
    if (apt(['update']) !== 0 || apt(['install', '-y', '--no-install-recommends', 'testssl.sh']) !== 0) {
      throw new Error('apt-get install testssl.sh failed')
    }
  }
  const installed = which(['testssl.sh', 'testssl'])
  if (!installed) throw new Error('testssl.sh was installed but is not on PATH')
  return installed
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

async function startServer(certs) {
  const index = join(root, 'index.mjs')
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('the package is not built: run `npm run build` first')
  const { App } = await import(index)
  const app = new App()
  app.get('/', (req, res) => res.text(`hello over ${req.secure ? 'https' : 'http'}\n`))
  const { port } = await app.listen({
    port: 0,
    host: '127.0.0.1',
    signals: false,
    tls: { cert: certs.localhost.cert, key: certs.localhost.key },
  })
  return { app, port }
}

// ---------------------------------------------------------------------------
// Running and judging
// ---------------------------------------------------------------------------

function runTestssl(bin, args, logFile) {
  return new Promise((resolve, reject) => {
    // not spawnSync: the server runs on this process's event loop
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out, logFile })
    })
  })
}

const RANK = { DEBUG: 0, INFO: 1, OK: 2, LOW: 3, MEDIUM: 4, HIGH: 5, CRITICAL: 6, WARN: 1, FATAL: 7 }

function expectedFor(f) {
  return EXPECTED.find((e) => e.id.test(f.id) && (e.finding === undefined || e.finding.test(f.finding)))
}

async function main() {
  const bin = ensureTestssl()
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.match(/testssl\.sh\s+([\w.+-]+)/)?.[1] ?? 'unknown version'
  log(`testssl.sh: ${bin} (${version})`)

  const { tsImport } = await import('tsx/esm/api')
  const { makeCerts, removeCerts } = await tsImport(join(root, '__test__', 'tls-certs.ts'), import.meta.url)
  const certs = makeCerts()
  const work = mkdtempSync(join(tmpdir(), 'harrier-testssl-'))
  const jsonFile = join(work, 'testssl.json')
  const { app, port } = await startServer(certs)
  log(`harrier serving TLS on 127.0.0.1:${port} (HARRIER_IO=${process.env.HARRIER_IO ?? 'default'}, HARRIER_DRIVER=${process.env.HARRIER_DRIVER ?? 'default'})`)

  // -p protocols, -s cipher categories, -f forward secrecy, -P server preferences,
  // -S server defaults (certificate, tickets, resumption), -h HTTP headers, -U every
  // vulnerability check, -R renegotiation (in -U too), -e no: every cipher one by one is
  // slow and adds nothing -s and -f do not
  const checks = (process.env.HARRIER_TESTSSL_ARGS ?? '-p -s -f -P -S -h -U').split(/\s+/).filter(Boolean)
  const args = [
    '--quiet',
    '--color', '0',
    '--warnings', 'batch',
    '--ip', '127.0.0.1',
    '--add-ca', certs.ca,
    '--connect-timeout', '10',
    '--openssl-timeout', '10',
    '--jsonfile', jsonFile,
    ...checks,
    `https://localhost:${port}/`,
  ]
  log(`running: testssl ${args.join(' ')}`)
  const scanStart = Date.now()
  let result
  try {
    result = await runTestssl(bin, args, join(work, 'testssl.log'))
  } finally {
    await app.close()
  }
  const scanTime = Date.now() - scanStart
  const failures = []
  if (!existsSync(jsonFile)) {
    log(result.out.slice(-5000))
    throw new Error(`testssl.sh wrote no JSON (exit ${result.code}${result.signal ? `, ${result.signal}` : ''})`)
  }
  const findings = JSON.parse(readFileSync(jsonFile, 'utf8'))
  if (process.env.HARRIER_TESTSSL_KEEP) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(result.logFile, result.out)
    log(`kept: ${work}`)
  } else {
    rmSync(work, { recursive: true, force: true })
  }
  removeCerts(certs)

  // protocols
  log('')
  log('protocols:')
  const protocols = ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3']
  for (const id of protocols) {
    const f = findings.find((x) => x.id === id)
    const text = f ? f.finding : '(no result)'
    log(`  ${id.padEnd(7)} ${text}`)
    if (!f) failures.push(`no result for protocol ${id}`)
    else if (['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1'].includes(id)) {
      if (!/^not offered/i.test(f.finding)) failures.push(`${id} is offered: ${f.finding}`)
    } else if (!/^offered/i.test(f.finding)) failures.push(`${id} is not offered: ${f.finding}`)
  }
  const alpn = findings.find((x) => x.id === 'ALPN')
  if (alpn) log(`  ALPN    ${alpn.finding}`)

  // findings by severity
  const bySeverity = {}
  for (const f of findings) (bySeverity[f.severity] ??= []).push(f)
  log('')
  log(`findings by severity: ${Object.entries(bySeverity).sort((a, b) => RANK[b[0]] - RANK[a[0]]).map(([s, l]) => `${s} ${l.length}`).join(', ')}`)
  const serious = findings.filter((f) => (RANK[f.severity] ?? 0) >= RANK.MEDIUM)
  const expected = serious.filter((f) => expectedFor(f))
  const remaining = serious.filter((f) => !expectedFor(f))
  for (const f of findings.filter((f) => f.severity === 'LOW')) log(`  LOW       ${f.id}: ${f.finding}`)
  for (const f of findings.filter((f) => f.severity === 'WARN')) log(`  WARN      ${f.id}: ${f.finding}`)
  for (const f of expected) log(`  expected  ${f.severity} ${f.id}: ${f.finding} -- ${expectedFor(f).why}`)
  for (const f of remaining) log(`  FAIL      ${f.severity} ${f.id}: ${f.finding}`)
  for (const f of remaining) failures.push(`${f.severity} ${f.id}: ${f.finding}`)
  if (findings.some((f) => f.id === 'scanProblem')) failures.push('testssl.sh reported a scan problem')

  log('')
  log(`testssl.sh took ${secs(scanTime)} (exit ${result.code}); all in all ${secs(Date.now() - started)}`)
  if (failures.length) {
    log('')
    log(`testssl: FAILED (${failures.length}):`)
    for (const f of failures) log(`  - ${f}`)
    if (!process.env.HARRIER_TESTSSL_KEEP) log('  (HARRIER_TESTSSL_KEEP=1 keeps the JSON and the log)')
    process.exit(1)
  }
  log('testssl: passed (no finding MEDIUM or worse beyond the test CA ones; nothing below TLS 1.2 offered)')
  process.exit(0)
}

main().catch((e) => {
  console.error(`testssl: ${e instanceof Error ? e.stack ?? e.message : e}`)
  process.exit(2)
})
