// The TLS scenarios' pieces: the certificate (made with the openssl CLI into a temporary
// directory once per suite run, never committed), what each server negotiates (openssl
// s_client), whether it resumes sessions (openssl s_time -reuse), and h2load's output.

import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'

/**
 * The certificate's command line (`dir`: where cert.pem and key.pem go): a self-signed
 * ECDSA P-256 certificate for localhost and 127.0.0.1, valid two days.
 */
export function certArgs(dir) {
  return [
    'req', '-x509',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-days', '2',
    '-keyout', join(dir, 'key.pem'),
    '-out', join(dir, 'cert.pem'),
  ]
}

let made = null

/** The run's certificate, made on first use: `{ dir, cert, key, certPem }` (paths, and the PEM). */
export function tlsCert() {
  if (made) return made
  const dir = mkdtempSync(join(os.tmpdir(), 'harrier-bench-tls-'))
  try {
    execFileSync('openssl', certArgs(dir), { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`openssl ${certArgs(dir).join(' ')} failed: ${error.stderr ?? error.message}`)
  }
  made = { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), certPem: readFileSync(join(dir, 'cert.pem'), 'utf8') }
  return made
}

export function cleanupTls() {
  if (made) rmSync(made.dir, { recursive: true, force: true })
  made = null
}

/** The environment that turns a server file's TLS on (every server file reads these two). */
export function tlsEnv(cert = tlsCert()) {
  return { BENCH_TLS_CERT: cert.cert, BENCH_TLS_KEY: cert.key }
}

function runOpenssl(args, { input = '', timeoutMs = 20_000, cpus = null } = {}) {
  return new Promise((resolve, reject) => {
    const argv = cpus ? ['taskset', ['-c', cpus, 'openssl', ...args]] : ['openssl', args]
    const child = spawn(argv[0], argv[1], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.end(input)
  })
}

/**
 * `openssl s_client -brief` output: the protocol, cipher suite and key-exchange group
 * negotiated. s_client offers what wrk offers (both use libssl's defaults).
 */
export function parseSClientBrief(text) {
  const field = (name) => new RegExp(`^${name}:\\s*(.+?)\\s*$`, 'm').exec(text)?.[1] ?? null
  const group = field('(?:Server Temp Key|Negotiated TLS1\\.3 group|Peer Temp Key)')
  return {
    protocol: field('Protocol version'),
    cipher: field('Ciphersuite'),
    group: group ? group.split(',')[0].trim() : null,
    signature: field('Signature type'),
  }
}

/** What a client with libssl's defaults (wrk's) negotiates with the server on `port`. */
export async function negotiated(port) {
  const { stdout, stderr } = await runOpenssl(['s_client', '-brief', '-connect', `127.0.0.1:${port}`], { input: '' })
  const info = parseSClientBrief(`${stdout}\n${stderr}`)
  if (!info.protocol || !info.cipher) throw new Error(`openssl s_client -brief -connect 127.0.0.1:${port} negotiated nothing:\n${stderr.slice(0, 2000)}`)
  return info
}

/**
 * `openssl s_time` output: connections made, and in its progress line how many were
 * resumed (`r`) and how many were full handshakes (`*`, `t`, `3`: the version of a new one).
 */
export function parseSTime(text) {
  const count = /^(\d+) connections in ([\d.]+)s; ([\d.]+) connections\/user sec/m.exec(text)
  let reused = 0
  let full = 0
  for (const line of text.split('\n')) {
    if (!/^[r*t3]+$/.test(line.trim())) continue
    for (const c of line.trim()) c === 'r' ? reused++ : full++
  }
  return {
    connections: count ? Number(count[1]) : null,
    userSeconds: count ? Number(count[2]) : null,
    reused,
    full,
  }
}

/**
 * Whether the server on `port` resumes sessions: `openssl s_time -reuse` for `seconds`
 * (one full handshake, then every connection offers that session). `{ connections,
 * reused, full, resumes }`, resumes when at least 90 % of them were resumed.
 */
export async function resumption(port, { seconds = 1, cpus = null } = {}) {
  const { stdout, stderr } = await runOpenssl(['s_time', '-connect', `127.0.0.1:${port}`, '-reuse', '-time', String(seconds), '-www', '/'], {
    timeoutMs: (seconds + 20) * 1000,
    cpus,
  })
  const result = parseSTime(`${stdout}\n${stderr}`)
  const seen = result.reused + result.full
  if (seen === 0) throw new Error(`openssl s_time -reuse on 127.0.0.1:${port} made no connection:\n${`${stdout}${stderr}`.slice(0, 2000)}`)
  return { ...result, resumes: result.reused >= 0.9 * seen }
}

// ---------------------------------------------------------------- h2load

const UNIT_S = { us: 1e-6, ms: 1e-3, s: 1 }

/**
 * The figures of one or more h2load runs, printed one after the other: the time of each
 * (its `finished in`), requests done, succeeded, failed, errored, 2xx answers, and the
 * TLS it negotiated.
 */
export function parseH2load(text) {
  const out = { runs: 0, seconds: 0, requests: 0, succeeded: 0, failed: 0, errored: 0, timeout: 0, status2xx: 0, protocol: null, cipher: null, group: null }
  for (const m of text.matchAll(/^finished in ([\d.]+)(us|ms|s), /gm)) {
    out.runs++
    out.seconds += Number(m[1]) * UNIT_S[m[2]]
  }
  for (const m of text.matchAll(/^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/gm)) {
    out.requests += Number(m[2])
    out.succeeded += Number(m[3])
    out.failed += Number(m[4])
    out.errored += Number(m[5])
    out.timeout += Number(m[6])
  }
  for (const m of text.matchAll(/^status codes: (\d+) 2xx/gm)) out.status2xx += Number(m[1])
  out.protocol = /^TLS Protocol: (\S+)/m.exec(text)?.[1] ?? null
  out.cipher = /^Cipher: (\S+)/m.exec(text)?.[1] ?? null
  out.group = /^Server Temp Key: (\S+)/m.exec(text)?.[1] ?? null
  return out
}

/**
 * The shell loop of the full-handshake scenario: h2load runs of `batch` new clients with
 * one request each (`-c batch -n batch`: every client its own connection, its own full
 * handshake, none resumed: h2load has no session to offer a new client), one after the
 * other, until `$1` milliseconds have passed (at least one run). Pinned as a whole (taskset on the shell), so that
 * every h2load runs on the client CPU.
 */
export function h2loadLoopScript() {
  // At least one run, however short the time (a run of its own, as in the checks).
  return 'end=$(( $(date +%s%N) + $1 * 1000000 )); shift; while :; do "$@" || exit $?; [ "$(date +%s%N)" -lt "$end" ] || break; done'
}

export function h2loadArgs({ port, batch, path = '/' }) {
  return ['h2load', '--h1', '-t1', `-c${batch}`, `-n${batch}`, `https://127.0.0.1:${port}${path}`]
}

// ---------------------------------------------------------------- resumption, as wrk sees it

/** wrk's connections in the resumption check: each one's first handshake is a full one. */
export const OBSERVED_CONNECTIONS = 8

/**
 * Whether the server resumed wrk's reconnections in the check (`{ full, resumed }` seen by
 * helloObserver): at least 90 % of the handshakes after each connection's first, which has
 * no session to offer, resumed.
 */
export function resumesReconnections({ full, resumed }, connections = OBSERVED_CONNECTIONS) {
  const reconnections = full + resumed - connections
  return reconnections > 0 && Math.max(0, full - connections) <= 0.1 * reconnections
}

/**
 * Reads a server's first TLS record (the ServerHello): `'resumed'` when the server
 * accepted a pre-shared key (TLS 1.3: the ServerHello carries the pre_shared_key
 * extension, 41), `'full'` when it did not, `'tls1.2'` for a TLS 1.2 ServerHello (which
 * says so differently), null while the record is not whole yet, `'other'` for anything else.
 */
export function serverHelloKind(buffer) {
  if (buffer.length < 5) return null
  if (buffer[0] !== 0x16) return 'other'
  const length = buffer.readUInt16BE(3)
  if (buffer.length < 5 + length) return null
  const body = buffer.subarray(5, 5 + length)
  if (body[0] !== 0x02) return 'other'
  let at = 4 + 2 + 32 // handshake header, legacy_version, random
  at += 1 + body[at] // session id
  at += 2 + 1 // cipher suite, compression
  if (at + 2 > body.length) return 'other'
  const end = Math.min(body.length, at + 2 + body.readUInt16BE(at))
  at += 2
  let tls13 = false
  let psk = false
  while (at + 4 <= end) {
    const type = body.readUInt16BE(at)
    const size = body.readUInt16BE(at + 2)
    if (type === 43 && size === 2 && body.readUInt16BE(at + 4) === 0x0304) tls13 = true
    if (type === 41) psk = true
    at += 4 + size
  }
  if (!tls13) return 'tls1.2'
  return psk ? 'resumed' : 'full'
}

/**
 * A TCP relay on a port of its own in front of the server on `port`, which reads every
 * connection's ServerHello and counts full and resumed handshakes: a load generator sent
 * through it shows whether the server resumes the sessions that generator offers.
 * `{ port, counts, close() }`.
 */
export function helloObserver(port) {
  const counts = { full: 0, resumed: 0, tls12: 0, other: 0 }
  const sockets = new Set()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    let head = Buffer.alloc(0)
    let seen = false
    upstream.on('data', (chunk) => {
      if (!seen) {
        head = Buffer.concat([head, chunk])
        const kind = serverHelloKind(head)
        if (kind !== null) {
          seen = true
          counts[kind === 'tls1.2' ? 'tls12' : kind]++
        }
      }
      if (!client.write(chunk)) upstream.pause()
    })
    client.on('drain', () => upstream.resume())
    client.on('data', (chunk) => {
      if (!upstream.write(chunk)) client.pause()
    })
    upstream.on('drain', () => client.resume())
    const done = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const s of [client, upstream]) {
      s.on('end', () => (s === client ? upstream.end() : client.end()))
      s.on('close', done)
      s.on('error', done)
    }
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        counts,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          }),
      }),
    )
  })
}
