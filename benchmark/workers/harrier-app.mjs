// The App each harrier worker serves (benchmark/workers/harrier.mjs).
import { App } from '../../index.mjs'
import { burn } from './burn.mjs'

const app = new App()
app.get('/', (req, res) => res.text('Hello, World!'))
app.get('/burn', (req, res) => res.text(String(burn(req.url.length))))
// How the kernel spread the connections over the workers (each worker's own count).
app.get('/spread', (req, res) => res.json(app.workerMetrics()?.workers.map((w) => w.accepted) ?? []))
export default app
