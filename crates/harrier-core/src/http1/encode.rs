//! Response serialising: status line, headers the engine owns (date, framing, connection),
//! the handler's headers, and chunked framing for streamed bodies.

use super::Status;

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// HTTP/1.0 clients cannot read chunked: the body ends when the connection closes.
    UntilClose,
    /// 1xx, 204 and 304: no body and no framing header.
    Empty,
}

/// Which `Connection` header, if any, the response needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive11,
    /// HTTP/1.0 client that asked for keep-alive.
    KeepAlive10,
    Close,
}

pub(crate) fn status_line(out: &mut Vec<u8>, status: Status) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = status.0.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the headers the engine owns, then leaves the head open for the handler's headers.
/// `keep_alive` is the whole `keep-alive: timeout=N\r\n` line announcing the idle timeout
/// (rendered once, when the engine starts), written on responses that keep the connection.
pub(crate) fn engine_headers(
    out: &mut Vec<u8>,
    date: &[u8],
    framing: Framing,
    persistence: Persistence,
    keep_alive: &[u8],
) {
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_decimal(out, n as u64);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::UntilClose | Framing::Empty => {}
    }
    match persistence {
        Persistence::KeepAlive11 => out.extend_from_slice(keep_alive),
        Persistence::KeepAlive10 => {
            out.extend_from_slice(b"connection: keep-alive\r\n");
            out.extend_from_slice(keep_alive);
        }
        Persistence::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
}

/// Headers the engine writes itself; a handler's copy would contradict the framing.
pub(crate) fn is_engine_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"connection")
        || name.eq_ignore_ascii_case(b"date")
        || name.eq_ignore_ascii_case(b"keep-alive")
}

/// Appends one handler header; returns false (and writes nothing) if it would break the framing.
pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> bool {
    if !is_token(name) || value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return false;
    }
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    true
}

pub(crate) fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return; // an empty chunk would end the body
    }
    write_hex(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// A complete response with a short text body, for answers the engine gives itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn simple(
    out: &mut Vec<u8>,
    status: Status,
    date: &[u8],
    persistence: Persistence,
    keep_alive: &[u8],
    content_type: &[u8],
    extra: &[(&[u8], &[u8])],
    body: &[u8],
) {
    status_line(out, status);
    engine_headers(
        out,
        date,
        Framing::Length(body.len()),
        persistence,
        keep_alive,
    );
    header(out, b"content-type", content_type);
    for (name, value) in extra {
        header(out, name, value);
    }
    end_head(out);
    out.extend_from_slice(body);
}

fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// The `keep-alive` line for an idle timeout, or nothing when there is none.
pub(crate) fn keep_alive_line(timeout: std::time::Duration) -> Vec<u8> {
    let secs = timeout.as_secs();
    if secs == 0 {
        return Vec::new();
    }
    let mut out = b"keep-alive: timeout=".to_vec();
    write_decimal(&mut out, secs);
    out.extend_from_slice(b"\r\n");
    out
}

/// `n` in decimal, in `buf`.
pub(crate) fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

pub(crate) fn write_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(&mut [0u8; 20], n));
}

fn write_hex(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 16];
    let i = hex_into(&mut buf, n);
    out.extend_from_slice(&buf[i..]);
}

/// Writes `n` in hex at the end of `buf`; returns where it starts.
fn hex_into(buf: &mut [u8; 16], mut n: usize) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    i
}

/// A chunk's size line (`{hex}\r\n`), for a chunk sent in parts (`Transport::send_parts`).
pub(crate) struct ChunkSize {
    buf: [u8; 18],
    start: usize,
}

impl ChunkSize {
    pub fn new(len: usize) -> ChunkSize {
        let mut hex = [0u8; 16];
        let start = hex_into(&mut hex, len);
        let mut buf = [0u8; 18];
        buf[..16].copy_from_slice(&hex);
        buf[16..].copy_from_slice(b"\r\n");
        ChunkSize { buf, start }
    }

    /// A piece of a chunked body as parts: the size line, the data, its CRLF and, when
    /// `last`, the last chunk. Empty data is no chunk (one would end the body).
    pub fn parts<'a>(&'a self, data: &'a [u8], last: bool) -> [&'a [u8]; 3] {
        let end: &[u8] = if last { b"0\r\n\r\n" } else { b"" };
        if data.is_empty() {
            return [end, b"", b""];
        }
        let tail: &[u8] = if last { b"\r\n0\r\n\r\n" } else { b"\r\n" };
        [&self.buf[self.start..], data, tail]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_response() {
        let mut out = Vec::new();
        status_line(&mut out, Status::OK);
        engine_headers(
            &mut out,
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            Framing::Length(5),
            Persistence::KeepAlive11,
            b"keep-alive: timeout=5\r\n",
        );
        assert!(header(&mut out, b"content-type", b"text/plain"));
        end_head(&mut out);
        out.extend_from_slice(b"hello");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 5\r\nkeep-alive: timeout=5\r\ncontent-type: text/plain\r\n\r\nhello"
        );
    }

    #[test]
    fn refuses_header_injection() {
        let mut out = Vec::new();
        assert!(!header(&mut out, b"x", b"a\r\nset-cookie: evil"));
        assert!(!header(&mut out, b"bad name", b"v"));
        assert!(!header(&mut out, b"", b"v"));
        assert!(out.is_empty());
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        chunk(&mut out, &[b'x'; 255]);
        chunk(&mut out, b"");
        last_chunk(&mut out);
        assert!(out.starts_with(b"ff\r\nxxx"));
        assert!(out.ends_with(b"xx\r\n0\r\n\r\n"));
    }

    #[test]
    fn keep_alive_lines() {
        assert_eq!(
            keep_alive_line(std::time::Duration::from_millis(5300)),
            b"keep-alive: timeout=5\r\n"
        );
        assert!(keep_alive_line(std::time::Duration::from_millis(300)).is_empty());
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
