//! frame coding, an incremental reader that assembles messages, and per-connection zlib
//! state. The engine owns the sockets and calls in with bytes.
#![allow(dead_code)]

pub(crate) mod frame;
pub(crate) mod utf8;
