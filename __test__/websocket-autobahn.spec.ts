// WebSocket: Autobahn|Testsuite cases 1.* to 10.* against harrier's echo server, through
// scripts/autobahn.mjs (which installs the testsuite on first use, starts
// scripts/autobahn/server.mjs under this run's HARRIER_IO / HARRIER_DRIVER, and exits 0 only
// when every case's behavior and behaviorClose are OK, NON-STRICT or INFORMATIONAL).
import path from 'node:path'
import test from 'ava'
import { assertBuilt, cleanEnv, node, root } from './distribution.ts'

test('Autobahn|Testsuite cases 1.* to 10.* all pass', async (t) => {
  t.timeout(5 * 60_000)
  assertBuilt()
  const r = await node([path.join(root, 'scripts', 'autobahn.mjs')], { cwd: root, env: cleanEnv(), timeout: 5 * 60_000 - 5_000 })
  const summary = r.stdout
    .split('\n')
    .filter((l) => /cases in|behavior|FAILED|only \d+ of|died|failed|passed/.test(l))
    .join('\n')
  t.log(summary)
  t.is(r.code, 0, `scripts/autobahn.mjs exited with ${r.code ?? r.signal}\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`)
  t.regex(r.stdout, /all \d+ cases passed/)
  t.regex(r.stdout, /harrier echo server on port \d+/, 'the harrier server was tested, not another')
})
