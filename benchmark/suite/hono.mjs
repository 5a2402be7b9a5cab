// The hono scenario group: one Hono app (servers/hono-app.mjs) on harrier's serve(), on
// @hono/node-server (node:http), on Bun.serve and on Deno.serve, all with the same
// `hono.fetch`; harrier's native routes (servers/harrier.mjs) beside them as the reference.
// Not in the default set: `--scenario hono` runs them.

/** The servers of the group (merged into SERVERS in servers.mjs); `honoOnly`: they run nothing else. */
export const HONO_SERVERS = {
  'harrier-hono': { label: 'harrier serve (hono)', runtime: 'node', script: 'harrier-hono.mjs', routes: false, hello: true, static: false, ws: [], hono: true, honoOnly: true },
  'hono-node': { label: '@hono/node-server', runtime: 'node', script: 'hono-node.mjs', routes: false, hello: true, static: false, ws: [], hono: true, honoOnly: true },
  'bun-hono': { label: 'Bun.serve (hono)', runtime: 'bun', script: 'bun-hono.mjs', routes: false, hello: true, static: false, ws: [], hono: true, honoOnly: true },
  'deno-hono': { label: 'Deno.serve (hono)', runtime: 'deno', script: 'deno-hono.mjs', routes: false, hello: true, static: false, ws: [], hono: true, honoOnly: true },
}

/** The scenarios, made with scenarios.mjs's helpers (passed in, to keep the import one way). */
export function honoScenarios({ loadScenario, helloProbe, expectJson }) {
  return [
    loadScenario({
      name: 'hono-hello',
      default: false,
      hono: true,
      title: 'Hono: GET / → c.text("Hello, World!")',
      about: "one Hono app's text route: what a fetch handler costs on each server (the Request made, Hono's routing, the Response read back)",
      path: '/',
      probe: helloProbe,
    }),
    loadScenario({
      name: 'hono-json',
      default: false,
      hono: true,
      title: 'Hono: GET /users/42?q=hello → c.json({ id, q })',
      about: "one Hono app's route with a param and a query value, answered as JSON",
      path: '/users/42?q=hello',
      probe: { request: { path: '/users/42?q=hello' }, check: expectJson({ id: '42', q: 'hello' }) },
    }),
  ]
}

/**
 * Who runs the hono scenarios (the Hono servers, and harrier's native routes for reference),
 * and that the Hono servers run nothing else; undefined where this group has no say.
 */
export function honoSkipReason(scenario, server) {
  if (scenario.hono) return server.hono || server.name === 'harrier' ? null : 'has no Hono app in this suite'
  if (server.honoOnly) return 'runs only the hono scenarios'
  return undefined
}
