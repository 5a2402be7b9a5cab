// What an idle WebSocket keeps on the JS heap: a crowd of sockets, on a route without
// parameters and from one address, measured after full collections. A file of its own, so
// that no other test shares this worker's heap; the clients run in a child process.
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import v8 from 'node:v8'
import vm from 'node:vm'
import test from 'ava'
import { PATIENCE_MS, deferred, useApp, withTimeout } from './helpers.ts'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

/* The first crowd warms the open path (its compiled code, the tables' growth) up. */
const WARM_UP = 300
const CROWD = 2000
/* The socket object, its slot in the table, and what it shares; the params object and the
 * address string each socket used to keep took it past 230 bytes. */
const MAX_BYTES_PER_SOCKET = 200

// Opens N WebSockets to /idle with hand-made handshakes, says "open" when every 101 came,
// and keeps them until its stdin ends.
const CLIENT = `
const net = require('node:net')
const [port, n] = process.argv.slice(1).map(Number)
const handshake = 'GET /idle HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n'
let open = 0
for (let i = 0; i < n; i++) {
  const s = net.connect(port, '127.0.0.1', () => s.write(handshake))
  let seen = ''
  s.on('data', (d) => {
    if (seen === null) return
    seen += d.toString('latin1')
    if (!seen.includes('\\r\\n\\r\\n')) return
    if (!seen.startsWith('HTTP/1.1 101')) { console.error('not upgraded: ' + seen.split('\\r\\n')[0]); process.exit(1) }
    seen = null
    if (++open === n) console.log('open')
  })
  s.on('error', (e) => { console.error(e.message); process.exit(1) })
}
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
`

function liveHeap(): number {
  gc()
  gc()
  return v8.getHeapStatistics().used_heap_size
}

/** A child process holding `n` open WebSockets; resolves once all are open. */
async function crowd(t: { teardown(fn: () => void): void }, port: number, n: number): Promise<void> {
  const child = spawn(process.execPath, ['-e', CLIENT, String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => child.kill())
  const open = deferred<void>()
  readline.createInterface({ input: child.stdout! }).on('line', (line) => line === 'open' && open.resolve())
  child.on('exit', (code) => open.reject(new Error(`the client exited with ${code} before its sockets were open`)))
  await withTimeout(open.promise, PATIENCE_MS, `${n} WebSockets open`)
}

test('an idle WebSocket keeps under 200 bytes of JS heap', async (t) => {
  let opened = 0
  let want = 0
  let allOpen = deferred<void>()
  const { port } = await useApp(t, (app) => {
    app.ws('/idle', {
      open() {
        if (++opened === want) allOpen.resolve()
      },
    })
  })
  want = WARM_UP
  await crowd(t, port, WARM_UP)
  await withTimeout(allOpen.promise, PATIENCE_MS, 'the warm-up sockets opened on the server')
  const before = liveHeap()
  want = WARM_UP + CROWD
  allOpen = deferred<void>()
  await crowd(t, port, CROWD)
  await withTimeout(allOpen.promise, PATIENCE_MS, 'the crowd opened on the server')
  const perSocket = (liveHeap() - before) / CROWD
  t.log(`${perSocket.toFixed(0)} bytes of JS heap per idle WebSocket`)
  t.true(perSocket < MAX_BYTES_PER_SOCKET, `${perSocket.toFixed(0)} bytes per socket`)
})
