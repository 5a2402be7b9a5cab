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

/** `shared[WRITTEN]`: bytes of ops written and not yet taken by the engine. */
const WRITTEN = 0
/** `shared[TURN]`: non-zero while a turn is under way whose end takes what was written. */
const TURN = 1

/**
 * Reply ops of every response finished in one JS turn, written into one buffer and handed
 * to the engine at once. The engine copies them, so the buffer is reused. Two words are
 * shared with the engine: how much is written, and whether a turn is under way: the inline
 * driver sets that around each batch and takes the ops itself when the batch's promise jobs
 * have run (no call per batch); outside a turn, a flush is scheduled after the microtasks.
 */
export class ReplyBuffer {
  private buf = Buffer.allocUnsafeSlow(INITIAL_BYTES)
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  readonly shared = new Uint32Array(2)
  private scheduled = false
  /**
   * Counts the times the buffer went from empty to holding ops: an op written in an older
   * generation, or while nothing is written, has been taken by the engine.
   */
  generation = 0

  /** `grown(buffer)` tells the engine the buffer it reads from now on. */
  constructor(
    private readonly send: (ops: Uint8Array) => void,
    private readonly grown: (buffer: Buffer) => void,
  ) {}

  /** The buffer ops are written into (shared with the engine). */
  get buffer(): Buffer {
    return this.buf
  }

  /** Until `endTurn`, ops written are left for the turn's end. */
  beginTurn(): boolean {
    if (this.shared[TURN] !== 0) return false
    this.shared[TURN] = 1
    return true
  }

  endTurn(): void {
    this.shared[TURN] = 0
    this.flush()
  }

  private reserve(bytes: number): void {
    const pos = this.shared[WRITTEN]
    if (pos + bytes <= this.buf.length) return
    // Not from Node's pool: the engine reads this memory, and nothing else may share it.
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, pos + bytes))
    this.buf.copy(bigger, 0, 0, pos)
    this.buf = bigger
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength)
    this.grown(bigger)
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
    const start = this.head(kind, thread, slot, rid, status, count + (extra === null ? 0 : 1))
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
    this.finish(start, pos)
  }

  /** Writes an op's fixed header where the next op starts (room reserved); returns where. */
  private head(kind: number, thread: number, slot: number, rid: number, status: number, headerCount: number): number {
    const start = this.shared[WRITTEN]
    if (start === 0) this.generation++
    const view = this.view
    this.buf[start + 4] = kind
    this.buf[start + 5] = thread
    view.setUint16(start + 6, status, true)
    view.setUint32(start + 8, slot, true)
    view.setUint32(start + 12, rid, true)
    view.setUint32(start + 16, headerCount, true)
    return start
  }

  /** The op from `start` ends at `end`: its length, what is written, a flush if none is due. */
  private finish(start: number, end: number): void {
    this.view.setUint32(start, end - start, true)
    this.shared[WRITTEN] = end
    if (this.shared[TURN] === 0 && !this.scheduled) {
      this.scheduled = true
      // After the microtasks of this turn: every answer of the turn goes in one call.
      setImmediate(this.flush)
    }
  }

  /**
   * Appends an op with no headers and `body` (a WebSocket message, a topic): the short path
   * for what is sent most. Returns the body's length in bytes; `lastOp` is where the op
   * starts, for `markOp`.
   */
  bodyOp(kind: number, thread: number, slot: number, rid: number, status: number, body: string | Uint8Array | null): number {
    const estimate = OP_HEADER_BYTES + (body === null ? 0 : typeof body === 'string' ? body.length * 3 : body.byteLength)
    this.reserve(estimate)
    const buf = this.buf
    const start = this.head(kind, thread, slot, rid, status, 0)
    let bytes = 0
    if (body !== null) {
      if (typeof body === 'string') bytes = writeUtf8(buf, body, start + OP_HEADER_BYTES)
      else {
        buf.set(body, start + OP_HEADER_BYTES)
        bytes = body.byteLength
      }
    }
    this.lastOp = start
    this.finish(start, start + OP_HEADER_BYTES + bytes)
    return bytes
  }

  /** Where the last `bodyOp` starts. */
  lastOp = 0

  /** Takes the last `bodyOp` back (nothing was written after it). */
  dropLast(): void {
    this.shared[WRITTEN] = this.lastOp
  }

  /** Sets bits in the status of the op at `at` (still in the buffer). */
  markOp(at: number, bits: number): void {
    this.view.setUint16(at + 6, this.view.getUint16(at + 6, true) | bits, true)
  }

  /** Whether ops written in `generation` may still be waiting to be taken. */
  holds(generation: number): boolean {
    return generation === this.generation && this.shared[WRITTEN] !== 0
  }

  readonly flush = (): void => {
    this.scheduled = false
    const written = this.shared[WRITTEN]
    if (written === 0) return
    this.shared[WRITTEN] = 0
    this.send(this.buf.subarray(0, written))
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
