// System tools some tests need (promtool, …): found on PATH, or installed with apt-get once
// per machine (as root, or through `sudo -n`). A test that needs a tool installs it; it
// never skips. Not a spec file.

import { spawnSync } from 'node:child_process'
import { closeSync, openSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function which(command: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' })
  return found.status === 0 ? found.stdout.trim() : null
}

function asRoot(args: string[]): ReturnType<typeof spawnSync> {
  const root = process.getuid?.() === 0
  const [cmd, ...rest] = root ? args : ['sudo', '-n', ...args]
  return spawnSync(cmd, rest, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 900_000 })
}

/** Waits for the lock so that test files installing at once do not fight over dpkg. */
async function withLock<T>(fn: () => T): Promise<T> {
  const lock = join(tmpdir(), 'harrier-apt.lock')
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'))
      break
    } catch {
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  try {
    return fn()
  } finally {
    unlinkSync(lock)
  }
}

/** The path of `command`, installing the Debian `packages` that provide it if it is missing. */
export async function ensureTool(command: string, packages: string[]): Promise<string> {
  const present = which(command)
  if (present) return present
  return withLock(() => {
    const again = which(command)
    if (again) return again
    let installed = asRoot(['apt-get', 'install', '-y', '--no-install-recommends', ...packages])
    if (installed.status !== 0) {
      asRoot(['apt-get', 'update'])
      installed = asRoot(['apt-get', 'install', '-y', '--no-install-recommends', ...packages])
    }
    const path = which(command)
    if (!path) throw new Error(`${command} is missing and apt-get install ${packages.join(' ')} failed: ${installed.stderr || installed.error}`)
    return path
  })
}
