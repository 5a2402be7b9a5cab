// harrier with WORKERS worker threads on PORT: serve({ module, workers }).
import { serve } from '../../index.mjs'

await serve({ module: new URL('./harrier-app.mjs', import.meta.url), workers: Number(process.env.WORKERS ?? 1), port: Number(process.env.PORT), host: '127.0.0.1' })
