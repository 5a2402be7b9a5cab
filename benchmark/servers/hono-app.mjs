// The one Hono app of the hono scenarios, the same file for every runtime: harrier's serve and
// @hono/node-server under Node, Bun.serve under Bun, Deno.serve under Deno. Hono is the npm
// package in node_modules (a devDependency), imported by its path so that Bun and Deno load
// the very same files as Node does.
//
//   GET /            "Hello, World!" (c.text: text/plain;charset=UTF-8)
//   GET /json        {"message":"Hello, World!"} (c.json: application/json)
//   GET /users/:id   {"id":"…","q":"…"}: a route param and a query value
import { Hono } from '../../node_modules/hono/dist/index.js'

export function honoApp() {
  const app = new Hono()
  app.get('/', (c) => c.text('Hello, World!'))
  app.get('/json', (c) => c.json({ message: 'Hello, World!' }))
  app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), q: c.req.query('q') }))
  return app
}
