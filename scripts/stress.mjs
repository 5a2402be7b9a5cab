// `npm run test:stress [-- --runs N] [ava args]`: runs `node scripts/test.mjs` N times
// (default 5, or STRESS_RUNS) while a CPU hog runs on every core, and reports each run. A
// test that passes on a quiet machine but fails under load is a failing test; this is how
// to find those. HARRIER_IO / HARRIER_DRIVER and any other args pass through to the tests.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { failuresIn } from './stress/failures.mjs'
import { startHogs } from './stress/hogs.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const testScript = fileURLToPath(new URL('./test.mjs', import.meta.url))

// `--runs N` (or `--runs=N`) is this script's; every other arg goes to the tests.
const args = process.argv.slice(2)
let runs = Number(process.env.STRESS_RUNS ?? 5)
const at = args.findIndex((a) => a === '--runs' || a.startsWith('--runs='))
if (at >= 0) runs = Number(args[at].includes('=') ? args.splice(at, 1)[0].slice('--runs='.length) : args.splice(at, 2)[1])
if (!Number.isInteger(runs) || runs < 1) {
  console.error('--runs / STRESS_RUNS must be a positive integer')
  process.exit(2)
}

const logs = fs.mkdtempSync(path.join(os.tmpdir(), 'harrier-stress-'))
const hogs = startHogs()
let current
// Whatever way the script ends, no hog and no test run may outlive it.
process.on('exit', () => {
  hogs.stop()
  try {
    if (current) process.kill(-current.pid, 'SIGKILL')
  } catch {} // the group is gone already
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.log(`\n${signal}: stopping`)
    process.exit(128 + os.constants.signals[signal])
  })
}

// One run of the test command, its output (stdout and stderr interleaved) into `log`.
function runTests(log) {
  const fd = fs.openSync(log, 'w')
  return new Promise((resolve) => {
    // In a process group of its own, so that killing the group also ends the cargo and
    // ava processes that the test command starts.
    current = spawn(process.execPath, [testScript, ...args], { cwd: root, stdio: ['ignore', fd, fd], detached: true })
    current.on('exit', (code, signal) => {
      current = undefined
      fs.closeSync(fd)
      resolve(code === 0 && signal === null)
    })
  })
}

const env = ['HARRIER_IO', 'HARRIER_DRIVER'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`)
console.log(`stress: ${runs} run(s) of scripts/test.mjs ${[...env, ...args].join(' ')} with ${hogs.count} CPU hog(s); logs in ${logs}`)
let passed = 0
for (let i = 1; i <= runs; i++) {
  const log = path.join(logs, `run-${i}.log`)
  const started = Date.now()
  const ok = await runTests(log)
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (ok) {
    passed++
    console.log(`run ${i}/${runs}: passed in ${seconds} s`)
    continue
  }
  const { step, tests } = failuresIn(fs.readFileSync(log, 'utf8'))
  console.log(`run ${i}/${runs}: FAILED in ${seconds} s at ${step ?? 'an unknown step'}; log: ${log}`)
  for (const t of tests) console.log(`    ${t}`)
}
console.log(`passed ${passed} of ${runs}`)
// Explicitly: the hogs would keep the event loop, and so the script, alive.
process.exit(passed === runs ? 0 : 1)
