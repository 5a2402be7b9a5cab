// Serves __test__/hono-app.ts with @hono/node-server (its defaults) on 127.0.0.1, a free port,
// printed as `listening <port>` on stdout; exits when its stdin ends. Started by
// fetch-hono.spec.ts in a child process of its own, so that its global Request and Response
// (which @hono/node-server replaces) are not harrier's.
import { serve } from '@hono/node-server'
import { honoApp } from './hono-app.ts'

const server = serve({ fetch: honoApp().fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`listening ${info.port}\n`)
})
process.stdin.resume()
process.stdin.on('end', () => server.close(() => process.exit(0)))
