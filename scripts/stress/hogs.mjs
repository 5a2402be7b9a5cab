// CPU hogs for `npm run test:stress`: one busy-looping child per core, so that the tests
// run on a machine where every core is taken and timers, threads and sockets all run late.
import { spawn } from 'node:child_process'
import os from 'node:os'

// The hog checks now and then that the stress script is still its parent, so that it
// dies even when the script is killed in a way no handler sees (SIGKILL).
const loop = `const p = process.ppid; for (let i = 0; ; i++) if (i % 1e8 === 0 && process.ppid !== p) process.exit()`

export function startHogs(count = os.availableParallelism()) {
  const hogs = []
  for (let i = 0; i < count; i++) {
    const hog = spawn(process.execPath, ['-e', loop], { stdio: 'ignore' })
    // Lower priority: the tests must still get the CPU now and then, as on a busy
    // machine, not starve entirely (which would only test the scheduler).
    try {
      os.setPriority(hog.pid, 10)
    } catch {}
    hogs.push(hog)
  }
  return {
    count,
    // Synchronous, so that it also works from an 'exit' handler.
    stop() {
      for (const hog of hogs) if (hog.exitCode === null && hog.signalCode === null) hog.kill('SIGKILL')
    },
  }
}
