// The hono scenarios' app (hono-app.mjs) on Deno.serve:
//   deno run --allow-net --allow-env benchmark/servers/deno-hono.mjs   (listens on 127.0.0.1:$PORT)
import { honoApp } from './hono-app.mjs'

const port = Number(Deno.env.get('PORT'))
Deno.serve({ port, hostname: '127.0.0.1', onListen: () => console.log(`Deno.serve (hono) listening on http://127.0.0.1:${port}/`) }, honoApp().fetch)
