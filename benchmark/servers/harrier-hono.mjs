// The hono scenarios' app (hono-app.mjs) on harrier: serve({ fetch: app.fetch }). Listens on
// 127.0.0.1:$PORT; App options from HARRIER_* as in harrier.mjs. Needs `npm run build`.
import { serve } from '../../index.mjs'
import { honoApp } from './hono-app.mjs'

const options = { keepAliveTimeout: 120_000, maxConnections: 100_000 }
for (const [key, raw] of Object.entries(process.env)) {
  if (!key.startsWith('HARRIER_') || raw === undefined) continue
  const name = key
    .slice('HARRIER_'.length)
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
  options[name] = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw
}
const port = Number(process.env.PORT)
const app = await serve({ ...options, fetch: honoApp().fetch, port, host: '127.0.0.1' })
console.log(`harrier serve (hono) listening on http://127.0.0.1:${app.port}/, driver ${app.driver}, io ${app.io}, options ${JSON.stringify(options)}`)
