// The files of the static scenarios: random bytes, written once per suite run into a
// temporary directory that every server serves under /static/, and removed at the end.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

/** URL prefix under which every server serves the directory. */
export const STATIC_PREFIX = '/static/'

/** The files, by name: their sizes. */
export const STATIC_FILES = {
  '1k.bin': 1024,
  '64k.bin': 64 * 1024,
  '1m.bin': 1024 * 1024,
  '10m.bin': 10 * 1024 * 1024,
}

let made = null

/** The directory with the files (written on first use) and each file's size and sha256. */
export function staticFiles() {
  if (made) return made
  const dir = mkdtempSync(join(os.tmpdir(), 'harrier-bench-static-'))
  const files = {}
  for (const [name, size] of Object.entries(STATIC_FILES)) {
    const bytes = randomBytes(size)
    writeFileSync(join(dir, name), bytes)
    files[name] = { size, sha256: createHash('sha256').update(bytes).digest('hex') }
  }
  made = { dir, files }
  return made
}

export function cleanupStatic() {
  if (made) rmSync(made.dir, { recursive: true, force: true })
  made = null
}

export function sha256(buffer) {
  return createHash('sha256').update(buffer).digest('hex')
}

/** Body bytes per second as MiB/s: requests/s × file size. */
export function bodyMiBps(requestsPerSec, size) {
  return typeof requestsPerSec === 'number' && Number.isFinite(requestsPerSec) ? (requestsPerSec * size) / 2 ** 20 : null
}
