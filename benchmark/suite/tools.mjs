// The command-line tools some scenarios need, and Debian's packages that have them. A
// missing one is installed with apt-get when the suite may (as root, or through `sudo -n`
// without a password); otherwise the suite stops and says what to install.

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

/** The first `command` on PATH (and in /usr/sbin, which a user's PATH may lack), or null. */
export function findCommand(command) {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin']
  for (const dir of dirs) {
    if (existsSync(join(dir, command))) return join(dir, command)
  }
  return null
}

/** Commands the TLS scenarios (and nginx) use, with the Debian package of each. */
export const PACKAGES = {
  wrk: 'wrk',
  openssl: 'openssl',
  h2load: 'nghttp2-client',
  // nginx-light is the smallest Debian nginx with the ssl module; `nginx` would do as well.
  nginx: 'nginx-light',
}

/** How this process may run apt-get: directly (root), through `sudo -n`, or not at all. */
function aptRunner() {
  if (os.userInfo().uid === 0) return []
  if (findCommand('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0) return ['sudo', '-n']
  return null
}

let updated = false

/**
 * Makes sure every command of `commands` is there, installing the packages of the missing
 * ones with `apt-get install -y --no-install-recommends` (after one `apt-get update`, if
 * the first try fails). Throws, naming the packages, when they are missing and cannot be
 * installed. `log`: where the suite says what it installs.
 */
export function ensureCommands(commands, { log = console.log } = {}) {
  const missing = commands.filter((command) => !findCommand(command))
  if (missing.length === 0) return
  const packages = [...new Set(missing.map((command) => PACKAGES[command] ?? command))]
  const what = `${missing.join(', ')} (Debian: ${packages.join(' ')})`
  const runner = aptRunner()
  if (runner === null || !findCommand('apt-get')) {
    throw new Error(
      `missing ${what}, and the suite cannot install it (it needs root or password-less sudo, and apt-get). Install it with:\n\n` +
        `    apt-get install -y --no-install-recommends ${packages.join(' ')}\n`,
    )
  }
  const [exe, ...pre] = runner.length ? runner : ['apt-get']
  const apt = (...args) => {
    const full = runner.length ? [...pre, 'apt-get', ...args] : args
    log(`bench: ${[exe, ...full].join(' ')}`)
    execFileSync(exe, full, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  try {
    try {
      apt('install', '-y', '--no-install-recommends', ...packages)
    } catch (error) {
      if (updated) throw error
      updated = true
      apt('update', '-qq')
      apt('install', '-y', '--no-install-recommends', ...packages)
    }
  } catch (error) {
    throw new Error(`missing ${what}; apt-get install failed:\n${`${error.stderr ?? ''}`.trim() || error.message}`)
  }
  const still = missing.filter((command) => !findCommand(command))
  if (still.length) throw new Error(`installed ${packages.join(' ')}, but ${still.join(', ')} is still not found`)
}
