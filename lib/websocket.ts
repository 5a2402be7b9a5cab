import type { ReplyBuffer } from './reply-buffer'
import type { Request } from './request'
import { OP_UPGRADE, OP_WS_CLOSE, OP_WS_PUBLISH, OP_WS_SEND, OP_WS_SUBSCRIBE, OP_WS_UNSUBSCRIBE, ALL_THREADS, WS_BINARY, WS_COMPRESS, WS_WANT_DRAIN } from './wire'

/** What `send` and `publish` take. */
export type WebSocketData = string | Buffer | Uint8Array | ArrayBuffer

/** How a WebSocket route behaves (`app.ws(path, behavior)`). */
export interface WebSocketBehavior<Data = undefined, Params extends Record<string, string> = Record<string, string>> {
  /**
   * Runs before the 101, may be async. Throw an `HttpError` to refuse with its status (the
   * connection is not upgraded); what it returns becomes `ws.data`.
   */
  upgrade?: (req: Request<Params>) => Data | Promise<Data>
  open?: (ws: WebSocket<Data, Params>) => void | Promise<void>
  /** A whole message: a string for a text message, a Buffer for a binary one. */
  message?: (ws: WebSocket<Data, Params>, message: string | Buffer) => void | Promise<void>
  /** The send buffer fell back under `backpressureLimit` after a send returned -1. */
  drain?: (ws: WebSocket<Data, Params>) => void
  /** The socket is closed: the client's code and reason, 1006 without a close frame. */
  close?: (ws: WebSocket<Data, Params>, code: number, reason: string) => void
  /** Bytes of one message after reassembly and inflation; more: close 1009. Default 16 MiB. */
  maxPayloadLength?: number
  /**
   * Seconds without any frame from the client: a ping after half of it, the connection
   * dropped after all of it (`close` gets 1006). Default 120; 0: never.
   */
  idleTimeout?: number
  /** Bytes queued for one socket beyond which `send` returns -1. Default 1 MiB. */
  backpressureLimit?: number
  /** Close the socket instead when a send goes over `backpressureLimit`. */
  closeOnBackpressureLimit?: boolean
  /** permessage-deflate: `true`, or `{ threshold }` (messages shorter go uncompressed; default 1024). */
  perMessageDeflate?: boolean | { threshold?: number }
  /** Subprotocols in order of preference: the first the client offers is chosen. */
  protocols?: string[]
}

/** The app side of the WebSockets: the reply buffer and the topics JS knows of. @internal */
export interface WebSocketHub {
  readonly out: ReplyBuffer
  readonly topics: Map<string, Set<WebSocket<any, any>>>
  topicHeader(topic: string): Buffer
  /** Subscribers of `topic` on the other engines of the port (the workers of `serve()`). */
  peerCount(topic: string): number
  /** A callback threw or rejected. */
  failed(error: unknown, ws: WebSocket<any, any>): void
}

function frameLength(payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10)
}

/** Bytes of a message as it goes on the wire, and the body to write. */
function payloadOf(data: WebSocketData): { body: string | Uint8Array; bytes: number; binary: boolean } {
  if (typeof data === 'string') return { body: data, bytes: Buffer.byteLength(data), binary: false }
  if (data instanceof Uint8Array) return { body: data, bytes: data.byteLength, binary: true }
  if (data instanceof ArrayBuffer) return { body: new Uint8Array(data), bytes: data.byteLength, binary: true }
  throw new TypeError('harrier: a WebSocket message is a string, a Buffer, a Uint8Array or an ArrayBuffer')
}

/**
 * One WebSocket. Every call is one op in the app's reply buffer, in call order; calls on a
 * closed socket do nothing and never throw (`send` returns 0).
 */
export class WebSocket<Data = undefined, Params extends Record<string, string> = Record<string, string>> {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3

  /** 0 connecting, 1 open, 2 closing, 3 closed, as in the browser. */
  readyState: 0 | 1 | 2 | 3 = 1
  /** What the route's `upgrade` returned. */
  data: Data
  readonly params: Params
  readonly remoteAddress: string
  /** The subprotocol chosen, or ''. */
  readonly protocol: string
  /** @internal */ readonly thread: number
  /** @internal */ readonly slot: number
  /** @internal */ readonly id: number
  /** @internal */ readonly behavior: WebSocketBehavior<Data, Params>
  private readonly hub: WebSocketHub
  /** Made on the first subscribe: most sockets of a large idle crowd never need one. */
  private subs: Set<string> | null = null
  /** Unsent bytes, as the engine last reported them (when they crossed the limit). */
  private reported = 0
  /** Frame bytes of sends still in the reply buffer, written in `generation`. */
  private pending = 0
  private generation = -1
  /** A send returned -1: `drain` is owed. */
  private overLimit = false

  /** @internal */
  constructor(hub: WebSocketHub, thread: number, slot: number, id: number, behavior: WebSocketBehavior<Data, Params>, data: Data, params: Params, remoteAddress: string, protocol: string) {
    this.hub = hub
    this.thread = thread
    this.slot = slot
    this.id = id
    this.behavior = behavior
    this.data = data
    this.params = params
    this.remoteAddress = remoteAddress
    this.protocol = protocol
  }

  /** Bytes queued for this socket and not yet taken by the network, as last known. */
  get bufferedAmount(): number {
    return this.reported + (this.hub.out.holds(this.generation) ? this.pending : 0)
  }

  /** The topics this socket is subscribed to. */
  get subscriptions(): string[] {
    return this.subs === null ? [] : [...this.subs]
  }

  /**
   * Queues a message (text for a string, binary otherwise). Returns the bytes queued (the
   * frame's length, uncompressed); -1 if queued but the socket is now over
   * `backpressureLimit`; 0 if not sent (closed, or over the limit with
   * `closeOnBackpressureLimit`, which closes it).
   */
  send(data: WebSocketData, compress = true): number {
    if (this.readyState !== 1) return 0
    let body: string | Uint8Array
    let flags = compress ? WS_COMPRESS : 0
    if (typeof data === 'string') body = data
    else {
      body = data instanceof Uint8Array ? data : payloadOf(data).body
      flags |= WS_BINARY
    }
    const out = this.hub.out
    const buffered = this.bufferedAmount
    // Written first: the op tells the message's length in bytes, and is marked if it is
    // over the limit (or taken back, with closeOnBackpressureLimit).
    const bytes = out.bodyOp(OP_WS_SEND, this.thread, this.slot, this.id, flags, body)
    const frame = frameLength(bytes)
    // A message to a socket with nothing queued is never over the limit, however long.
    const over = buffered > 0 && buffered + frame > (this.behavior.backpressureLimit ?? 2 ** 20)
    if (over) {
      if (this.behavior.closeOnBackpressureLimit) {
        out.dropLast() // the message stays unsent: the socket goes instead
        this.terminate()
        return 0
      }
      if (!this.overLimit) {
        this.overLimit = true
        out.markOp(out.lastOp, WS_WANT_DRAIN)
      }
    }
    if (this.generation !== out.generation) {
      this.generation = out.generation
      this.pending = 0
    }
    this.pending += frame
    return over ? -1 : frame
  }

  /** Starts the close handshake (default 1000); `close` runs once the client answers. */
  close(code = 1000, reason = ''): void {
    if (this.readyState !== 1) return
    if (!(code === 1000 || (code >= 3000 && code <= 4999))) {
      throw new RangeError(`harrier: a close code is 1000 or 3000-4999, got ${code}`)
    }
    if (Buffer.byteLength(reason) > 123) throw new RangeError('harrier: a close reason is at most 123 bytes')
    this.readyState = 2
    this.hub.out.bodyOp(OP_WS_CLOSE, this.thread, this.slot, this.id, code, reason)
  }

  /** Drops the connection without a close handshake (`close` gets 1006). */
  terminate(): void {
    if (this.readyState === 3) return
    this.readyState = 2
    this.hub.out.bodyOp(OP_WS_CLOSE, this.thread, this.slot, this.id, 0, null)
  }

  /** Subscribes to `topic`; false if it already was (or the socket is closed). */
  subscribe(topic: string): boolean {
    if (this.readyState !== 1 || this.subs?.has(topic)) return false
    ;(this.subs ??= new Set()).add(topic)
    let set = this.hub.topics.get(topic)
    if (set === undefined) this.hub.topics.set(topic, (set = new Set()))
    set.add(this)
    this.hub.out.bodyOp(OP_WS_SUBSCRIBE, this.thread, this.slot, this.id, 0, topic)
    return true
  }

  unsubscribe(topic: string): boolean {
    if (this.subs === null || !this.subs.delete(topic)) return false
    this.leave(topic)
    if (this.readyState !== 3) this.hub.out.bodyOp(OP_WS_UNSUBSCRIBE, this.thread, this.slot, this.id, 0, topic)
    return true
  }

  isSubscribed(topic: string): boolean {
    return this.subs !== null && this.subs.has(topic)
  }

  /**
   * Sends to every subscriber of `topic` but this socket, framed once in the engine; returns
   * how many sockets it was queued for.
   */
  publish(topic: string, data: WebSocketData, compress = true): number {
    const set = this.hub.topics.get(topic)
    const count = (set === undefined ? 0 : set.size - (set.has(this) ? 1 : 0)) + this.hub.peerCount(topic)
    if (count > 0) publish(this.hub, topic, data, compress, this)
    return count
  }

  private leave(topic: string): void {
    const set = this.hub.topics.get(topic)
    if (set === undefined) return
    set.delete(this)
    if (set.size === 0) this.hub.topics.delete(topic)
  }

  /** @internal the engine says how much is unsent after what it wrote */
  drained(unsent: number): void {
    this.reported = unsent
    if (!this.overLimit || unsent >= (this.behavior.backpressureLimit ?? 2 ** 20)) return
    this.overLimit = false
    if (this.readyState === 1 && this.behavior.drain) this.call(() => this.behavior.drain!(this))
  }

  /** @internal the socket is closed: subscriptions end, `close` runs */
  closed(code: number, reason: string): void {
    if (this.readyState === 3) return
    this.readyState = 3
    if (this.subs !== null) for (const topic of this.subs) this.leave(topic)
    this.subs = null
    this.reported = 0
    this.pending = 0
    if (this.behavior.close) this.call(() => this.behavior.close!(this, code, reason))
  }

  /** @internal a message arrived: `message` runs (no closure per message on this path) */
  received(message: string | Buffer): void {
    try {
      const result = this.behavior.message!(this, message)
      if (result !== undefined && result !== null && typeof (result as PromiseLike<unknown>).then === 'function') {
        ;(result as PromiseLike<unknown>).then(undefined, (e) => this.hub.failed(e, this))
      }
    } catch (e) {
      this.hub.failed(e, this)
    }
  }

  /** @internal runs a callback of the behavior; what it throws or rejects with is reported */
  call(fn: () => unknown): void {
    try {
      const result = fn()
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        ;(result as PromiseLike<unknown>).then(undefined, (e) => this.hub.failed(e, this))
      }
    } catch (e) {
      this.hub.failed(e, this)
    }
  }
}

/** One publish op: to every thread, leaving out `except`. @internal */
export function publish(hub: WebSocketHub, topic: string, data: WebSocketData, compress: boolean, except: WebSocket<any, any> | null): void {
  const { body, binary } = payloadOf(data)
  let flags = binary ? WS_BINARY : 0
  if (compress) flags |= WS_COMPRESS
  // The sender is left out on its own thread only: ids are per thread.
  if (except !== null) flags |= (except.thread + 1) << 8
  // Subscribers' `bufferedAmount` learns of it from the engine's next report: walking them
  // here would cost per subscriber what the engine's fan-out saves.
  hub.out.op(OP_WS_PUBLISH, ALL_THREADS, except?.slot ?? 0, except?.id ?? 0, flags, null, null, hub.topicHeader(topic), body)
}

/** Accepts the handshake of the upgrade request `req`. @internal */
export function acceptUpgrade(out: ReplyBuffer, req: Request<any>): void {
  out.bodyOp(OP_UPGRADE, req.thread, req.slot, req.rid, 0, null)
}
