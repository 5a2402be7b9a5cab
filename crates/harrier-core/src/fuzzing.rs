//! The sans-IO parsers, reachable from outside the crate for the fuzz targets and the property
//! tests only: owned results, allocation allowed. Not part of the engine's API.

use crate::http1::chunked::{Chunk, ChunkedDecoder};
use crate::http1::request::{self, BodyFraming, HeadLimits, Parse, RequestHead};

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// One parsed head, copied out of the bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub path_len: usize,
    pub http10: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub framing: Framing,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of the head, blank line included.
    pub len: usize,
}

/// The engine's default limits: 100 fields, 16 KiB of header section, 8 KiB of target.
pub fn default_limits() -> (usize, usize, usize) {
    (100, 16 * 1024, 8 * 1024)
}

fn head_of(buf: &[u8], h: &RequestHead) -> Head {
    Head {
        method: h.method.slice(buf).to_vec(),
        target: h.target.slice(buf).to_vec(),
        path_len: h.path_len as usize,
        http10: h.http10,
        keep_alive: h.keep_alive,
        expect_continue: h.expect_continue,
        framing: match h.body {
            BodyFraming::None => Framing::None,
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked,
        },
        headers: h
            .headers
            .iter()
            .map(|(n, v)| (n.slice(buf).to_vec(), v.slice(buf).to_vec()))
            .collect(),
        len: h.len,
    }
}

/// Parses a head from the start of `buf` with the default limits: `Ok(None)` if more bytes
/// are needed, `Err(status)` if it is refused.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, u16> {
    let (count, size, target) = default_limits();
    parse_head_with(buf, count, size, target)
}

pub fn parse_head_with(
    buf: &[u8],
    max_headers: usize,
    max_header_bytes: usize,
    max_target: usize,
) -> Result<Option<Head>, u16> {
    let mut head = RequestHead::new();
    match request::parse_head(
        buf,
        &mut head,
        &HeadLimits::new(max_headers, max_header_bytes, max_target),
    ) {
        Ok(Parse::Complete) => Ok(Some(head_of(buf, &head))),
        Ok(Parse::Partial) => Ok(None),
        Err(status) => Err(status.0),
    }
}

/// What decoding a chunked body found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// The body, and how many input bytes followed its end.
    Complete {
        body: Vec<u8>,
        left: usize,
    },
    /// The input ended before the body did; the body so far.
    Incomplete {
        body: Vec<u8>,
    },
    Refused(u16),
}

/// Decodes a chunked body from `input`, handed to the decoder in pieces cut at `cuts`
/// (positions, in any order; out of range ones are ignored).
pub fn decode_chunked(input: &[u8], cuts: &[usize]) -> Chunked {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < input.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(input.len());
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut pos = 0;
    for end in cuts {
        while pos < end {
            match decoder.decode(&input[pos..end]) {
                Ok((Chunk::Data { start, len }, used)) => {
                    body.extend_from_slice(&input[pos + start..pos + start + len]);
                    pos += used;
                }
                Ok((Chunk::End, used)) => {
                    return Chunked::Complete {
                        body,
                        left: input.len() - (pos + used),
                    }
                }
                Ok((Chunk::NeedMore, used)) => {
                    assert_eq!(
                        pos + used,
                        end,
                        "the decoder said it needs more with input left"
                    );
                    pos = end;
                }
                Err(status) => return Chunked::Refused(status.0),
            }
        }
    }
    Chunked::Incomplete { body }
}

/// One request read from a stream: its head and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: Head,
    pub body: Vec<u8>,
}

enum State {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Reads pipelined requests from bytes arriving in any pieces, framing bodies the way a
/// connection does: a head, then `Content-Length` bytes or a chunked body, then the next head.
pub struct RequestStream {
    buf: Vec<u8>,
    state: State,
    limits: HeadLimits,
    head: RequestHead,
    pub requests: Vec<Request>,
    /// Requests whose body has not ended yet are still in `requests`, flagged here.
    pub in_body: bool,
}

impl Default for RequestStream {
    fn default() -> RequestStream {
        RequestStream::new()
    }
}

impl RequestStream {
    pub fn new() -> RequestStream {
        RequestStream {
            buf: Vec::new(),
            state: State::Head,
            limits: HeadLimits::default(),
            head: RequestHead::new(),
            requests: Vec::new(),
            in_body: false,
        }
    }

    /// Takes the next bytes; `Err(status)` if the stream is refused (nothing more is read).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), u16> {
        self.buf.extend_from_slice(bytes);
        loop {
            match &mut self.state {
                State::Head => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    match request::parse_head(&self.buf, &mut self.head, &self.limits) {
                        Ok(Parse::Complete) => {
                            let head = head_of(&self.buf, &self.head);
                            self.buf.drain(..head.len);
                            self.state = match head.framing {
                                Framing::None => State::Head,
                                Framing::Length(n) => State::Length(n),
                                Framing::Chunked => State::Chunked(ChunkedDecoder::new()),
                            };
                            self.in_body = !matches!(self.state, State::Head);
                            self.requests.push(Request {
                                head,
                                body: Vec::new(),
                            });
                        }
                        Ok(Parse::Partial) => return Ok(()),
                        Err(status) => return Err(status.0),
                    }
                }
                State::Length(left) => {
                    let n = (*left).min(self.buf.len() as u64) as usize;
                    *left -= n as u64;
                    let done = *left == 0;
                    self.requests
                        .last_mut()
                        .unwrap()
                        .body
                        .extend(self.buf.drain(..n));
                    if !done {
                        return Ok(());
                    }
                    self.state = State::Head;
                    self.in_body = false;
                }
                State::Chunked(decoder) => match decoder.decode(&self.buf) {
                    Ok((Chunk::Data { start, len }, used)) => {
                        let data = self.buf[start..start + len].to_vec();
                        self.requests
                            .last_mut()
                            .unwrap()
                            .body
                            .extend_from_slice(&data);
                        self.buf.drain(..used);
                    }
                    Ok((Chunk::End, used)) => {
                        self.buf.drain(..used);
                        self.state = State::Head;
                        self.in_body = false;
                    }
                    Ok((Chunk::NeedMore, used)) => {
                        self.buf.drain(..used);
                        return Ok(());
                    }
                    Err(status) => return Err(status.0),
                },
            }
        }
    }
}

/// The hot-path parsers and encoder as the engine runs them (no copies, state reused), for
/// `cargo bench` to measure.
pub mod hot {
    use crate::http1::chunked::{Chunk, ChunkedDecoder};
    use crate::http1::encode::{self, Framing, Persistence};
    use crate::http1::request::{self, HeadLimits, Parse, RequestHead};
    use crate::http1::Status;

    /// Parses heads into one reused record, as an I/O thread does.
    pub struct HeadParser {
        head: RequestHead,
        limits: HeadLimits,
    }

    impl Default for HeadParser {
        fn default() -> HeadParser {
            let (count, size, target) = super::default_limits();
            HeadParser {
                head: RequestHead::new(),
                limits: HeadLimits::new(count, size, target),
            }
        }
    }

    impl HeadParser {
        /// The length of the head at the start of `buf` (0 if incomplete), or the refusal status.
        pub fn parse(&mut self, buf: &[u8]) -> Result<usize, u16> {
            match request::parse_head(buf, &mut self.head, &self.limits) {
                Ok(Parse::Complete) => Ok(self.head.len),
                Ok(Parse::Partial) => Ok(0),
                Err(status) => Err(status.0),
            }
        }
    }

    /// Parses every head in `input` (pipelined, no bodies) and encodes each into one batch,
    /// as an I/O thread does for one read; returns the batch's (bytes, words).
    pub fn batch_heads(parser: &mut HeadParser, input: &[u8]) -> (usize, usize) {
        let mut batch = crate::engine::batch::BatchBuilder::new(0);
        let mut pos = 0;
        let mut rid = 0;
        while pos < input.len() {
            let Ok(Parse::Complete) =
                request::parse_head(&input[pos..], &mut parser.head, &parser.limits)
            else {
                break;
            };
            rid += 1;
            batch.request(rid, 0, 0, &input[pos..], &parser.head, &[], 0, None);
            pos += parser.head.len;
        }
        let taken = batch.take();
        (taken.bytes.len(), taken.meta.len())
    }

    /// Decodes a whole chunked body; returns the number of body bytes.
    pub fn decode_chunked(mut input: &[u8]) -> Result<usize, u16> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = 0;
        loop {
            let (chunk, used) = decoder.decode(input).map_err(|s| s.0)?;
            match chunk {
                Chunk::Data { len, .. } => body += len,
                Chunk::End | Chunk::NeedMore => return Ok(body),
            }
            input = &input[used..];
        }
    }

    /// Serialises a response with a length-framed body, as the engine does for a handler's answer.
    pub fn encode_response(
        out: &mut Vec<u8>,
        status: u16,
        date: &[u8],
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        encode::status_line(out, Status(status));
        encode::engine_headers(
            out,
            date,
            Framing::Length(body.len()),
            Persistence::KeepAlive11,
            b"",
        );
        for (name, value) in headers {
            encode::header(out, name, value);
        }
        encode::end_head(out);
        out.extend_from_slice(body);
    }
}
