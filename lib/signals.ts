// One SIGINT/SIGTERM handler for every listening app: close them all, then let the signal
// do what it would have done (exit) unless the program handles it too.

type Closable = { close(): Promise<void> }

const open = new Set<Closable>()
let closing = false

function onSignal(signal: NodeJS.Signals): void {
  if (closing) {
    // A second signal while draining: stop waiting.
    process.exit(130)
  }
  closing = true
  Promise.allSettled([...open].map((app) => app.close())).then(() => {
    uninstall()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

function install(): void {
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

function uninstall(): void {
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
}

export function watchSignals(app: Closable): void {
  if (open.size === 0) install()
  open.add(app)
}

export function unwatchSignals(app: Closable): void {
  if (!open.delete(app)) return
  if (open.size === 0 && !closing) uninstall()
}
