// Helpers for the TLS acceptance tests. Not a spec file.
//
// `certs` are the test certificates of this process (made by tls-certs.ts when the file is
// first imported; a spec file removes them in `test.after.always`). `useTlsApp` starts an
// App with `listen({ tls })` on 127.0.0.1 port 0. The clients are real ones: `tlsConnect`
// (node:tls), `httpsRequest` (node:https), `TlsRaw` (raw HTTP/1.1 written over a node:tls
// socket, for pipelining and for knowing which connection answered), and `run` for the CLI
// tools (curl, openssl s_client).

import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { App, type Request, type TlsOptions } from 'harrier'
import { PATIENCE_MS, type AppOptions, type ParsedResponse, type ParseResult, closeApp, parseResponses, withTimeout } from './helpers.ts'
import { type Certs, makeCerts } from './tls-certs.ts'

export const certs: Certs = makeCerts()

// ---------------------------------------------------------------------------
// The TLS API
// ---------------------------------------------------------------------------

export type TlsConfig = TlsOptions
export type TlsApp = App

/** `req.secure` (read loosely: a missing property shows as undefined, not as false). */
export function secureOf(req: Request): unknown {
  return (req as { secure?: unknown }).secure
}

/** The default test certificate as files. */
export function defaultTls(extra: Partial<TlsConfig> = {}): TlsConfig {
  return { cert: certs.localhost.cert, key: certs.localhost.key, ...extra }
}

export interface TlsStarted {
  app: TlsApp
  port: number
  base: string
}

interface TeardownContext {
  teardown(fn: () => unknown): void
}

/** Builds an App, listens with `tls` on 127.0.0.1 port 0, closes it when the test ends. */
export async function useTlsApp(t: TeardownContext, build: (app: App) => void, tlsConfig: TlsConfig = defaultTls(), options?: AppOptions): Promise<TlsStarted> {
  const app = options === undefined ? new App() : new App(options)
  build(app)
  const addr = await withTimeout(app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: tlsConfig }), PATIENCE_MS, 'app.listen({ tls }) to resolve')
  let closed = false
  t.teardown(async () => {
    if (closed) return
    closed = true
    await closeApp(app)
  })
  return { app, port: addr.port, base: `https://127.0.0.1:${addr.port}` }
}

/**
 * A port that was free a moment ago, for the tests that must know the port before listen and
 * then check that nothing listens on it. Below the kernel's ephemeral range where there is
 * one to read: every other server of the suite listens on port 0, which the kernel picks from
 * that range, so none of them can take this port meanwhile (under load another file's server
 * was given a port freed this way, and "nothing listens" found it).
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow()
  if (low !== null && low > QUIET_PORTS_FROM + 1000) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = QUIET_PORTS_FROM + Math.floor(Math.random() * (low - QUIET_PORTS_FROM))
      if ((await listenOnce(port)) !== null) return port
    }
  }
  const port = await listenOnce(0)
  if (port === null) throw new Error('no free port')
  return port
}

/* Ports under this are left alone: services and other software's fixed ports. */
const QUIET_PORTS_FROM = 20_000

function ephemeralLow(): number | null {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) ? low : null
  } catch {
    return null
  }
}

/** Listens on `port` and closes at once: the port it had, or null if it was taken. */
function listenOnce(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(null))
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as net.AddressInfo).port
      s.close(() => resolve(got))
    })
  })
}

/** Resolves with the connect error's code, or 'connected' if something accepted. */
export function connectOutcome(port: number): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' })
      s.once('connect', () => {
        s.destroy()
        resolve('connected')
      })
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
    }),
    PATIENCE_MS,
    `a connect to 127.0.0.1:${port}`,
  )
}

// ---------------------------------------------------------------------------
// node:tls
// ---------------------------------------------------------------------------

export type ConnectOptions = tls.ConnectionOptions

/**
 * Connects with node:tls (trusting the test CA, host 127.0.0.1, no SNI unless `servername`
 * is given) and resolves on 'secureConnect'; rejects with the handshake's error.
 */
export function tlsConnect(port: number, options: ConnectOptions = {}, ms = PATIENCE_MS): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: certs.caPem, ...options })
      socket.once('secureConnect', () => {
        socket.removeListener('error', reject)
        socket.on('error', () => {})
        resolve(socket)
      })
      socket.once('error', (e) => {
        socket.destroy()
        reject(e)
      })
      socket.once('close', () => reject(new Error('the connection closed before the handshake finished')))
    }),
    ms,
    `a TLS handshake with 127.0.0.1:${port}`,
  )
}

export interface HandshakeInfo {
  protocol: string | null
  alpn: string | false | null
  reused: boolean
  fingerprint256: string
  subject: string
  subjectaltname: string | undefined
  authorized: boolean
}

/** A handshake, what it agreed on and the certificate served; the socket is closed after. */
export async function handshake(port: number, options: ConnectOptions = {}): Promise<HandshakeInfo> {
  const s = await tlsConnect(port, options)
  try {
    return describe(s)
  } finally {
    s.destroy()
  }
}

export function describe(s: tls.TLSSocket): HandshakeInfo {
  const peer = s.getPeerCertificate()
  return {
    protocol: s.getProtocol(),
    alpn: s.alpnProtocol ?? null,
    reused: s.isSessionReused(),
    fingerprint256: peer.fingerprint256,
    subject: `CN=${peer.subject?.CN}`,
    subjectaltname: peer.subjectaltname,
    authorized: s.authorized,
  }
}

/** The error of a handshake that must fail (rejects if it succeeds). */
export async function handshakeError(port: number, options: ConnectOptions = {}): Promise<NodeJS.ErrnoException> {
  let s: tls.TLSSocket
  try {
    s = await tlsConnect(port, options)
  } catch (e) {
    return e as NodeJS.ErrnoException
  }
  const info = describe(s)
  s.destroy()
  throw new Error(`the handshake succeeded: ${JSON.stringify(info)}`)
}

// ---------------------------------------------------------------------------
// node:https
// ---------------------------------------------------------------------------

export interface HttpsResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  socket: tls.TLSSocket
  /** the agent gave this request a socket that had served another one */
  reusedSocket: boolean
}

export interface HttpsRequestOptions {
  path?: string
  method?: string
  headers?: Record<string, string>
  body?: Buffer | string
  agent?: https.Agent | false
  servername?: string
  ca?: string | Buffer
  ms?: number
}

/** One https request to 127.0.0.1:port (trusting the test CA); the whole body is read. */
export function httpsRequest(port: number, o: HttpsRequestOptions = {}): Promise<HttpsResult> {
  return withTimeout(
    new Promise<HttpsResult>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: o.path ?? '/',
          method: o.method ?? 'GET',
          headers: o.headers,
          ca: o.ca ?? certs.caPem,
          agent: o.agent ?? false,
          servername: o.servername,
        },
        (res) => {
          // taken now: a keep-alive agent takes the socket back once the response ends
          const socket = res.socket as tls.TLSSocket
          const chunks: Buffer[] = []
          res.on('data', (d: Buffer) => chunks.push(d))
          res.on('error', reject)
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
              socket,
              reusedSocket: req.reusedSocket,
            }),
          )
        },
      )
      req.on('error', reject)
      req.end(o.body)
    }),
    o.ms ?? PATIENCE_MS,
    `https ${o.method ?? 'GET'} ${o.path ?? '/'} on 127.0.0.1:${port}`,
  )
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 over a TLS socket
// ---------------------------------------------------------------------------

/** Raw HTTP/1.1 over node:tls, with the waiting helpers of RawClient. */
export class TlsRaw {
  readonly socket: tls.TLSSocket
  private chunks: Buffer[] = []
  private cursor = 0
  private waiters = new Set<() => void>()
  ended = false
  closed = false
  error: Error | undefined

  constructor(socket: tls.TLSSocket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d)
      this.notify()
    })
    socket.on('end', () => {
      this.ended = true
      this.notify()
    })
    socket.on('close', () => {
      this.closed = true
      this.notify()
    })
    socket.on('error', (e) => {
      this.error = e
      this.notify()
    })
  }

  static async connect(port: number, options: ConnectOptions = {}): Promise<TlsRaw> {
    return new TlsRaw(await tlsConnect(port, options))
  }

  private notify() {
    for (const w of [...this.waiters]) w()
  }

  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0] ?? Buffer.alloc(0)
  }

  get unread(): Buffer {
    return this.received.subarray(this.cursor)
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())))
  }

  waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let ok: boolean
        try {
          ok = pred()
        } catch (e) {
          done()
          return reject(e)
        }
        if (ok) {
          done()
          resolve()
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${what}; ended=${this.ended} closed=${this.closed} error=${this.error?.message ?? 'none'};` +
              ` received: ${JSON.stringify(this.received.subarray(0, 600).toString('latin1'))}`,
          ),
        )
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  async readResponses(n: number, methods?: string[], ms = PATIENCE_MS): Promise<ParsedResponse[]> {
    let result: ParseResult | undefined
    await this.waitFor(
      () => {
        result = parseResponses(this.unread, { methods, ended: this.ended, max: n })
        if (result.responses.length >= n) return true
        if (this.ended || this.closed) throw new Error(`closed after ${result.responses.length} of ${n} responses: ${JSON.stringify(this.received.subarray(0, 600).toString('latin1'))}`)
        return false
      },
      ms,
      `${n} response(s)`,
    )
    this.cursor += result!.consumed
    return result!.responses
  }

  async readResponse(ms = PATIENCE_MS): Promise<ParsedResponse> {
    return (await this.readResponses(1, undefined, ms))[0]
  }

  waitForClose(ms = PATIENCE_MS): Promise<void> {
    return this.waitFor(() => this.closed, ms, 'the connection to close')
  }

  destroy() {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------------------
// CLI tools
// ---------------------------------------------------------------------------

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** stdout and stderr, for assertions that do not care which */
  all: string
}

/**
 * Runs a command with `input` on its stdin (then closed); rejects if it cannot be started
 * (a missing tool is a failure that says so) or runs past `ms`.
 */
export function run(command: string, args: string[], input = '', ms = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('latin1').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('latin1').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} ran past ${ms} ms; stdout: ${stdout.slice(-2000)} stderr: ${stderr.slice(-2000)}`))
    }, ms)
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(e.code === 'ENOENT' ? new Error(`${command} is not installed (apt-get install ${command === 'openssl' ? 'openssl' : command})`) : e)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, all: `${stdout}\n${stderr}` })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

/** A GET that asks the server to close afterwards, for clients that read until the end. */
export const GET_CLOSE = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

/**
 * What s_client printed when `GET_CLOSE` was answered by the hello routes. The success
 * cases look for it rather than at s_client's exit code: that code is also 1 when the
 * server closes without a close_notify, which the close_notify tests check on their own.
 */
export const ANSWERED = /HTTP\/1\.1 200 OK[\s\S]*hello over https/

/**
 * `openssl s_client` to 127.0.0.1:port trusting the test CA; `input` is written once the
 * connection is up and, with -ign_eof, s_client waits for the server to close.
 */
export function sClient(port: number, args: string[], input = ''): Promise<RunResult> {
  const base = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca]
  return run('openssl', [...base, ...(input ? ['-ign_eof'] : []), ...args], input)
}

/** The TLS version and cipher line of s_client's summary: 'New, TLSv1.3, Cipher is …' or 'Reused, …'. */
export function sessionLine(out: string): string | undefined {
  return /^(New|Reused), .*$/m.exec(out)?.[0]
}
