// The server that scripts/h2spec.mjs runs h2spec against: harrier itself (cleartext, or TLS
// when H2SPEC_CERT and H2SPEC_KEY name a certificate and its key), under whatever
// HARRIER_IO / HARRIER_DRIVER say, with one route answering every path and method (after
// reading the request body, so that a body the client breaks is seen). Prints
// {"port":N,...} on stdout when it listens; stops on SIGTERM / SIGINT (app.close()).
import { App } from '../../index.mjs'

const app = new App()
app.all('/*', async (req, res) => {
  const body = await req.arrayBuffer()
  res.text(`${req.method} ${req.url} ${body.byteLength}`)
})
const port = Number(process.env.PORT ?? 0)
// H2SPEC_CERT / H2SPEC_KEY: serve TLS (h2 by ALPN) with that certificate.
const tls = process.env.H2SPEC_CERT ? { cert: process.env.H2SPEC_CERT, key: process.env.H2SPEC_KEY } : undefined
const addr = await app.listen({ port, host: '127.0.0.1', signals: false, tls })
console.log(JSON.stringify({ port: addr.port, io: app.io, driver: app.driver, tls: tls !== undefined }))

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (stopping) return
    stopping = true
    await app.close()
    process.exit(0)
  })
}
