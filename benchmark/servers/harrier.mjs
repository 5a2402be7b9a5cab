// The harrier server for the benchmark: one route answering plain text.
// Listens on 127.0.0.1:$PORT. Needs the build (`npm run build`).
import { App } from '../../index.mjs'

const app = new App()
app.get('/', (req, res) => res.text('Hello, World!'))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
console.log(`harrier listening on http://127.0.0.1:${process.env.PORT}/`)
