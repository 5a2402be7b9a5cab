// HTTP/2: h2spec (every case, --strict) against harrier in cleartext and over TLS, through
// scripts/h2spec.mjs (which installs h2spec into .tools/ on first use, starts
// scripts/h2spec/server.mjs under this run's HARRIER_IO / HARRIER_DRIVER, and exits 0 only
// when every case passed).
import path from 'node:path'
import test from 'ava'
import { assertBuilt, cleanEnv, node, root } from './distribution.ts'

test('h2spec: every case passes in cleartext and over TLS (--strict)', async (t) => {
  t.timeout(4 * 60_000)
  assertBuilt()
  const r = await node([path.join(root, 'scripts', 'h2spec.mjs'), '--strict'], { cwd: root, env: cleanEnv(), timeout: 4 * 60_000 - 5_000 })
  t.log(r.stdout.split('\n').filter((l) => /tests,|cases|×/.test(l)).join('\n'))
  t.is(r.code, 0, `scripts/h2spec.mjs exited with ${r.code ?? r.signal}\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`)
  t.regex(r.stdout, /cleartext: 146 tests, 146 passed/)
  t.regex(r.stdout, /tls: 146 tests, 146 passed/)
  t.regex(r.stdout, /all cases passed/)
  t.regex(r.stdout, /harrier server on port \d+/, 'the harrier server was tested, not another')
})
