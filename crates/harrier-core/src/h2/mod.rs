//! HTTP/2 over a transport, by the `h2` crate driven by hand from the engine's loop: no
//! runtime, no task per stream. `conn.rs`: how a turn polls it; `dispatch.rs`: what becomes
//! of a new stream (the engine's answers, or the handler); `adapter.rs`: the bytes between the
//! transport and h2; `streams.rs`: what a stream holds; `limits.rs`: the settings and the
//! abuse limits.
//!
//! A stream is a request like an HTTP/1.1 one: it gets its own `rid`, the connection's slot
//! stays the slot, and its events (`REQUEST` flagged `HTTP2`, `BODY`, `END`, `ABORT`) and
//! reply ops are those of HTTP/1.1.

pub(crate) mod adapter;
pub(crate) mod conn;
mod dispatch;
mod head_values;
mod limits;
mod streams;

pub(crate) use head_values::HeadValues;

/// What a client speaking HTTP/2 with prior knowledge sends first.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Http2,
    Http1,
    /// A prefix of the preface: wait for more.
    NeedMore,
}

/// Tells the first bytes of a cleartext connection apart (never called with none).
pub(crate) fn sniff(input: &[u8]) -> Sniffed {
    let n = input.len().min(PREFACE.len());
    if input[..n] != PREFACE[..n] {
        Sniffed::Http1
    } else if n == PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_told_apart_also_in_pieces() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Http1);
        assert_eq!(sniff(b"P"), Sniffed::NeedMore);
        assert_eq!(sniff(b"POST / HTTP/1.1\r\n"), Sniffed::Http1);
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n"), Sniffed::NeedMore);
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Sniffed::Http2);
        assert_eq!(
            sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"),
            Sniffed::Http2
        );
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nXX"), Sniffed::Http1);
    }
}
