// Runs the ava suite once per driver (inline, threads): every test must hold under both.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ava = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url))
const drivers = process.env.HARRIER_DRIVER ? [process.env.HARRIER_DRIVER] : ['inline', 'threads']

for (const driver of drivers) {
  console.log(`\n# ava with HARRIER_DRIVER=${driver}`)
  const run = spawnSync(process.execPath, [ava, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, HARRIER_DRIVER: driver },
  })
  if (run.status !== 0) {
    console.error(`ava failed under the ${driver} driver`)
    process.exit(run.status ?? 1)
  }
}
