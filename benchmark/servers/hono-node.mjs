// The hono scenarios' app (hono-app.mjs) on @hono/node-server (node:http), its defaults (which
// put its own lightweight Request and Response in the global scope). Listens on 127.0.0.1:$PORT.
import { serve } from '@hono/node-server'
import { honoApp } from './hono-app.mjs'

const port = Number(process.env.PORT)
const server = serve({ fetch: honoApp().fetch, port, hostname: '127.0.0.1' }, () =>
  console.log(`@hono/node-server listening on http://127.0.0.1:${port}/`),
)
// Idle keep-alive connections stay open, as for the other servers.
server.keepAliveTimeout = 120_000
