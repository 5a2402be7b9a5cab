// The layouts shared with the engine (crates/harrier-core/src/engine/batch.rs and reply.rs).

export const EVENT_REQUEST = 1
export const EVENT_BODY = 2
export const EVENT_END = 3
export const EVENT_ABORT = 4

export const FLAG_HTTP10 = 1
export const FLAG_HAS_BODY = 2

/** Words of a request event before its headers: kind, rid, slot, route, flags, method off/len, target off/len, path len, header count, param count. */
export const REQUEST_FIXED_WORDS = 12

export const OP_FULL = 1
export const OP_HEAD = 2
export const OP_CHUNK = 3
export const OP_END = 4
/** `res.sendFile`: the body is the path; headers `:option`, `<request-header`, or response headers (see reply.rs). */
export const OP_FILE = 5
export const OP_HEADER_BYTES = 20
