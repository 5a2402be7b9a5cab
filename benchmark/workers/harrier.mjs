// harrier with WORKERS worker threads on PORT: serve({ module, workers }); with the argument
// `handoff`, balance: 'handoff' (one accept point handing connections to the workers in turn).
import { serve } from '../../index.mjs'

const balance = process.argv[2] === 'handoff' ? 'handoff' : undefined
await serve({ module: new URL('./harrier-app.mjs', import.meta.url), workers: Number(process.env.WORKERS ?? 1), port: Number(process.env.PORT), host: '127.0.0.1', balance })
