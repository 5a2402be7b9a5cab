// Opens COUNT keep-alive connections to 127.0.0.1:PORT, sends one `GET /` on each, waits
// for its answer, and then holds every connection open, idle, without sending more.
//
//   node idle-client.mjs PORT COUNT [CONCURRENCY]
//
// Prints one JSON line when all are open: {"ready":true,"open":N,"failed":N,"ms":N}.
// Then reads commands on stdin: `count` prints {"open":N}; `close` closes everything and
// exits. It exits by itself after 10 minutes, or when stdin closes. Run it with a raised
// `ulimit -n` (the suite does).

import net from 'node:net'
import { createInterface } from 'node:readline'

const port = Number(process.argv[2])
const count = Number(process.argv[3])
const concurrency = Number(process.argv[4] ?? 200)
if (!port || !Number.isInteger(count) || count < 1) {
  console.error('usage: node idle-client.mjs PORT COUNT [CONCURRENCY]')
  process.exit(2)
}

const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
const sockets = new Set()
let failed = 0
let firstError = null

/** True once `data` holds a whole response (head plus Content-Length bytes of body). */
function complete(data) {
  const end = data.indexOf('\r\n\r\n')
  if (end === -1) return false
  const match = /\r\ncontent-length:\s*(\d+)/i.exec(data.slice(0, end + 2))
  if (!match) return true // no length: the head is enough to know the server answered
  return data.length >= end + 4 + Number(match[1])
}

function openOne() {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let data = ''
    let done = false
    const finish = (ok, error) => {
      if (done) return
      done = true
      socket.removeListener('data', onData)
      if (ok) {
        sockets.add(socket)
      } else {
        failed++
        firstError ??= error?.message ?? String(error)
        socket.destroy()
      }
      resolve()
    }
    const onData = (chunk) => {
      data += chunk
      if (complete(data)) finish(true)
    }
    socket.setNoDelay(true)
    socket.setEncoding('latin1')
    socket.on('connect', () => socket.write(REQUEST))
    socket.on('data', onData)
    socket.on('error', (error) => finish(false, error))
    socket.on('close', () => {
      sockets.delete(socket)
      finish(false, new Error('closed by the server before answering'))
    })
    socket.setTimeout(20_000, () => finish(false, new Error('no answer within 20 s')))
    // Once answered, the timeout no longer matters: the connection stays open.
    socket.once('data', () => socket.setTimeout(0))
  })
}

const started = Date.now()
let next = 0
async function worker() {
  while (next < count) {
    next++
    await openOne()
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
console.log(JSON.stringify({ ready: true, open: sockets.size, failed, firstError, ms: Date.now() - started }))

function closeAll() {
  for (const socket of sockets) socket.destroy()
  process.exit(0)
}
setTimeout(closeAll, 600_000).unref()
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() === 'count') console.log(JSON.stringify({ open: sockets.size }))
  else if (line.trim() === 'close') closeAll()
})
lines.on('close', closeAll)
