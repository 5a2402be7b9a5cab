//! The request head: parsed with httparse into offsets, so nothing is copied or allocated.

use std::mem::MaybeUninit;

use super::Status;

/// The most header fields a head may be configured to carry; the parser's array has this
/// many slots, left uninitialised, so a higher limit costs nothing per request.
pub(crate) const HARD_MAX_HEADERS: usize = 1024;
/// With a size limit turned off (0), a head is still refused past this many bytes.
pub(crate) const HARD_MAX_HEAD_BYTES: usize = 1 << 20;
/// Room for the method and the version around a request target: a request line without its
/// end is refused with 414 once it is longer than the target limit plus this.
const REQUEST_LINE_SLACK: usize = 64;

/// What a head may hold before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadLimits {
    /// Header fields; past it: 431.
    pub max_headers: usize,
    /// Bytes of the header section (the field lines after the request line); past it: 431.
    pub max_header_bytes: usize,
    /// Bytes of the request target; past it: 414.
    pub max_target: usize,
}

impl HeadLimits {
    /// 0 turns a limit off (up to the hard caps above).
    pub fn new(max_headers: usize, max_header_bytes: usize, max_target: usize) -> HeadLimits {
        let or = |v: usize, cap: usize| if v == 0 { cap } else { v.min(cap) };
        HeadLimits {
            max_headers: or(max_headers, HARD_MAX_HEADERS),
            max_header_bytes: or(max_header_bytes, HARD_MAX_HEAD_BYTES),
            max_target: or(max_target, HARD_MAX_HEAD_BYTES),
        }
    }
}

impl Default for HeadLimits {
    fn default() -> HeadLimits {
        HeadLimits::new(100, 16 * 1024, 8 * 1024)
    }
}

/// How the body of a request is framed (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A byte range into the buffer the head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        Span {
            start: (part.as_ptr() as usize - base.as_ptr() as usize) as u32,
            len: part.len() as u32,
        }
    }
    pub fn slice<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..(self.start + self.len) as usize]
    }
}

/// One parsed request head, as offsets into the bytes it came from.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub method: Span,
    /// Path and query, as sent.
    pub target: Span,
    /// Length of the path part of `target` (up to `?`).
    pub path_len: u32,
    pub http10: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub body: BodyFraming,
    pub headers: Vec<(Span, Span)>,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

impl RequestHead {
    pub fn new() -> RequestHead {
        RequestHead {
            method: Span::default(),
            target: Span::default(),
            path_len: 0,
            http10: false,
            keep_alive: true,
            expect_continue: false,
            body: BodyFraming::None,
            headers: Vec::with_capacity(16),
            len: 0,
        }
    }
}

pub(crate) enum Parse {
    Complete,
    Partial,
}

/// Parses one request head from the start of `buf` into `head` (reused between requests).
///
/// Refuses, with the status to answer: a malformed head, obsolete line folding, whitespace
/// before a field's colon, invalid bytes in names or values (400, by httparse); a missing or
/// repeated `Host` in HTTP/1.1 (400); framing that could be read two ways (400, see
/// `framing`); an unsupported version (505); a coding we do not implement (501); too many
/// fields or too large a header section (431); too long a target (414).
pub(crate) fn parse_head(
    buf: &[u8],
    head: &mut RequestHead,
    limits: &HeadLimits,
) -> Result<Parse, Status> {
    let mut raw: [MaybeUninit<httparse::Header>; HARD_MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; HARD_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req
        .parse_with_uninit_headers(buf, &mut raw[..limits.max_headers.min(HARD_MAX_HEADERS)])
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return check_partial(buf, limits).map(|_| Parse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(Status::HEADERS_TOO_LARGE),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(Status::BAD_REQUEST),
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    if target.is_empty() {
        return Err(Status::BAD_REQUEST);
    }
    if target.len() > limits.max_target {
        return Err(Status::URI_TOO_LONG);
    }
    let line_len = memchr_lf(buf).map_or(len, |i| i + 1);
    if len - line_len > limits.max_header_bytes {
        return Err(Status::HEADERS_TOO_LARGE);
    }
    head.method = Span::of(buf, method.as_bytes());
    head.target = Span::of(buf, target.as_bytes());
    head.path_len = target.find('?').unwrap_or(target.len()) as u32;
    head.http10 = req.version == Some(0);
    head.len = len;
    head.headers.clear();

    let mut keep_alive = !head.http10;
    let mut expect_continue = false;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        head.headers
            .push((Span::of(buf, name), Span::of(buf, value)));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value).ok_or(Status::BAD_REQUEST)?;
            // Several Content-Length fields must agree, or the framing is ambiguous.
            if length.is_some_and(|prev| prev != n) {
                return Err(Status::BAD_REQUEST);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            chunked = transfer_encoding_is_chunked(value, chunked)?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(value, b"close") {
                keep_alive = false;
            } else if has_token(value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    if !head.http10 && hosts != 1 {
        return Err(Status::BAD_REQUEST);
    }
    // HTTP/1.0 has no transfer codings: a sender that uses one anyway cannot be framed safely.
    if head.http10 && transfer_encoding {
        return Err(Status::BAD_REQUEST);
    }
    head.body = match (chunked, length) {
        // Both at once is how requests are smuggled past proxies.
        (true, Some(_)) => return Err(Status::BAD_REQUEST),
        (true, None) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    head.keep_alive = keep_alive;
    head.expect_continue = expect_continue && head.body != BodyFraming::None;
    Ok(Parse::Complete)
}

/// A head not complete yet: refused once it can no longer fit the limits, so that a client
/// cannot make the engine buffer an endless head.
fn check_partial(buf: &[u8], limits: &HeadLimits) -> Result<(), Status> {
    match memchr_lf(buf) {
        None if buf.len() > limits.max_target.saturating_add(REQUEST_LINE_SLACK) => {
            Err(Status::URI_TOO_LONG)
        }
        None => Ok(()),
        Some(i) if i > limits.max_target.saturating_add(REQUEST_LINE_SLACK) => {
            Err(Status::URI_TOO_LONG)
        }
        Some(i) if buf.len() - (i + 1) > limits.max_header_bytes => Err(Status::HEADERS_TOO_LARGE),
        Some(_) => Ok(()),
    }
}

fn memchr_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Whether the first line of a connection, once complete, shows its client does not speak
/// HTTP at all: the line has no `HTTP/` version at its end. (Only the first bytes of a
/// connection are looked at; a malformed request later on gets its 400.)
pub(crate) fn not_http(first: &[u8]) -> bool {
    let Some(end) = memchr_lf(&first[..first.len().min(8192)]) else {
        return false;
    };
    let line = &first[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    !version.starts_with(b"HTTP/")
}

/// 505 only for a well-formed `HTTP/x.y` of another version; anything else is just malformed.
fn version_error(buf: &[u8]) -> Status {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Status::VERSION_NOT_SUPPORTED
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => {
            Status::VERSION_NOT_SUPPORTED
        }
        _ => Status::BAD_REQUEST,
    }
}

fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as u64;
    }
    Some(n)
}

/// RFC 9112 section 6.1, in this order: `chunked` must be the final coding, and only once,
/// or the body's length cannot be known (400, and the connection is closed); with `chunked`
/// last, any coding before it is one we do not decode (501). So `gzip` alone or `chunked,
/// gzip` is 400, `gzip, chunked` is 501.
fn transfer_encoding_is_chunked(value: &[u8], already: bool) -> Result<bool, Status> {
    if already {
        // a second Transfer-Encoding field after one that ended in chunked: chunked twice,
        // or a coding after chunked
        return Err(Status::BAD_REQUEST);
    }
    let mut last: &[u8] = b"";
    let mut codings = 0;
    let mut chunked_before_last = false;
    for coding in value.split(|&b| b == b',') {
        let coding = coding.trim_ascii();
        if coding.is_empty() {
            continue;
        }
        if last.eq_ignore_ascii_case(b"chunked") {
            chunked_before_last = true;
        }
        last = coding;
        codings += 1;
    }
    if !last.eq_ignore_ascii_case(b"chunked") || chunked_before_last {
        Err(Status::BAD_REQUEST)
    } else if codings > 1 {
        Err(Status::NOT_IMPLEMENTED)
    } else {
        Ok(true)
    }
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RequestHead, Status> {
        let mut head = RequestHead::new();
        match parse_head(s.as_bytes(), &mut head, &HeadLimits::default())? {
            Parse::Complete => Ok(head),
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn simple_get() {
        let s = "GET /users/7?q=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        let h = parse(s).unwrap();
        assert_eq!(h.method.slice(s.as_bytes()), b"GET");
        assert_eq!(h.target.slice(s.as_bytes()), b"/users/7?q=1");
        assert_eq!(h.path_len, 8);
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.len, s.len());
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_head() {
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_head(
                b"GET / HTTP/1.1\r\nHost: x\r\n",
                &mut head,
                &HeadLimits::default()
            ),
            Ok(Parse::Partial)
        ));
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn body_framing() {
        let h = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.body, BodyFraming::Length(5));
        let h = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.body, BodyFraming::Chunked);
        let h =
            parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!(h.body, BodyFraming::Length(5));
    }

    #[test]
    fn expect_continue_only_with_body() {
        let h = parse(
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert!(h.expect_continue);
        let h = parse("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!h.expect_continue);
    }

    #[test]
    fn framing_errors() {
        let bad = [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
        ];
        for s in bad {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
        for (te, status) in [
            ("gzip", Status::BAD_REQUEST),
            ("chunked, gzip", Status::BAD_REQUEST),
            ("chunked, chunked", Status::BAD_REQUEST),
            (",", Status::BAD_REQUEST),
            ("gzip, chunked", Status::NOT_IMPLEMENTED),
            ("foo, chunked", Status::NOT_IMPLEMENTED),
        ] {
            let s = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(parse(&s).unwrap_err(), status, "{te}");
        }
        let twice = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(twice).unwrap_err(), Status::BAD_REQUEST);
        assert_eq!(
            parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err(),
            Status::BAD_REQUEST
        );
        for bad in [
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n",
        ] {
            assert_eq!(parse(bad).unwrap_err(), Status::BAD_REQUEST, "{bad:?}");
        }
        assert_eq!(
            parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n").unwrap_err(),
            Status::VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            parse("GET / HTTP/3\r\nHost: x\r\n\r\n").unwrap_err(),
            Status::VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            parse("this is not http\r\n\r\n").unwrap_err(),
            Status::BAD_REQUEST
        );
        assert!(not_http(b"INVALID CONNECTION PREFACE\r\n\r\n"));
        assert!(!not_http(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(
            !not_http(b"GET / HTTP/2.0\r\n"),
            "a version, if not one served: 505"
        );
        assert!(!not_http(b"GET / HTT"), "not a whole line yet");
    }

    #[test]
    fn limits() {
        let limits = HeadLimits::new(3, 64, 16);
        let mut head = RequestHead::new();
        let mut p =
            |s: &[u8]| parse_head(s, &mut head, &limits).map(|r| matches!(r, Parse::Complete));
        assert_eq!(
            p(b"GET /0123456789abcde HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(true)
        );
        assert_eq!(
            p(b"GET /0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(Status::URI_TOO_LONG)
        );
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"),
            Ok(true)
        );
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(Status::HEADERS_TOO_LARGE)
        );
        let long = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n", "a".repeat(60));
        assert_eq!(p(long.as_bytes()), Err(Status::HEADERS_TOO_LARGE));
        // partial heads are refused as soon as they cannot fit
        assert_eq!(
            p(format!("GET /{}", "a".repeat(100)).as_bytes()),
            Err(Status::URI_TOO_LONG)
        );
        assert_eq!(
            p(format!("GET / HTTP/1.1\r\nA: {}", "a".repeat(70)).as_bytes()),
            Err(Status::HEADERS_TOO_LARGE)
        );
        assert_eq!(p(b"GET / HTTP/1.1\r\nA: 1"), Ok(false));
    }
}
