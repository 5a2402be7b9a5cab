// The hono scenarios' app (hono-app.mjs) on Bun.serve: bun benchmark/servers/bun-hono.mjs
// (listens on 127.0.0.1:$PORT).
import { honoApp } from './hono-app.mjs'

const port = Number(process.env.PORT)
Bun.serve({ port, hostname: '127.0.0.1', idleTimeout: 120, fetch: honoApp().fetch })
console.log(`Bun.serve (hono) listening on http://127.0.0.1:${port}/`)
