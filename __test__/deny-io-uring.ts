// Shared helper for the io_uring tests. Not a spec file.
//
// `denyIoUring()` compiles fixtures/deny-io-uring.c with `cc` (once: the binary is
// cached in the temporary directory under the hash of its source) and returns the
// path of the program. `deny-io-uring <command> [args…]` runs the command with
// io_uring_setup/enter/register refused by a seccomp filter (EPERM), the way
// containers refuse io_uring; `deny-io-uring --kill <command>` kills the command if
// it ever calls one of them.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

// ava runs from the project root; __dirname exists when tsx compiles this file as CommonJS
const testDir = typeof __dirname === 'string' ? __dirname : path.join(process.cwd(), '__test__')
export const denySource = path.join(testDir, 'fixtures', 'deny-io-uring.c')

let built: string | undefined

/** The path of the compiled deny-io-uring program (Linux only). */
export function denyIoUring(): string {
  if (built !== undefined && fs.existsSync(built)) return built
  const source = fs.readFileSync(denySource)
  const hash = createHash('sha256').update(source).update(process.arch).digest('hex').slice(0, 16)
  const dir = path.join(os.tmpdir(), `harrier-deny-io-uring-${hash}`)
  const exe = path.join(dir, 'deny-io-uring')
  if (!fs.existsSync(exe)) {
    fs.mkdirSync(dir, { recursive: true })
    // build under a unique name and rename: several ava workers may build at the same time
    const tmp = `${exe}.${process.pid}.${Date.now()}`
    try {
      execFileSync('cc', ['-O2', '-Wall', '-o', tmp, denySource], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 })
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string }
      throw new Error(`cannot compile ${denySource} with cc: ${err.stderr?.toString() || err.message}`)
    }
    fs.renameSync(tmp, exe)
  }
  built = exe
  return exe
}
