import { OP_HEADER_BYTES } from './wire'

/* 64k holds a flush of many small answers without growing. */
const INITIAL_BYTES = 64 * 1024

/**
 * Reply ops of every response finished in one JS turn, written into one buffer and handed
 * to the engine in one native call. The engine copies them at once, so the buffer is reused.
 */
export class ReplyBuffer {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES)
  private pos = 0
  private scheduled = false
  /** While a batch is being dispatched, its flush is done at its end, not scheduled. */
  dispatching = false

  constructor(private readonly send: (ops: Uint8Array) => void) {}

  private reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes))
    this.buf.copy(bigger, 0, 0, this.pos)
    this.buf = bigger
  }

  /** Appends one op; `body` is a string (UTF-8), bytes, or nothing. */
  op(
    kind: number,
    thread: number,
    slot: number,
    rid: number,
    status: number,
    names: string[] | null,
    values: string[] | null,
    body: string | Uint8Array | null,
  ): void {
    const count = names === null ? 0 : names.length
    let estimate = OP_HEADER_BYTES
    for (let i = 0; i < count; i++) estimate += 8 + names![i].length + values![i].length
    if (body !== null) estimate += typeof body === 'string' ? body.length * 3 : body.byteLength
    this.reserve(estimate)
    const buf = this.buf
    const start = this.pos
    buf[start + 4] = kind
    buf[start + 5] = thread
    buf.writeUInt16LE(status, start + 6)
    buf.writeUInt32LE(slot, start + 8)
    buf.writeUInt32LE(rid, start + 12)
    buf.writeUInt32LE(count, start + 16)
    let pos = start + OP_HEADER_BYTES
    for (let i = 0; i < count; i++) {
      const name = names![i]
      const value = values![i]
      const nameLen = buf.latin1Write(name, pos + 8)
      const valueLen = buf.latin1Write(value, pos + 8 + nameLen)
      buf.writeUInt32LE(nameLen, pos)
      buf.writeUInt32LE(valueLen, pos + 4)
      pos += 8 + nameLen + valueLen
    }
    if (body !== null) {
      if (typeof body === 'string') {
        pos += body.length === 0 ? 0 : buf.utf8Write(body, pos)
      } else {
        buf.set(body, pos)
        pos += body.byteLength
      }
    }
    buf.writeUInt32LE(pos - start, start)
    this.pos = pos
    if (!this.dispatching && !this.scheduled) {
      this.scheduled = true
      // After the microtasks of this turn: every answer of the turn goes in one call.
      setImmediate(this.flush)
    }
  }

  readonly flush = (): void => {
    this.scheduled = false
    if (this.pos === 0) return
    const ops = this.buf.subarray(0, this.pos)
    this.pos = 0
    this.send(ops)
  }
}

declare global {
  interface Buffer {
    latin1Write(string: string, offset?: number, length?: number): number
    utf8Write(string: string, offset?: number, length?: number): number
    latin1Slice(start?: number, end?: number): string
    utf8Slice(start?: number, end?: number): string
  }
}
