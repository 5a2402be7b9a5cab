// The public types: tsc (strict) on __test__/types/, which uses every public API and
// imports 'harrier' the way a user does (through package.json "exports"). Its
// `// @ts-expect-error` lines are checked as well: tsc fails if one of them type-checks.
import path from 'node:path'
import test from 'ava'
import { assertBuilt, node, root } from './distribution.ts'

test.before(() => assertBuilt())

test('the examples type-check (strict), and every @ts-expect-error in them is an error', async (t) => {
  t.timeout(60_000)
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = await node([tsc, '-p', path.join('__test__', 'types', 'tsconfig.json'), '--listFiles', '--pretty', 'false'], {
    cwd: root,
    timeout: 55_000,
  })
  const files = r.stdout.split(/\r?\n/).map((line) => path.normalize(line.trim()))
  const errors = r.stdout.split(/\r?\n/).filter((line) => /error TS\d+/.test(line))
  t.deepEqual(errors, [], 'tsc reported errors')
  t.is(r.code, 0, `tsc exited with ${r.code}\n${r.stdout}\n${r.stderr}`)
  // 'harrier' resolved to this package's declarations, not to something else
  t.true(files.includes(path.join(root, 'index.d.ts')), 'index.d.ts was used')
  t.true(files.includes(path.join(root, 'dist', 'index.d.ts')), 'dist/index.d.ts was used')
  for (const example of ['example.ts', 'esm.mts', 'cjs.cts']) {
    t.true(files.includes(path.join(root, '__test__', 'types', example)), `${example} was checked`)
  }
})
