// The echo server that scripts/autobahn.mjs runs Autobahn|Testsuite against: harrier itself,
// under whatever HARRIER_IO / HARRIER_DRIVER say. Prints {"port":N} on stdout when it listens;
// stops on SIGTERM / SIGINT (app.close()).
import { App } from '../../index.mjs'

const app = new App()
app.ws('/', {
  message(ws, message) {
    ws.send(message)
  },
  maxPayloadLength: 16 * 2 ** 20,
  perMessageDeflate: true,
})
const port = Number(process.env.PORT ?? 0)
const addr = await app.listen({ port, host: '127.0.0.1', signals: false })
console.log(JSON.stringify({ port: addr.port, io: app.io, driver: app.driver }))

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (stopping) return
    stopping = true
    await app.close()
    process.exit(0)
  })
}
