import { OP_HEARTBEAT } from './wire'

/** What `res.eventStream()` takes. */
export interface EventStreamOptions {
  /** Milliseconds the client should wait before reconnecting (the `retry:` field), sent at once. */
  retry?: number
  /**
   * Milliseconds of quiet after which the engine writes a comment line (`:`) on its own,
   * with no JavaScript wake-up: it keeps proxies and clients from timing the stream out.
   */
  heartbeat?: number
}

/** One event; `data` may span lines (each becomes a `data:` line). */
export interface ServerSentEvent {
  data: string
  event?: string
  id?: string
  retry?: number
}

/** The part of a response an event stream writes through. @internal */
export interface EventSink {
  header(name: string, value: string): unknown
  write(chunk: string): boolean
  end(): unknown
  drained(): Promise<void>
  on(event: 'close', fn: () => void): unknown
  readonly finished: boolean
  readonly abandoned: boolean
  /** @internal */ engineOp(kind: number, body: Uint8Array): void
}

const NEWLINE = /[\r\n]/

function checkField(name: string, value: string): string {
  if (typeof value !== 'string') throw new TypeError(`harrier: event ${name} must be a string`)
  if (NEWLINE.test(value)) throw new TypeError(`harrier: event ${name} must not contain a newline`)
  return value
}

function checkMs(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** 31) throw new RangeError(`harrier: ${name} must be a non-negative integer of milliseconds, got ${value}`)
  return value
}

/** Milliseconds as the engine reads them (4 bytes, little-endian). */
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}

/**
 * A Server-Sent Events stream over one response: `text/event-stream`, not cached, not
 * buffered by proxies (`X-Accel-Buffering: no`); the head is sent at once.
 */
export class EventStream {
  /** Resolves when the client goes away or `close()` is called. */
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private ended = false

  /** @internal */
  constructor(private readonly res: EventSink, options: EventStreamOptions) {
    const retry = options.retry === undefined ? undefined : checkMs('retry', options.retry)
    const heartbeat = options.heartbeat === undefined ? undefined : checkMs('heartbeat', options.heartbeat)
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
    res.header('content-type', 'text/event-stream')
    res.header('cache-control', 'no-cache')
    res.header('x-accel-buffering', 'no')
    // The head goes now, with the retry field if any (a comment otherwise: some clients
    // only fire `open` once a byte arrives).
    res.write(retry === undefined ? ':\n\n' : `retry: ${retry}\n\n`)
    // Also without a heartbeat: the engine then knows the stream, and ends it when a drain begins.
    res.engineOp(OP_HEARTBEAT, u32(heartbeat ?? 0))
    res.on('close', () => this.finish())
  }

  /** Whether the stream is over (closed by either side). */
  get isClosed(): boolean {
    return this.ended || this.res.abandoned || this.res.finished
  }

  /** Sends one event; returns false once the client is behind (see `res.drained()`). */
  send(event: ServerSentEvent | string): boolean {
    const e = typeof event === 'string' ? { data: event } : event
    if (e === null || typeof e !== 'object' || typeof e.data !== 'string') throw new TypeError('harrier: send() takes { data, event?, id?, retry? } with data a string')
    let text = ''
    if (e.id !== undefined) text += `id: ${checkField('id', e.id)}\n`
    if (e.event !== undefined) text += `event: ${checkField('event', e.event)}\n`
    if (e.retry !== undefined) text += `retry: ${checkMs('retry', e.retry)}\n`
    for (const line of e.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`
    return this.raw(`${text}\n`)
  }

  /** A comment line (ignored by clients): `: text`. */
  comment(text = ''): boolean {
    const lines = String(text).split(/\r\n|\r|\n/)
    return this.raw(`${lines.map((l) => `: ${l}`).join('\n')}\n\n`)
  }

  /** Resolves once the client took what was sent (as `res.drained()`). */
  drained(): Promise<void> {
    return this.res.drained()
  }

  /** Ends the stream (the client will reconnect after `retry`, as `EventSource` does). */
  close(): void {
    if (this.isClosed) return this.finish()
    this.res.end()
    this.finish()
  }

  private raw(text: string): boolean {
    if (this.isClosed) return false
    return this.res.write(text)
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    this.resolveClosed()
  }
}
