// A reference echo server written with the `ws` package, which passes Autobahn|Testsuite:
// to check the harness itself (`node scripts/autobahn.mjs --url ws://127.0.0.1:PORT`)
// independently of harrier. Prints {"port":N}; PORT=N picks the port.
import { WebSocketServer } from 'ws'

const wss = new WebSocketServer({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1', perMessageDeflate: true, maxPayload: 16 * 2 ** 20, maxFragments: 0, maxBufferedChunks: 0 })
// (maxFragments / maxBufferedChunks: 0 lifts ws's caps on the number of fragments of one
// message, which cases 9.3.1 and 9.4.1 (4 MiB in 64-byte and 256-byte fragments) exceed)
wss.on('connection', (ws) => {
  // a protocol error is reported here before ws closes the connection (1002, 1007, ...)
  ws.on('error', () => {})
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })))
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0))
