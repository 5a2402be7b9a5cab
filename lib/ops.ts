import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

import type { AccessLogFormat, AppOptions } from './types'

/* The loop-delay sampler's interval. */
const RESOLUTION_MS = 10

/** What the engine answers a route with, itself. */
export type EngineRoute = 'metrics' | 'health' | 'dashboard' | 'dashboardEvents'

/** The `accessLog` option as the engine takes it. */
export function accessLogOptions(option: AppOptions['accessLog']): { accessLogFormat?: string; accessLogPath?: string } {
  if (option === undefined || option === null) return {}
  const format: unknown = typeof option === 'string' ? option : option.format
  const path: unknown = typeof option === 'string' ? undefined : option.path
  if (format !== 'combined' && format !== 'json') {
    throw new TypeError(`harrier: accessLog must be 'combined', 'json' or { format, path }, got ${JSON.stringify(option)}`)
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) throw new TypeError('harrier: accessLog.path must be a file path')
  return { accessLogFormat: format as AccessLogFormat, accessLogPath: path as string | undefined }
}

/**
 * Tells the engine the JS thread's event-loop delay once a second, so that the figures it
 * answers with (metrics, the dashboard) carry it even while JS is too busy to answer them.
 */
export class LoopDelayReporter {
  private readonly histogram: IntervalHistogram
  private readonly timer: NodeJS.Timeout

  constructor(native: { reportLoopDelay(p50Ms: number, p99Ms: number, maxMs: number): void }) {
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
    this.histogram.enable()
    this.timer = setInterval(() => {
      const h = this.histogram
      // The histogram counts the sampling interval itself: an idle loop reads 10 ms.
      const late = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)
      native.reportLoopDelay(late(h.percentile(50)), late(h.percentile(99)), late(h.max))
      h.reset()
    }, 1000)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.histogram.disable()
  }
}
