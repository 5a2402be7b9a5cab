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
// HARRIER_TESTSSL_KEEP=1 keeps the temporary directory with the JSON and the logs.
// Two scans: the default ECDSA P-256 certificate, and an RSA 2048 one.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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
  // responder in its certificates): "Neither CRL nor OCSP URI provided" (HIGH)
  { id: /^cert_revocation$/, why: 'the test CA has neither a CRL nor an OCSP responder' },
  // (the trust itself passes: the test CA is handed to testssl.sh with --add-ca, and the
  // certificates name localhost and 127.0.0.1, which is what is scanned)
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

async function startServer(leaf) {
  const index = join(root, 'index.mjs')
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('the package is not built: run `npm run build` first')
  const { App } = await import(index)
  const app = new App()
  // The headers an HTTPS site sets for itself (testssl.sh -h rates their absence; they are
  // the application's to send, not the engine's): what is judged is the engine's TLS, and
  // that the engine passes them through.
  app.get('/', (req, res) =>
    res
      .header('strict-transport-security', 'max-age=31536000; includeSubDomains')
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('content-security-policy', "default-src 'none'")
      .header('referrer-policy', 'no-referrer')
      .text(`hello over ${req.secure ? 'https' : 'http'}\n`),
  )
  const { port } = await app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: { cert: leaf.cert, key: leaf.key } })
  return { app, port }
}

// ---------------------------------------------------------------------------
// Running and judging
// ---------------------------------------------------------------------------

function runTestssl(bin, args) {
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
      resolve({ code, signal, out })
    })
  })
}

const RANK = { DEBUG: 0, INFO: 1, OK: 2, LOW: 3, MEDIUM: 4, HIGH: 5, CRITICAL: 6, WARN: 1, FATAL: 7 }

function expectedFor(f) {
  return EXPECTED.find((e) => e.id.test(f.id) && (e.finding === undefined || e.finding.test(f.finding)))
}

/** One scan of a server with `leaf`; returns the failures (and prints the summary). */
async function scan(bin, certs, name, leaf, work) {
  const jsonFile = join(work, `testssl-${name}.json`)
  const { app, port } = await startServer(leaf)
  log('')
  log(`== ${name}: harrier serving TLS on 127.0.0.1:${port} (HARRIER_IO=${process.env.HARRIER_IO ?? 'default'}, HARRIER_DRIVER=${process.env.HARRIER_DRIVER ?? 'default'})`)
  // -p protocols, -s cipher categories, -f forward secrecy, -P server preferences,
  // -S server defaults (certificate, tickets, resumption), -h HTTP headers, -U every
  // vulnerability check (renegotiation, CRIME, BREACH, ROBOT, ...). Not -e (every cipher one
  // by one): slow, and -s and -f already tell what is offered.
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
  log(`running: ${bin} ${args.join(' ')}`)
  const scanStart = Date.now()
  let result
  try {
    result = await runTestssl(bin, args)
  } finally {
    await app.close()
  }
  writeFileSync(join(work, `testssl-${name}.log`), result.out)
  const scanTime = Date.now() - scanStart
  const failures = []
  if (!existsSync(jsonFile)) {
    log(result.out.slice(-5000))
    return [`${name}: testssl.sh wrote no JSON (exit ${result.code}${result.signal ? `, ${result.signal}` : ''})`]
  }
  const findings = JSON.parse(readFileSync(jsonFile, 'utf8'))

  log('protocols:')
  for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3']) {
    const f = findings.find((x) => x.id === id)
    log(`  ${id.padEnd(7)} ${f ? f.finding : '(no result)'}`)
    if (!f) failures.push(`no result for protocol ${id}`)
    else if (['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1'].includes(id)) {
      if (!/^not offered/i.test(f.finding)) failures.push(`${id} is offered: ${f.finding}`)
    } else if (!/^offered/i.test(f.finding)) failures.push(`${id} is not offered: ${f.finding}`)
  }
  for (const id of ['ALPN', 'PFS_ciphers', 'PFS_ECDHE_curves', 'cert_signatureAlgorithm', 'cert_keySize', 'sessionresumption_ticket', 'sessionresumption_ID']) {
    const f = findings.find((x) => x.id === id)
    if (f) log(`  ${id}: ${f.finding}`)
  }

  const bySeverity = {}
  for (const f of findings) (bySeverity[f.severity] ??= []).push(f)
  log(`findings by severity: ${Object.entries(bySeverity).sort((a, b) => RANK[b[0]] - RANK[a[0]]).map(([sev, l]) => `${sev} ${l.length}`).join(', ')}`)
  const serious = findings.filter((f) => (RANK[f.severity] ?? 0) >= RANK.MEDIUM)
  for (const f of findings.filter((f) => f.severity === 'LOW' || f.severity === 'WARN')) log(`  ${f.severity.padEnd(9)} ${f.id}: ${f.finding}`)
  for (const f of serious) {
    const e = expectedFor(f)
    if (e) log(`  expected  ${f.severity} ${f.id}: ${f.finding} -- ${e.why}`)
    else {
      log(`  FAIL      ${f.severity} ${f.id}: ${f.finding}`)
      failures.push(`${f.severity} ${f.id}: ${f.finding}`)
    }
  }
  if (findings.some((f) => f.id === 'scanProblem' || f.severity === 'FATAL')) failures.push('testssl.sh reported a scan problem')
  log(`testssl.sh took ${secs(scanTime)} (exit ${result.code})`)
  return failures.map((f) => `${name}: ${f}`)
}

async function main() {
  const bin = ensureTestssl()
  const banner = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? ''
  log(`testssl.sh: ${bin} (${banner.match(/testssl\.sh\s+(\S+)/)?.[1] ?? banner.match(/\b(3\.\d[\w.+-]*)/)?.[1] ?? 'version unknown'})`)

  const { tsImport } = await import('tsx/esm/api')
  const { makeCerts, removeCerts } = await tsImport(join(root, '__test__', 'tls-certs.ts'), import.meta.url)
  const certs = makeCerts()
  const work = mkdtempSync(join(tmpdir(), 'harrier-testssl-'))
  const failures = []
  try {
    // the default ECDSA P-256 certificate, and an RSA 2048 one (RSA-only checks: ROBOT, ...)
    failures.push(...(await scan(bin, certs, 'ecdsa', certs.localhost, work)))
    failures.push(...(await scan(bin, certs, 'rsa', certs.rsa, work)))
  } finally {
    removeCerts(certs)
    if (process.env.HARRIER_TESTSSL_KEEP) log(`kept: ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }

  log('')
  log(`all in all ${secs(Date.now() - started)}`)
  if (failures.length) {
    log(`testssl: FAILED (${failures.length}):`)
    for (const f of failures) log(`  - ${f}`)
    if (!process.env.HARRIER_TESTSSL_KEEP) log('  (HARRIER_TESTSSL_KEEP=1 keeps the JSON and the logs)')
    process.exit(1)
  }
  log('testssl: passed (no finding MEDIUM or worse beyond the test CA ones; nothing below TLS 1.2 offered)')
  process.exit(0)
}

main().catch((e) => {
  console.error(`testssl: ${e instanceof Error ? e.stack ?? e.message : e}`)
  process.exit(2)
})
