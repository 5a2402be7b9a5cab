// The servers under test: how to find their runtime, start them pinned to a CPU, check
// that they answer, and stop them.

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'

import { h2request } from './h2.mjs'
import { childPids, executable } from './proc.mjs'
import { paths } from './paths.mjs'
import { HONO_SERVERS } from './hono.mjs'
import { tlsCert, tlsEnv } from './tls.mjs'
import { findCommand } from './tools.mjs'

/**
 * Every server the suite knows, in the order tables list them. `routes`: it has the
 * suite's routes (GET /, /json, /users/:id, POST /echo); `hello`: it answers GET / with
 * "Hello, World!" (the readiness check); `static`: it serves the static scenarios' files
 * under /static/; `ws`: what it has of the WebSocket routes (/ws/echo, /ws/broadcast:
 * `echo`, `broadcast`) and whether it does permessage-deflate (`deflate`); `wsOnly`: it
 * runs the WebSocket scenarios and no other; `tls`: its file (or config) serves the same
 * over TLS when the suite passes a certificate (BENCH_TLS_CERT, BENCH_TLS_KEY); `tlsHello`:
 * over TLS it answers GET / with "Hello, World!" though it has no routes (nginx's TLS
 * server block). `h2`: it speaks HTTP/2 (h2c by prior knowledge in cleartext, h2 by ALPN over
 * TLS) with GET /, /json and (where `static`) the files; `h2Only`: it runs the HTTP/2
 * scenarios and no other; `noH2`: why a server with no HTTP/2 is left out of them. See
 * `applies` in scenarios.mjs for who runs where.
 */
const WS_ALL = ['echo', 'broadcast', 'deflate']
export const SERVERS = {
  // HTTP/2 on the same port as HTTP/1.1, with no option: the preface (h2c) or ALPN (h2) decides.
  harrier: { label: 'harrier', runtime: 'node', script: 'harrier.mjs', routes: true, hello: true, static: true, ws: WS_ALL, tls: true, h2: true },
  // node:https instead of node:http when the suite passes a certificate.
  node: { label: 'node:http', runtime: 'node', script: 'node-http.mjs', routes: true, hello: true, static: true, ws: [], tls: true, noH2: 'node:http has no HTTP/2 (node-http2 is node:http2)' },
  fastify: { label: 'fastify', runtime: 'node', script: 'fastify.mjs', routes: true, hello: true, static: false, ws: [], tls: true },
  // Deno's WebSocket server does not negotiate permessage-deflate.
  // Deno.serve speaks h2c by prior knowledge in cleartext and h2 by ALPN over TLS.
  deno: { label: 'deno', runtime: 'deno', script: 'deno.mjs', routes: true, hello: true, static: true, ws: ['echo', 'broadcast'], tls: true, h2: true },
  bun: { label: 'bun', runtime: 'bun', script: 'bun.mjs', routes: true, hello: true, static: true, ws: WS_ALL, tls: true, noH2: "Bun.serve has no HTTP/2 (bun-http2 is Bun's node:http2)" },
  // node:http2 (createServer for h2c, createSecureServer for h2), and the same file under Bun.
  'node-http2': { label: 'node:http2', runtime: 'node', script: 'node-http2.mjs', routes: false, hello: true, static: true, ws: [], tls: true, h2: true, h2Only: true },
  'bun-http2': { label: 'bun node:http2', runtime: 'bun', script: 'node-http2.mjs', routes: false, hello: true, static: true, ws: [], tls: true, h2: true, h2Only: true },
  // node:http with the `ws` package: the WebSocket routes (and GET /) only.
  'node-ws': { label: 'node-ws', runtime: 'node', script: 'node-ws.mjs', routes: false, hello: true, static: false, ws: WS_ALL, wsOnly: true },
  // Answers every request head with the same fixed "Hello, World!", parsing nothing.
  floor: { label: 'floor', runtime: 'floor', script: null, routes: false, hello: true, static: false, ws: [] },
  // Debian's nginx, one process (master_process off), from a config written per run.
  // Over TLS (the tls scenarios), its server block also answers GET / with the hello.
  // Its HTTP/2 config (the h2 scenarios) answers GET / and GET /json with fixed bodies.
  nginx: { label: 'nginx', runtime: 'nginx', script: null, routes: false, hello: false, static: true, ws: [], tls: true, tlsHello: true, h2: true },
}

const ALIASES = { 'node:http2': 'node-http2', http2: 'node-http2', 'bun:http2': 'bun-http2', 'node:http': 'node', 'node-http': 'node', http: 'node', 'deno.serve': 'deno', 'bun.serve': 'bun', 'node+ws': 'node-ws', ws: 'node-ws' }
// The hono group's servers (suite/hono.mjs).
Object.assign(SERVERS, HONO_SERVERS)

/**
 * Reads one `--server` entry: a name, optionally followed by `:VAR=value` settings that go
 * into that server's environment (`harrier:HARRIER_IO_THREADS=1`), so that variants of one
 * server can run side by side. Its id is the whole spec; its label shows the settings.
 */
export function parseServerSpec(spec) {
  if (ALIASES[spec.toLowerCase()]) spec = ALIASES[spec.toLowerCase()]
  const [rawName, ...settings] = spec.split(':').map((s) => s.trim())
  const lower = rawName.toLowerCase()
  const name = ALIASES[lower] ?? lower
  if (!SERVERS[name]) return null
  const env = {}
  for (const setting of settings) {
    const eq = setting.indexOf('=')
    if (eq <= 0) throw new Error(`server setting "${setting}" in "${spec}" is not VAR=value`)
    env[setting.slice(0, eq)] = setting.slice(eq + 1)
  }
  const suffix = settings.length ? ` (${settings.join(' ')})` : ''
  return { ...SERVERS[name], id: settings.length ? `${name}:${settings.join(':')}` : name, name, label: SERVERS[name].label + suffix, env }
}

function isElf(file) {
  try {
    const fd = openSync(file, 'r')
    const head = Buffer.alloc(4)
    readSync(fd, head, 0, 4, 0)
    closeSync(fd)
    return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))
  } catch {
    return false
  }
}

// The npm packages `deno` and `bun` put their native binary in place at install time
// (their postinstall); before that, or if it did not run, the binary sits in the
// platform package. Either way the server must be the binary itself, never the Node
// wrapper script of the package's `bin`, or the pid measured would not be the server.
function nativeBinary(candidates, what) {
  for (const file of candidates) {
    if (existsSync(file) && isElf(file)) return realpathSync(file)
  }
  throw new Error(`${what}: no native binary found (looked at ${candidates.join(', ')}); run \`npm install\``)
}

const arch = process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'aarch64' : process.arch
const denoArch = process.arch === 'x64' ? 'x64' : 'arm64'

export function denoBinary() {
  const nm = join(paths.root, 'node_modules')
  return nativeBinary(
    [join(nm, 'deno', 'deno'), join(nm, '@deno', `linux-${denoArch}-glibc`, 'deno'), join(nm, '@deno', `linux-${denoArch}`, 'deno')],
    'deno (npm package `deno`)',
  )
}

export function bunBinary() {
  const nm = join(paths.root, 'node_modules')
  return nativeBinary(
    [
      join(nm, 'bun', 'bin', 'bun.exe'),
      join(nm, '@oven', `bun-linux-${arch}`, 'bin', 'bun'),
      join(nm, '@oven', `bun-linux-${arch}-baseline`, 'bin', 'bun'),
      join(nm, '@oven', `bun-linux-${arch}-musl`, 'bin', 'bun'),
    ],
    'bun (npm package `bun`)',
  )
}

let floorDir = null
let floorBinary = null

/** Compiles ../shared/bench/floor.c with cc into a temporary directory, once per suite run. */
export function buildFloor() {
  if (floorBinary) return floorBinary
  if (!existsSync(paths.floorSource)) throw new Error(`floor: ${paths.floorSource} not found (the shared/ folder beside the repo)`)
  floorDir = mkdtempSync(join(os.tmpdir(), 'harrier-bench-floor-'))
  const out = join(floorDir, 'floor')
  try {
    execFileSync('cc', ['-O2', '-o', out, paths.floorSource], { stdio: 'pipe' })
  } catch (error) {
    throw new Error(`floor: cc -O2 -o ${out} ${paths.floorSource} failed: ${error.stderr ?? error.message}`)
  }
  floorBinary = out
  return out
}

export function cleanupFloor() {
  if (floorDir) rmSync(floorDir, { recursive: true, force: true })
  floorDir = null
  floorBinary = null
}

// ---------------------------------------------------------------- nginx

/** The nginx binary (Debian puts it in /usr/sbin, which a user's PATH may lack). */
export function nginxBinary() {
  const file = findCommand('nginx')
  if (file) return realpathSync(file)
  throw new Error('nginx is not installed: apt-get install nginx-light (or nginx)')
}

let nginxConfigure = null
/** `nginx -V`: its version and configure arguments (printed on stderr). */
function nginxConfigureArgs() {
  if (nginxConfigure === null) {
    const result = spawnSync(nginxBinary(), ['-V'], { encoding: 'utf8' })
    nginxConfigure = `${result.stderr ?? ''}${result.stdout ?? ''}`
  }
  return nginxConfigure
}

/**
 * nginx's configuration for one run: one process in the foreground (so that the pid the
 * suite starts is the one that serves), every path in `dir`, the static files under
 * /static/. Temp-path directives only for the modules this nginx was built with
 * (`configure`: the output of `nginx -V`). `tls` (`{ cert, key }`, paths): the server
 * listens with TLS (1.2 and 1.3, the default ciphers, a shared session cache and session
 * tickets, so that clients can resume) and answers GET / with the hello, as the other
 * servers do, rather than the plaintext config's 204. `h2`: the server speaks HTTP/2 (h2c
 * by prior knowledge in cleartext, h2 by ALPN with `tls`), answers GET / with the hello and
 * GET /json with the suite's JSON (fixed bodies), and lets a connection carry any number of
 * requests (one h2load connection carries all of h2-streams-100's).
 */
export function nginxConfig({ dir, port, staticDir, connections = 64, tls = null, h2 = false, configure = nginxConfigureArgs() }) {
  const temp = [
    ['client_body_temp_path', 'client_body', null],
    ['proxy_temp_path', 'proxy', 'http_proxy'],
    ['fastcgi_temp_path', 'fastcgi', 'http_fastcgi'],
    ['uwsgi_temp_path', 'uwsgi', 'http_uwsgi'],
    ['scgi_temp_path', 'scgi', 'http_scgi'],
  ]
    .filter(([, , module]) => !module || !configure.includes(`--without-${module}_module`))
    .map(([directive, sub]) => `    ${directive} ${join(dir, sub)};`)
  const root = staticDir ?? dir
  const head = nginxHead(dir, connections, temp)
  if (h2) return nginxH2Server({ head, port, root, tls, configure })
  return `${head}
    server {
${
  tls
    ? `        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${tls.cert};
        ssl_certificate_key ${tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        root ${root};
        # The hello, as every other server answers it (and the suite's readiness check).
        location = / {
            default_type text/plain;
            return 200 "Hello, World!";
        }`
    : `        listen 127.0.0.1:${port};
        root ${root};
        # The suite's readiness check (GET /), so that it leaves nothing in the error log.
        location = / {
            return 204;
        }`
}
        location /static/ {
            alias ${root}/;
        }
    }
}
`
}

// The part of the config before the server block, as nginxConfig writes it (one process, paths in `dir`).
function nginxHead(dir, connections, temp) {
  return `# Written by benchmark/suite/servers.mjs for one run.
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')};

events {
    worker_connections ${Math.max(1024, connections * 2 + 16)};
}

http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 120s;
${temp.join('\n')}
`
}

/** nginx's version from `nginx -V` (`[1, 22, 1]`), or null. */
export function nginxVersion(configure) {
  const match = /nginx version: nginx\/(\d+)\.(\d+)\.(\d+)/.exec(configure)
  return match ? match.slice(1).map(Number) : null
}

/**
 * nginx turns HTTP/2 on with `http2 on;` from 1.25.1, and before that (Debian 12 has 1.22.1)
 * with the `http2` parameter of `listen`. Either way a cleartext listen takes h2c by prior
 * knowledge and a TLS one offers h2 by ALPN.
 */
export function nginxHasHttp2Directive(configure) {
  const v = nginxVersion(configure)
  return v !== null && (v[0] > 1 || (v[0] === 1 && (v[1] > 25 || (v[1] === 25 && v[2] >= 1))))
}

function nginxH2Server({ head, port, root, tls, configure }) {
  const directive = nginxHasHttp2Directive(configure)
  const listen = `listen 127.0.0.1:${port}${tls ? ' ssl' : ''}${directive ? '' : ' http2'};`
  return `${head}
    server {
        ${listen}${directive ? '\n        http2 on;' : ''}
${
  tls
    ? `        ssl_certificate ${tls.cert};
        ssl_certificate_key ${tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
`
    : ''
}        # HTTP/2 counts every stream as a request of the connection's keepalive_requests.
        keepalive_requests 1000000000;
        root ${root};
        location = / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
        location = /json {
            default_type application/json;
            return 200 '{"message":"Hello, World!"}';
        }
        location /static/ {
            alias ${root}/;
        }
    }
}
`
}

/** The command line that runs a server, with the executable the server process will have. */
export function command(server, { port, staticDir, connections, tls, h2 } = {}) {
  switch (server.runtime) {
    case 'nginx': {
      const dir = mkdtempSync(join(os.tmpdir(), 'harrier-bench-nginx-'))
      liveDirs.add(dir)
      const conf = join(dir, 'nginx.conf')
      writeFileSync(conf, nginxConfig({ dir, port, staticDir, connections, tls: tls ? tlsCert() : null, h2 }))
      return {
        exe: nginxBinary(),
        args: ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')],
        cleanup: () => {
          rmSync(dir, { recursive: true, force: true })
          liveDirs.delete(dir)
        },
        errorLog: join(dir, 'error.log'),
      }
    }
    case 'node':
      return { exe: process.execPath, args: [join(paths.servers, server.script)] }
    case 'deno': {
      const exe = denoBinary()
      // --allow-read for the certificate and key (the TLS scenarios) and the static files.
      return { exe, args: ['run', '--allow-net', '--allow-env', ...(tls || staticDir ? ['--allow-read'] : []), '--no-prompt', join(paths.servers, server.script)] }
    }
    case 'bun':
      return { exe: bunBinary(), args: [join(paths.servers, server.script)] }
    case 'floor':
      return { exe: buildFloor(), args: [] }
    default:
      throw new Error(`unknown runtime ${server.runtime}`)
  }
}

/** Version of each runtime, for the record. */
export function runtimeVersion(runtime) {
  try {
    switch (runtime) {
      case 'node':
        return process.version
      case 'deno':
        return execFileSync(denoBinary(), ['--version'], { encoding: 'utf8' }).split('\n')[0].trim()
      case 'bun':
        return execFileSync(bunBinary(), ['--version'], { encoding: 'utf8' }).trim()
      case 'floor':
        return execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0].trim()
      case 'nginx':
        return (/nginx version: (\S+)/.exec(nginxConfigureArgs())?.[1] ?? 'unknown').replace(/^nginx\//, '')
    }
  } catch (error) {
    return `unavailable: ${error.message.split('\n')[0]}`
  }
  return null
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/**
 * One HTTP exchange on a fresh keep-alive connection (as the load generators send them),
 * closed afterwards; the body is returned as a Buffer. `tls`: over TLS, the server's
 * certificate checked against the run's (its subjectAltName has 127.0.0.1); a server that
 * answers in plaintext on the TLS port fails at once, saying so.
 */
export function request(port, { method = 'GET', path = '/', headers = {}, body = null, timeout = 2000, tls = false } = {}) {
  const agent = tls ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: tlsCert().certPem }) : new http.Agent({ keepAlive: true, maxSockets: 1 })
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request({ host: '127.0.0.1', port, method, path, headers, agent, timeout }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeout} ms`)))
    req.on('error', (error) => reject(tls && isPlaintextAnswer(error) ? new PlaintextError(port, error) : error))
    req.end(body ?? undefined)
  }).finally(() => agent.destroy())
}

/** OpenSSL's errors when the bytes that came back are not TLS (an HTTP answer, say). */
export function isPlaintextAnswer(error) {
  return error?.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || error?.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(error?.message ?? '')
}

export class PlaintextError extends Error {
  constructor(port, cause) {
    super(`the server on port ${port} answered a TLS ClientHello with something that is not TLS (${cause.code ?? cause.message}): it serves plaintext HTTP there, so its TLS was not turned on (a build without TLS ignores the option)`)
    this.plaintext = true
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Children still running (servers, idle clients), and the temporary directories of the
// nginx servers among them, so that an interrupted suite leaves none behind.
const live = new Set()
const liveDirs = new Set()
export function track(child) {
  live.add(child)
  child.on('exit', () => live.delete(child))
  return child
}
export function killAll() {
  for (const child of live) child.kill('SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
  liveDirs.clear()
}

/** `ulimit -n` as high as the hard limit allows (root may raise it), then exec the rest. */
export const RAISE_NOFILE = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"'

/**
 * Starts a server pinned to `cpus` (a taskset list) and waits until `GET /` answers
 * "Hello, World!" (nginx, which has no such route: 204).
 * `sh` raises the open-file limit and execs taskset, which execs the server: the child's
 * pid is the server process itself, which is checked against /proc/<pid>/exe.
 * `context.staticDir`: the static scenarios' directory, served under /static/ (given to
 * the Node servers as BENCH_STATIC_DIR, written into nginx's config). `context.env`: more
 * environment for the server (the WebSocket scenarios' BENCH_WS, BENCH_WS_DEFLATE).
 * `context.tls`: the TLS scenarios: the run's certificate and key passed as BENCH_TLS_CERT
 * and BENCH_TLS_KEY (written into nginx's config), and every check made over TLS.
 * `context.h2`: the HTTP/2 scenarios: the checks are made over HTTP/2 (h2c, or h2 by ALPN),
 * which the HTTP/2-only servers need, and nginx gets its HTTP/2 config (which has the hello).
 */
export async function startServer(server, cpus, context = {}) {
  const port = await freePort()
  const { exe, args, cleanup, errorLog } = command(server, { port, ...context })
  const extraEnv = { ...(context.staticDir ? { BENCH_STATIC_DIR: context.staticDir } : {}), ...(context.tls ? tlsEnv() : {}), ...context.env }
  const child = spawn('sh', ['-c', RAISE_NOFILE, 'sh', 'taskset', '-c', cpus, exe, ...args], {
    cwd: paths.root,
    env: { ...process.env, ...server.env, ...extraEnv, PORT: String(port), NODE_ENV: 'production', DENO_NO_UPDATE_CHECK: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  track(child)
  let output = ''
  const keep = (chunk) => {
    output += chunk
    if (output.length > 20_000) output = output.slice(-10_000)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let exited = null
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal }
      resolve(exited)
    })
  })
  const handle = {
    server,
    port,
    pid: child.pid,
    child,
    exit,
    cleanup,
    // nginx writes its errors to a file, not to its output.
    output: () => {
      let log = ''
      try {
        if (errorLog && existsSync(errorLog)) log = readFileSync(errorLog, 'utf8').slice(-4000)
      } catch {}
      return output + log
    },
    exited: () => exited,
  }

  const deadline = Date.now() + 30_000
  let lastError
  while (Date.now() < deadline) {
    if (exited) {
      // The error a script threw, if any, on the first line (progress lines show only that).
      const thrown = handle.output().split('\n').map((line) => line.trim()).find((line) => /^(\w*Error|Uncaught)\b/.test(line))
      const message = `${server.label} exited before answering (code ${exited.code}, signal ${exited.signal})${thrown ? `: ${thrown}` : ''}:\n${handle.output()}`
      cleanup?.()
      throw new Error(message)
    }
    let res
    try {
      res = context.h2
        ? await h2request(port, { timeout: 1000, tls: Boolean(context.tls), ca: context.tls ? tlsCert().certPem : null })
        : await request(port, { timeout: 1000, tls: Boolean(context.tls) })
    } catch (error) {
      if (error.plaintext) {
        await stopServer(handle)
        throw new Error(`${server.label}: ${error.message}`)
      }
      lastError = error
      await sleep(50)
      continue
    }
    // nginx has no hello: its config answers GET / with 204 for this check (over TLS or HTTP/2, the hello).
    const hello = server.hello || (context.tls && server.tlsHello) || context.h2
    if (hello ? res.status !== 200 || res.body.toString() !== 'Hello, World!' : res.status !== 204) {
      await stopServer(handle)
      throw new Error(`${server.label}: GET / answered ${res.status} ${JSON.stringify(res.body.toString().slice(0, 200))}`)
    }
    const exePath = executable(child.pid)
    if (exePath !== realpathSync(exe)) {
      await stopServer(handle)
      throw new Error(`${server.label}: pid ${child.pid} runs ${exePath}, not ${exe}: the measured process would not be the server`)
    }
    const children = childPids(child.pid)
    handle.warnings = children.length ? [`${server.label} has child processes (${children.join(', ')}); their CPU is not counted`] : []
    return handle
  }
  const message = `${server.label} did not answer on port ${port} within 30 s (${lastError?.message}):\n${handle.output()}`
  await stopServer(handle)
  throw new Error(message)
}

export async function stopServer({ child, exit, cleanup }) {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exit
    clearTimeout(timer)
  }
  cleanup?.()
}

/** Whether harrier's build is in place (dist/ and the native addon). */
export function harrierBuilt() {
  const hasDist = existsSync(join(paths.root, 'dist', 'index.js'))
  const hasAddon = readdirSync(paths.root).some((name) => /^harrier\..+\.node$/.test(name))
  return hasDist && hasAddon
}
