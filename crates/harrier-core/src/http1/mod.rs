//! HTTP/1.1 (RFC 9112), sans-IO: parsers and encoders take and give bytes, so every I/O
//! backend shares them and they are tested without sockets.

pub(crate) mod chunked;
pub(crate) mod conn;
pub(crate) mod date;
pub(crate) mod encode;
pub(crate) mod request;
mod status;

pub use status::Status;
