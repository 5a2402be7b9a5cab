// serve({ module, workers }) and App.workerId, as a user's TypeScript code uses them.
import { App, serve } from 'harrier'
import type { Served, ServeModuleOptions, WorkerFigures, WorkerMetrics } from 'harrier'

const id: number | null = App.workerId
// @ts-expect-error: workerId is read-only
App.workerId = 3

async function run(): Promise<void> {
  const options: ServeModuleOptions = {
    module: new URL('file:///srv/app/app.ts'),
    workers: 'auto',
    port: 3000,
    host: '0.0.0.0',
    drainDelay: 1000,
    restartDelay: 200,
    onError: (error: unknown, worker: { workerId: number; restarts: number }) => console.error(worker.workerId, error),
  }
  const served: Served = await serve(options)
  const { port, workers }: { port: number; workers: number } = served
  const figures: WorkerMetrics = served.metrics()
  const spread: WorkerFigures[] = figures.workers
  const total: number = figures.total.requests.total
  console.log(id, port, workers, spread.map((w) => w.accepted), total, served.restarts())
  await served.close()
  await serve({ module: './app.js', workers: 2 })
  // @ts-expect-error: workers is a count or 'auto'
  await serve({ module: './app.js', workers: 'all' })
  // @ts-expect-error: a module is needed
  await serve({ workers: 2 })
  const app = new App()
  const inWorker: WorkerMetrics | null = app.workerMetrics()
  console.log(inWorker)
}
void run
