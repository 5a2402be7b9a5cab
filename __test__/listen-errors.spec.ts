// listen() failures carry Node's codes and fields, as net.Server gives them, so that code
// written for Node (err.code === 'EADDRINUSE') works unchanged; nothing is left listening.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'ava'
import { App } from 'harrier'
import { closeApp, startApp, withTimeout } from './helpers.ts'

const here = typeof __dirname === 'string' ? __dirname : path.join(process.cwd(), '__test__')
const root = path.resolve(here, '..')

interface ListenFailure extends Error {
  code?: string
  errno?: number
  syscall?: string
  address?: string
  port?: number
  hostname?: string
}

async function listenFailure(app: App, port: number, host: string): Promise<ListenFailure> {
  const e = await withTimeout(
    app.listen({ port, host, signals: false }).then(
      () => null,
      (e: ListenFailure) => e,
    ),
    4000,
    'listen() to settle',
  )
  if (e === null) {
    await app.close()
    throw new Error(`listen(${host}:${port}) succeeded; it should have failed`)
  }
  return e
}

function nodeServer(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

test('a port held by another App: EADDRINUSE in Node’s shape, and the App can listen elsewhere', async (t) => {
  const { app: holder, port } = await startApp((app) => app.get('/', (req, res) => res.text('first')))
  try {
    const app = new App({ ioThreads: 2 })
    app.get('/', (req, res) => res.text('second'))
    const e = await listenFailure(app, port, '127.0.0.1')
    t.true(e instanceof Error)
    t.is(e.code, 'EADDRINUSE')
    t.is(e.errno, -98)
    t.is(e.syscall, 'listen')
    t.is(e.address, '127.0.0.1')
    t.is(e.port, port)
    t.is(e.message, `listen EADDRINUSE: address already in use 127.0.0.1:${port}`)
    // The first server still answers alone: the port was not shared with the second.
    const r = await fetch(`http://127.0.0.1:${port}/`)
    t.is(await r.text(), 'first')
    // Nothing of the failed attempt is left: the same App listens on another port.
    const addr = await app.listen({ port: 0, host: '127.0.0.1', signals: false })
    t.is(await (await fetch(`http://127.0.0.1:${addr.port}/`)).text(), 'second')
    await closeApp(app)
  } finally {
    await closeApp(holder)
  }
})

test('a port held by a node:net server: EADDRINUSE, the same error Node itself gives', async (t) => {
  const server = await nodeServer()
  const port = (server.address() as net.AddressInfo).port
  try {
    const e = await listenFailure(new App(), port, '127.0.0.1')
    const nodes = await new Promise<ListenFailure>((resolve) => {
      const other = net.createServer()
      other.once('error', resolve)
      other.listen(port, '127.0.0.1')
    })
    t.is(e.code, nodes.code)
    t.is(e.errno, nodes.errno)
    t.is(e.syscall, nodes.syscall)
    t.is(e.address, nodes.address)
    t.is(e.port, nodes.port)
    t.is(e.message, nodes.message)
  } finally {
    server.close()
  }
})

test('an address this machine does not have: EADDRNOTAVAIL', async (t) => {
  const e = await listenFailure(new App(), 3000, '192.0.2.1') // TEST-NET-1: never local
  t.is(e.code, 'EADDRNOTAVAIL')
  t.is(e.errno, -99)
  t.is(e.syscall, 'listen')
  t.is(e.address, '192.0.2.1')
  t.is(e.port, 3000)
  t.is(e.message, 'listen EADDRNOTAVAIL: address not available 192.0.2.1:3000')
})

test('a host name that resolves to nothing: ENOTFOUND from getaddrinfo', async (t) => {
  const e = await listenFailure(new App(), 3000, 'no-such-host.invalid')
  t.is(e.code, 'ENOTFOUND')
  t.is(e.syscall, 'getaddrinfo')
  t.is(e.hostname, 'no-such-host.invalid')
  t.is(e.message, 'getaddrinfo ENOTFOUND no-such-host.invalid')
})

test('a privileged port without the privilege: EACCES', async (t) => {
  // Ports under ip_unprivileged_port_start need privilege (CAP_NET_BIND_SERVICE); as root
  // the attempt runs in a child that has given that capability up (setpriv, util-linux).
  const start = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'))
  t.true(start > 0, 'this machine lets anyone listen on any port (ip_unprivileged_port_start = 0)')
  const port = start - 1
  const script = `
    const { App } = require(${JSON.stringify(root)})
    new App().listen({ port: ${port}, host: '127.0.0.1', signals: false }).then(
      () => { console.log('null'); process.exit(0) },
      (e) => { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port, message: e.message })) })`
  const unprivileged = process.getuid?.() === 0 ? ['setpriv', '--bounding-set', '-net_bind_service', '--inh-caps', '-net_bind_service', process.execPath] : [process.execPath]
  const child = spawn(unprivileged[0], [...unprivileged.slice(1), '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  const code = await withTimeout(new Promise<number | null>((resolve) => child.on('close', resolve)), 10000, 'the child to exit')
  t.is(code, 0)
  t.deepEqual(JSON.parse(out), {
    code: 'EACCES',
    errno: -13,
    syscall: 'listen',
    address: '127.0.0.1',
    port,
    message: `listen EACCES: permission denied 127.0.0.1:${port}`,
  })
})
