// harrier for the operations overhead benchmark (benchmark/ops.mjs): GET / with the access
// log to BENCH_ACCESS_LOG (JSON lines) when set, and the metrics route at /metrics.
import { App } from '../../index.mjs'

const options = { keepAliveTimeout: 120_000 }
if (process.env.BENCH_ACCESS_LOG) options.accessLog = { format: 'json', path: process.env.BENCH_ACCESS_LOG }
const app = new App(options)
app.get('/', (req, res) => res.text('Hello, World!'))
app.metricsRoute('/metrics')
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
