//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans-IO: the handshake check,
//! frame coding, an incremental reader that assembles messages, and per-connection zlib
//! state. The engine owns the sockets and calls in with bytes.

pub(crate) mod conn;
pub(crate) mod deflate;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod reader;
pub(crate) mod topics;
pub(crate) mod utf8;
