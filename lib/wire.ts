// The layouts shared with the engine (crates/harrier-core/src/engine/batch.rs and reply.rs).

export const EVENT_REQUEST = 1
export const EVENT_BODY = 2
export const EVENT_END = 3
export const EVENT_ABORT = 4
/** id, slot, client address off/len, chosen subprotocol index + 1 (0: none) */
export const EVENT_WS_OPEN = 5
/** id, slot, kind (WS_TEXT, WS_BINARY_MESSAGE, WS_ASCII), off, len */
export const EVENT_WS_MESSAGE = 6
export const WS_TEXT = 0
export const WS_BINARY_MESSAGE = 1
/** Text that is all ASCII: a Latin-1 slice makes its string, no UTF-8 decode. */
export const WS_ASCII = 2
/** id, slot, code, reason off/len */
export const EVENT_WS_CLOSE = 7
/** id, slot, bytes unsent */
export const EVENT_WS_DRAIN = 8
/** rid, slot, bytes unsent: a streamed response fell back under the high-water mark */
export const EVENT_DRAIN = 9

export const FLAG_HTTP10 = 1
export const FLAG_HAS_BODY = 2
/** A valid WebSocket handshake: accept it with an `UPGRADE` op, or answer to refuse it. */
export const FLAG_UPGRADE = 4
/** The request came over TLS. */
export const FLAG_SECURE = 8
/** The request is an HTTP/2 stream. */
export const FLAG_HTTP2 = 16
/** Two more words follow the request's params: the client's address (text) off/len. */
export const FLAG_PEER = 32

/** Words of a request event before its headers: kind, rid, slot, route, flags, method off/len, target off/len, path len, header count, param count. */
export const REQUEST_FIXED_WORDS = 12

/** The words of the request event at `at`: fixed, headers, params and the peer's span. */
export function requestWords(meta: Uint32Array, at: number): number {
  return REQUEST_FIXED_WORDS + meta[at + 10] * 4 + meta[at + 11] * 2 + (meta[at + 4] & FLAG_PEER ? 2 : 0)
}

export const OP_FULL = 1
export const OP_HEAD = 2
export const OP_CHUNK = 3
export const OP_END = 4
/** `res.sendFile`: the body is the path; headers `:option`, `<request-header`, or response headers (see reply.rs). */
export const OP_FILE = 5
export const OP_UPGRADE = 6
/** status: WS_BINARY | WS_COMPRESS | WS_WANT_DRAIN; body: the message */
export const OP_WS_SEND = 7
/** status: the close code (0: drop without a close frame); body: the reason */
export const OP_WS_CLOSE = 8
export const OP_WS_SUBSCRIBE = 9
export const OP_WS_UNSUBSCRIBE = 10
/** one header whose name is the topic; body: the message; to every thread */
export const OP_WS_PUBLISH = 11
/** body: 4 bytes little-endian, request body bytes the handler took */
export const OP_CONSUMED = 12
/** body: 4 bytes little-endian, milliseconds: the engine writes a comment line into a quiet event stream */
export const OP_HEARTBEAT = 13
/** in a CHUNK's status: tell (EVENT_DRAIN) when the response falls back under the high-water mark */
export const CHUNK_WANT_DRAIN = 1
export const WS_BINARY = 1
export const WS_COMPRESS = 2
export const WS_WANT_DRAIN = 4
export const ALL_THREADS = 0xff
export const OP_HEADER_BYTES = 20
