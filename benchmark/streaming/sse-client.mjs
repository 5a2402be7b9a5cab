// Opens N event streams to 127.0.0.1:PORT/sse and counts the events they receive over a
// measured window; prints { events, seconds } as JSON. Usage: node sse-client.mjs PORT N WARMUP_S SECONDS
import net from 'node:net'

const [port, n, warmup, seconds] = process.argv.slice(2).map(Number)
let events = 0
const sockets = []
let opened = 0
await new Promise((resolve, reject) => {
  const open = () => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /sse HTTP/1.1\r\nHost: x\r\n\r\n'))
    s.setNoDelay(true)
    s.on('data', (d) => {
      // Each event ends with a blank line; count them (the chunk framing adds none).
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) if (d[i + 1] === 10) events++
    })
    s.on('error', reject)
    sockets.push(s)
    if (++opened === n) resolve()
    else if (opened % 50 === 0) setImmediate(open)
    else open()
  }
  open()
})
await new Promise((r) => setTimeout(r, warmup * 1000))
console.log('measuring')
const start = events
const t0 = process.hrtime.bigint()
await new Promise((r) => setTimeout(r, seconds * 1000))
const got = events - start
const took = Number(process.hrtime.bigint() - t0) / 1e9
for (const s of sockets) s.destroy()
console.log(JSON.stringify({ events: got, seconds: took, streams: n }))
