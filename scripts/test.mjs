// `npm test`: the Rust tests, then the ava suite, each once per I/O backend (epoll, and
// io_uring on Linux) and the ava suite once per driver (inline, threads) under each: every
// test must hold in every combination. HARRIER_IO / HARRIER_DRIVER narrow the matrix.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const ava = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url))
const backends = process.env.HARRIER_IO ? [process.env.HARRIER_IO] : process.platform === 'linux' ? ['epoll', 'uring'] : ['epoll']
const drivers = process.env.HARRIER_DRIVER ? [process.env.HARRIER_DRIVER] : ['inline', 'threads']

function run(title, command, args, env) {
  console.log(`\n# ${title}`)
  const started = Date.now()
  const r = spawnSync(command, args, { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } })
  if (r.status !== 0) {
    console.error(`\nfailed: ${title}`)
    process.exit(r.status ?? 1)
  }
  console.log(`# ${title}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

// The benchmark suite's own parsers and configs (h2load's and wrk's output, nginx's config):
// a broken one would misreport every figure.
if (process.argv.length <= 2) run('node --test benchmark/suite/', process.execPath, ['--test', 'benchmark/suite/'], {})
for (const io of backends) {
  // The napi crate has no tests of its own worth repeating; the engine's run per backend.
  const crates = io === 'epoll' ? ['test', '--workspace'] : ['test', '-p', 'harrier-core']
  run(`cargo ${crates.join(' ')} with HARRIER_IO=${io}`, 'cargo', crates, { HARRIER_IO: io })
}
for (const io of backends) {
  for (const driver of drivers) {
    run(`ava with HARRIER_IO=${io} HARRIER_DRIVER=${driver}`, process.execPath, [ava, ...process.argv.slice(2)], { HARRIER_IO: io, HARRIER_DRIVER: driver })
  }
}
