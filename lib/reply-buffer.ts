import { OP_HEADER_BYTES } from './wire'

/* 64k holds a flush of many small answers without growing. */
const INITIAL_BYTES = 64 * 1024

/* Below this length a JS loop beats the native call that encodes a string. */
const SHORT_STRING = 48

/** Writes `s` as UTF-8 at `at`; returns the bytes written. Short ASCII strings stay in JS. */
function writeUtf8(buf: Buffer, s: string, at: number): number {
  const n = s.length
  if (n < SHORT_STRING) {
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c > 0x7f) break
      buf[at + i] = c
    }
    if (i === n) return n
  }
  return n === 0 ? 0 : buf.utf8Write(s, at)
}

/** Writes `s` as Latin-1 (header names and values, as Node does); returns the bytes written. */
function writeLatin1(buf: Buffer, s: string, at: number): number {
  const n = s.length
  if (n < SHORT_STRING) {
    for (let i = 0; i < n; i++) buf[at + i] = s.charCodeAt(i)
    return n
  }
  return buf.latin1Write(s, at)
}

/**
 * One header pre-encoded in the op format (name length, value length, name, value), for the
 * content types the API sets by itself: copied, not encoded, on every response.
 */
export function encodedHeader(name: string, value: string): Buffer {
  const b = Buffer.alloc(8 + name.length + value.length)
  b.writeUInt32LE(name.length, 0)
  b.writeUInt32LE(value.length, 4)
  b.latin1Write(name, 8)
  b.latin1Write(value, 8 + name.length)
  return b
}

/**
 * Reply ops of every response finished in one JS turn, written into one buffer and handed
 * to the engine in one native call. The engine copies them at once, so the buffer is reused.
 */
export class ReplyBuffer {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES)
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
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
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength)
  }

  /**
   * Appends one op. Headers are `names[i]: values[i]` (may be null), plus `extra`, one
   * pre-encoded header (may be null); `body` is a string (UTF-8), bytes, or nothing.
   */
  op(
    kind: number,
    thread: number,
    slot: number,
    rid: number,
    status: number,
    names: string[] | null,
    values: string[] | null,
    extra: Buffer | null,
    body: string | Uint8Array | null,
  ): void {
    const count = names === null ? 0 : names.length
    let estimate = OP_HEADER_BYTES + (extra === null ? 0 : extra.length)
    for (let i = 0; i < count; i++) estimate += 8 + names![i].length + values![i].length
    if (body !== null) estimate += typeof body === 'string' ? body.length * 3 : body.byteLength
    this.reserve(estimate)
    const buf = this.buf
    const view = this.view
    const start = this.pos
    buf[start + 4] = kind
    buf[start + 5] = thread
    view.setUint16(start + 6, status, true)
    view.setUint32(start + 8, slot, true)
    view.setUint32(start + 12, rid, true)
    view.setUint32(start + 16, count + (extra === null ? 0 : 1), true)
    let pos = start + OP_HEADER_BYTES
    for (let i = 0; i < count; i++) {
      const nameLen = writeLatin1(buf, names![i], pos + 8)
      const valueLen = writeLatin1(buf, values![i], pos + 8 + nameLen)
      view.setUint32(pos, nameLen, true)
      view.setUint32(pos + 4, valueLen, true)
      pos += 8 + nameLen + valueLen
    }
    if (extra !== null) {
      buf.set(extra, pos)
      pos += extra.length
    }
    if (body !== null) {
      if (typeof body === 'string') {
        pos += writeUtf8(buf, body, pos)
      } else {
        buf.set(body, pos)
        pos += body.byteLength
      }
    }
    view.setUint32(start, pos - start, true)
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
