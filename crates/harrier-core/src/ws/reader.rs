//! Reading a client's frames (RFC 6455 section 5) and assembling them into messages:
//! fragmentation, control frames between fragments, permessage-deflate, UTF-8 of text as it
//! arrives, size limits from the header before anything is buffered.
//!
//! A whole unfragmented, uncompressed frame found in the input is handed out where it lies,
//! unmasked in place. Anything else is gathered in the reader's message buffer, which is
//! allocated for that message and freed once it is delivered, so an idle reader holds nothing.

use super::deflate::{InflateError, Inflater};
use super::frame::{self, CLOSE, CONTINUATION, MAX_CONTROL_PAYLOAD, PING, PONG, TEXT};
use super::utf8::Utf8Validator;

/// A complete message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A whole message, valid UTF-8.
    Text(&'a [u8]),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// `code` is 1005 when the frame had no payload; `reason` is valid UTF-8.
    Close {
        code: u16,
        reason: &'a [u8],
    },
}

/// Why the connection must fail: the engine sends a close with `code` and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail {
    /// 1002 protocol error, 1007 bad UTF-8 or bad compressed data, 1009 too big.
    pub code: u16,
    pub reason: &'static str,
}

pub(crate) const PROTOCOL_ERROR: u16 = 1002;
pub(crate) const INVALID_DATA: u16 = 1007;
pub(crate) const TOO_BIG: u16 = 1009;

fn protocol_error(reason: &'static str) -> Fail {
    Fail {
        code: PROTOCOL_ERROR,
        reason,
    }
}

const BAD_UTF8: Fail = Fail {
    code: INVALID_DATA,
    reason: "invalid UTF-8 in text",
};
const MESSAGE_TOO_BIG: Fail = Fail {
    code: TOO_BIG,
    reason: "message too big",
};

/// Codes an endpoint may send (section 7.4 and the IANA registry, which added 1012-1014).
/// 1004-1006 and 1015 are reserved for local use and never on the wire.
pub(crate) fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes read so far: the mask's phase for the next piece.
    read: usize,
    remaining: usize,
}

/// The data message being assembled.
#[derive(Debug, Clone, Copy)]
struct Message {
    text: bool,
    compressed: bool,
}

pub(crate) struct Reader {
    /// Bytes of one reassembled message, after inflation.
    max_payload: usize,
    inflater: Option<Inflater>,
    frame: Option<Frame>,
    message: Option<Message>,
    /// The message so far (inflated), when it is not handed out in place.
    buffer: Vec<u8>,
    utf8: Utf8Validator,
    /// A control frame's payload, when it arrives in pieces (rare: allocated then only, and
    /// let go after, so that an idle socket carries no 125-byte buffer).
    control: Vec<u8>,
    /// After a close or a failure nothing more is read.
    done: bool,
}

impl Reader {
    /// `inflater` is `Some` when permessage-deflate was negotiated.
    pub fn new(max_payload: usize, inflater: Option<Inflater>) -> Reader {
        Reader {
            max_payload,
            inflater,
            frame: None,
            message: None,
            buffer: Vec::new(),
            utf8: Utf8Validator::new(),
            control: Vec::new(),
            done: false,
        }
    }

    /// Consumes frames from `input` (mutable: payloads are unmasked in place), calling
    /// `on_event` for each complete message or control frame, in order. Returns how many bytes
    /// it consumed; the caller keeps the rest (an incomplete frame header, at most 13 bytes)
    /// and calls again with it followed by what arrives next. Payload bytes are always
    /// consumed as they come. After a `Fail` or a `Close` event nothing more is consumed:
    /// later calls return `Ok(0)`.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<usize, Fail> {
        let mut pos = 0;
        while !self.done {
            let step = if self.frame.is_some() {
                self.payload(input, pos, on_event)
            } else {
                self.header(input, pos, on_event)
            };
            match step {
                Ok(Some(next)) => pos = next,
                Ok(None) => break,
                Err(fail) => {
                    self.done = true;
                    self.message = None;
                    self.frame = None;
                    self.buffer = Vec::new();
                    return Err(fail);
                }
            }
        }
        Ok(pos)
    }

    /// No partial message or frame, and no message buffer held.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.frame.is_none() && self.message.is_none() && self.buffer.capacity() == 0
    }

    /// Heap held: the message buffer, and the inflater's zlib state if any.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.buffer.capacity()
            + self.control.capacity()
            + self.inflater.as_ref().map_or(0, Inflater::heap_bytes)
    }

    /// Drops the inflater's zlib state between messages when the client does not take
    /// context over (it is made again on the next compressed message). For idle connections.
    pub fn release_inflater(&mut self) {
        if let Some(inflater) = &mut self.inflater {
            if self.message.is_none() && inflater.no_context_takeover() {
                inflater.release();
            }
        }
    }

    /// Reads a frame header at `pos`: `None` if it is not all there yet.
    fn header(
        &mut self,
        input: &mut [u8],
        pos: usize,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<usize>, Fail> {
        let rest = &input[pos..];
        if rest.len() < 2 {
            return Ok(None);
        }
        // fail on what the first two bytes show, without waiting for the rest of the header
        self.check_start(rest[0], rest[1])?;
        let Some(h) = frame::parse_header(rest) else {
            return Ok(None);
        };
        if h.payload_len >> 63 != 0 {
            return Err(protocol_error("frame length has its top bit set"));
        }
        let opcode = h.opcode;
        let mask = h.mask.expect("checked by check_start");
        let start = pos + h.header_len;
        let available = input.len() - start;

        if frame::is_control(opcode) {
            let len = h.payload_len as usize;
            if available >= len {
                let payload = &mut input[start..start + len];
                frame::unmask(payload, mask, 0);
                self.done |= control_event(opcode, payload, on_event)?;
                return Ok(Some(start + len));
            }
            self.control.clear();
            self.frame = Some(Frame {
                opcode,
                fin: true,
                mask,
                read: 0,
                remaining: len,
            });
            return Ok(Some(start));
        }

        let message = match self.message {
            Some(m) => m,
            None => Message {
                text: opcode == TEXT,
                compressed: h.rsv1,
            },
        };
        // compressed frames are bounded after inflation, as their bytes arrive
        if !message.compressed && self.buffer.len() as u64 + h.payload_len > self.max_payload as u64
        {
            return Err(MESSAGE_TOO_BIG);
        }
        let len = usize::try_from(h.payload_len).map_err(|_| MESSAGE_TOO_BIG)?;
        if h.fin && opcode != CONTINUATION && !message.compressed && available >= len {
            // the common case: the whole message is here, hand it out in place
            let payload = &mut input[start..start + len];
            frame::unmask(payload, mask, 0);
            if message.text {
                if simdutf8::basic::from_utf8(payload).is_err() {
                    return Err(BAD_UTF8);
                }
                on_event(Event::Text(payload));
            } else {
                on_event(Event::Binary(payload));
            }
            return Ok(Some(start + len));
        }
        self.message = Some(message);
        self.frame = Some(Frame {
            opcode,
            fin: h.fin,
            mask,
            read: 0,
            remaining: len,
        });
        Ok(Some(start))
    }

    /// The checks that the first two header bytes allow.
    fn check_start(&self, b0: u8, b1: u8) -> Result<(), Fail> {
        let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0F);
        if b0 & 0x30 != 0 {
            return Err(protocol_error("reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return Err(protocol_error("client frame not masked"));
        }
        match opcode {
            CLOSE | PING | PONG => {
                if !fin {
                    return Err(protocol_error("fragmented control frame"));
                }
                if b1 & 0x7F > MAX_CONTROL_PAYLOAD as u8 {
                    return Err(protocol_error("control frame over 125 bytes"));
                }
                if rsv1 {
                    return Err(protocol_error("RSV1 on a control frame"));
                }
            }
            CONTINUATION => {
                if self.message.is_none() {
                    return Err(protocol_error("continuation frame without a message"));
                }
                if rsv1 {
                    return Err(protocol_error("RSV1 on a continuation frame"));
                }
            }
            frame::TEXT | frame::BINARY => {
                if self.message.is_some() {
                    return Err(protocol_error("new message before the last one ended"));
                }
                if rsv1 && self.inflater.is_none() {
                    return Err(protocol_error("RSV1 without permessage-deflate"));
                }
            }
            _ => return Err(protocol_error("unknown opcode")),
        }
        Ok(())
    }

    /// Reads payload bytes of the current frame at `pos`: `None` if none are there.
    fn payload(
        &mut self,
        input: &mut [u8],
        pos: usize,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<usize>, Fail> {
        let mut f = self.frame.expect("payload without a frame");
        let n = f.remaining.min(input.len() - pos);
        if n == 0 && f.remaining > 0 {
            return Ok(None);
        }
        let piece = &mut input[pos..pos + n];
        frame::unmask(piece, f.mask, f.read);
        f.read += n;
        f.remaining -= n;
        if frame::is_control(f.opcode) {
            self.control.extend_from_slice(piece);
        } else {
            self.data(piece)?;
        }
        if f.remaining > 0 {
            self.frame = Some(f);
            return Ok(Some(pos + n));
        }
        self.frame = None;
        if frame::is_control(f.opcode) {
            let control = std::mem::take(&mut self.control);
            self.done |= control_event(f.opcode, &control, on_event)?;
        } else if f.fin {
            self.end_message(on_event)?;
        }
        Ok(Some(pos + n))
    }

    /// Adds a piece of a data frame's payload (unmasked) to the message.
    fn data(&mut self, piece: &[u8]) -> Result<(), Fail> {
        let message = self.message.expect("data without a message");
        if message.compressed {
            let before = self.buffer.len();
            let inflater = self
                .inflater
                .as_mut()
                .expect("compressed without an inflater");
            inflater
                .inflate_part(piece, &mut self.buffer, self.max_payload)
                .map_err(inflate_fail)?;
            if message.text && self.utf8.feed(&self.buffer[before..]).is_err() {
                return Err(BAD_UTF8);
            }
        } else {
            // validate before copying: a bad fragment fails the moment it arrives
            if message.text && self.utf8.feed(piece).is_err() {
                return Err(BAD_UTF8);
            }
            self.buffer.extend_from_slice(piece);
        }
        Ok(())
    }

    fn end_message(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), Fail> {
        let message = self.message.take().expect("end of a message never begun");
        if message.compressed {
            let before = self.buffer.len();
            let inflater = self
                .inflater
                .as_mut()
                .expect("compressed without an inflater");
            inflater
                .finish_message(&mut self.buffer, self.max_payload)
                .map_err(inflate_fail)?;
            if message.text && self.utf8.feed(&self.buffer[before..]).is_err() {
                return Err(BAD_UTF8);
            }
        }
        if message.text && self.utf8.finish().is_err() {
            return Err(BAD_UTF8);
        }
        // the buffer goes with the message, so that an idle reader holds no heap
        let payload = std::mem::take(&mut self.buffer);
        if message.text {
            on_event(Event::Text(&payload));
        } else {
            on_event(Event::Binary(&payload));
        }
        Ok(())
    }
}

fn inflate_fail(e: InflateError) -> Fail {
    match e {
        InflateError::TooBig => MESSAGE_TOO_BIG,
        InflateError::Corrupt => Fail {
            code: INVALID_DATA,
            reason: "invalid compressed data",
        },
    }
}

/// Delivers a control frame; true if it was a close, after which nothing more is read.
fn control_event(
    opcode: u8,
    payload: &[u8],
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<bool, Fail> {
    match opcode {
        PING => on_event(Event::Ping(payload)),
        PONG => on_event(Event::Pong(payload)),
        _ => {
            let (code, reason) = match payload {
                [] => (1005, &[][..]),
                [_] => return Err(protocol_error("close payload of one byte")),
                [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
            };
            if !payload.is_empty() && !is_valid_close_code(code) {
                return Err(protocol_error("invalid close code"));
            }
            if simdutf8::basic::from_utf8(reason).is_err() {
                return Err(Fail {
                    code: INVALID_DATA,
                    reason: "invalid UTF-8 in close reason",
                });
            }
            on_event(Event::Close { code, reason });
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::super::deflate::{DeflateParams, Deflater};
    use super::super::frame::BINARY;
    use super::*;

    const MASK: [u8; 4] = [0x11, 0x7E, 0xA3, 0x05];

    /// A client frame: `b0` is FIN/RSV/opcode; the payload is masked here.
    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::write_header(
            &mut out,
            b0 & 0x0F,
            b0 & 0x80 != 0,
            b0 & 0x40 != 0,
            payload.len(),
        );
        out[0] = b0;
        out[1] |= 0x80;
        out.extend_from_slice(&MASK);
        let start = out.len();
        out.extend_from_slice(payload);
        frame::unmask(&mut out[start..], MASK, 0);
        out
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Text(Vec<u8>),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(u16, Vec<u8>),
    }

    fn own(e: Event<'_>) -> Owned {
        match e {
            Event::Text(p) => Owned::Text(p.to_vec()),
            Event::Binary(p) => Owned::Binary(p.to_vec()),
            Event::Ping(p) => Owned::Ping(p.to_vec()),
            Event::Pong(p) => Owned::Pong(p.to_vec()),
            Event::Close { code, reason } => Owned::Close(code, reason.to_vec()),
        }
    }

    /// Feeds `wire` in pieces of `piece` bytes as an engine would: keeping what was not
    /// consumed and putting it before the next read.
    fn feed_in_pieces(
        reader: &mut Reader,
        wire: &[u8],
        piece: usize,
    ) -> (Vec<Owned>, Option<Fail>) {
        let mut events = Vec::new();
        let mut pending = Vec::new();
        for chunk in wire.chunks(piece.max(1)) {
            pending.extend_from_slice(chunk);
            match reader.feed(&mut pending, &mut |e| events.push(own(e))) {
                Ok(n) => {
                    pending.drain(..n);
                    assert!(
                        pending.len() < frame::MAX_HEADER_LEN,
                        "left {} bytes",
                        pending.len()
                    );
                }
                Err(f) => return (events, Some(f)),
            }
        }
        (events, None)
    }

    fn run(wire: &[u8]) -> (Vec<Owned>, Option<Fail>) {
        run_with(Reader::new(1 << 20, None), wire)
    }

    /// One shot, then byte at a time, then in pieces of 7: all must agree.
    fn run_with(reader: Reader, wire: &[u8]) -> (Vec<Owned>, Option<Fail>) {
        let max = reader.max_payload;
        let params = reader.inflater.is_some();
        let fresh = || {
            Reader::new(
                max,
                if params {
                    Some(Inflater::new(&DeflateParams::default_params()))
                } else {
                    None
                },
            )
        };
        let mut one = reader;
        let whole = feed_in_pieces(&mut one, wire, wire.len());
        for piece in [1, 7] {
            let mut r = fresh();
            let got = feed_in_pieces(&mut r, wire, piece);
            assert_eq!(got, whole, "pieces of {piece}");
        }
        whole
    }

    fn code(wire: &[u8]) -> Option<u16> {
        run(wire).1.map(|f| f.code)
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    #[test]
    fn single_frames_of_each_length_form() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let (events, fail) = run(&client_frame(0x81, &payload));
            assert_eq!(fail, None);
            assert_eq!(events, [Owned::Text(payload.clone())], "len {len}");
            let (events, _) = run(&client_frame(0x82, &payload));
            assert_eq!(events, [Owned::Binary(payload)], "len {len}");
        }
    }

    #[test]
    fn whole_frame_is_handed_out_in_place() {
        let mut wire = client_frame(0x82, b"in place");
        let mut reader = Reader::new(100, None);
        let mut at = None;
        let n = reader
            .feed(&mut wire, &mut |e| {
                if let Event::Binary(p) = e {
                    at = Some(p.as_ptr() as usize);
                }
            })
            .unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(at, Some(wire.as_ptr() as usize + 6));
        assert!(reader.is_idle() && reader.heap_bytes() == 0);
    }

    #[test]
    fn unmasked_client_frame_fails() {
        assert_eq!(code(&[0x81, 0x02, b'h', b'i']), Some(1002));
        // known from two bytes, before the rest arrives
        let mut r = Reader::new(100, None);
        assert_eq!(
            r.feed(&mut [0x82, 0x7E], &mut |_| {}).unwrap_err().code,
            1002
        );
    }

    #[test]
    fn fragments_with_a_ping_between() {
        let wire = cat(&[
            client_frame(0x01, b"Hel"),
            client_frame(0x89, b"ping!"),
            client_frame(0x00, b"lo, "),
            client_frame(0x8A, b""),
            client_frame(0x80, b"world"),
        ]);
        let (events, fail) = run(&wire);
        assert_eq!(fail, None);
        assert_eq!(
            events,
            [
                Owned::Ping(b"ping!".to_vec()),
                Owned::Pong(vec![]),
                Owned::Text(b"Hello, world".to_vec())
            ]
        );
        // and the buffer went with the message
        let mut r = Reader::new(1 << 20, None);
        let (_, fail) = feed_in_pieces(&mut r, &wire, 3);
        assert_eq!(fail, None);
        assert!(r.is_idle() && r.heap_bytes() == 0);
    }

    #[test]
    fn empty_fragments_and_messages() {
        let wire = cat(&[
            client_frame(0x02, b""),
            client_frame(0x00, b""),
            client_frame(0x80, b""),
            client_frame(0x81, b""),
        ]);
        assert_eq!(
            run(&wire),
            (vec![Owned::Binary(vec![]), Owned::Text(vec![])], None)
        );
    }

    #[test]
    fn partial_message_is_not_idle() {
        let mut r = Reader::new(100, None);
        let mut wire = client_frame(0x01, b"abc");
        r.feed(&mut wire, &mut |_| panic!("no event yet")).unwrap();
        assert!(!r.is_idle());
        assert!(r.heap_bytes() >= 3);
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_fragment() {
        // "κόσμε" then a surrogate split across fragments; the third fragment never matters
        let wire = cat(&[
            client_frame(0x01, "κόσμε".as_bytes()),
            client_frame(0x00, b"\xED"),
            client_frame(0x00, b"\xA0\x80"),
            client_frame(0x80, b"ok"),
        ]);
        let mut events = Vec::new();
        let mut r = Reader::new(100, None);
        let first_two =
            client_frame(0x01, "κόσμε".as_bytes()).len() + client_frame(0x00, b"\xED").len();
        let mut head = wire[..first_two].to_vec();
        assert_eq!(
            r.feed(&mut head, &mut |e| events.push(own(e))),
            Ok(first_two)
        );
        let mut third = client_frame(0x00, b"\xA0\x80");
        assert_eq!(
            r.feed(&mut third, &mut |e| events.push(own(e)))
                .unwrap_err()
                .code,
            1007
        );
        assert!(events.is_empty());
        assert_eq!(code(&wire), Some(1007));
        // in one unfragmented frame, fed in pieces: fails before the frame's end arrives
        let frame = client_frame(0x81, b"abc\xF4\x90\x80\x80defghij");
        let mut r = Reader::new(100, None);
        let mut first = frame[..6 + 5].to_vec();
        assert_eq!(r.feed(&mut first, &mut |_| {}).unwrap_err().code, 1007);
        // incomplete at the end of the message
        assert_eq!(
            code(&cat(&[
                client_frame(0x01, b"ok"),
                client_frame(0x80, b"\xE2\x82")
            ])),
            Some(1007)
        );
        assert_eq!(code(&client_frame(0x81, b"\xC0\xAF")), Some(1007));
    }

    #[test]
    fn protocol_errors() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("rsv2", client_frame(0xA1, b"x")),
            ("rsv3", client_frame(0x91, b"x")),
            ("rsv1 without deflate", client_frame(0xC1, b"x")),
            ("opcode 3", client_frame(0x83, b"")),
            ("opcode 7", client_frame(0x87, b"")),
            ("opcode 11", client_frame(0x8B, b"")),
            ("opcode 15", client_frame(0x8F, b"")),
            ("fragmented ping", client_frame(0x09, b"")),
            ("ping of 126", client_frame(0x89, &[0; 126])),
            ("continuation first", client_frame(0x80, b"x")),
            (
                "text inside text",
                cat(&[client_frame(0x01, b"a"), client_frame(0x81, b"b")]),
            ),
            (
                "binary inside text",
                cat(&[client_frame(0x01, b"a"), client_frame(0x02, b"b")]),
            ),
            ("close of one byte", client_frame(0x88, &[3])),
            (
                "top bit of length",
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            ),
        ];
        for (name, wire) in cases {
            assert_eq!(code(wire), Some(1002), "{name}");
        }
    }

    #[test]
    fn too_big_from_the_header_alone() {
        let mut r = Reader::new(1000, None);
        // a 1001-byte frame's header, none of its payload
        let mut header = client_frame(0x82, &[0; 1001])[..8].to_vec();
        assert_eq!(r.feed(&mut header, &mut |_| {}).unwrap_err().code, 1009);
        assert_eq!(r.heap_bytes(), 0);
        // across fragments
        let mut r = Reader::new(1000, None);
        let mut wire = cat(&[client_frame(0x02, &[0; 600]), client_frame(0x80, &[0; 401])]);
        assert_eq!(r.feed(&mut wire, &mut |_| {}).unwrap_err().code, 1009);
        // exactly the limit is fine
        let r = Reader::new(1000, None);
        assert_eq!(
            run_with(
                r,
                &cat(&[client_frame(0x02, &[0; 600]), client_frame(0x80, &[0; 400])])
            )
            .1,
            None
        );
    }

    #[test]
    fn nothing_after_close_or_fail() {
        let mut wire = cat(&[
            client_frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']),
            client_frame(0x81, b"late"),
        ]);
        let close_len = 6 + 5;
        let mut events = Vec::new();
        let mut r = Reader::new(100, None);
        assert_eq!(
            r.feed(&mut wire, &mut |e| events.push(own(e))),
            Ok(close_len)
        );
        assert_eq!(events, [Owned::Close(1000, b"bye".to_vec())]);
        assert_eq!(
            r.feed(&mut wire[close_len..], &mut |_| panic!("after close")),
            Ok(0)
        );

        let mut r = Reader::new(100, None);
        assert!(r.feed(&mut [0x81, 0x01, b'x'], &mut |_| {}).is_err());
        assert_eq!(
            r.feed(&mut client_frame(0x81, b"x"), &mut |_| panic!("after fail")),
            Ok(0)
        );
    }

    #[test]
    fn close_payloads() {
        let close = |payload: &[u8]| run(&client_frame(0x88, payload));
        assert_eq!(close(b""), (vec![Owned::Close(1005, vec![])], None));
        for valid in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert_eq!(
                close(&valid.to_be_bytes()),
                (vec![Owned::Close(valid, vec![])], None),
                "{valid}"
            );
        }
        for invalid in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                close(&invalid.to_be_bytes()).1.map(|f| f.code),
                Some(1002),
                "{invalid}"
            );
        }
        let mut with_reason = 1000u16.to_be_bytes().to_vec();
        with_reason.extend_from_slice("κόσμε".as_bytes());
        assert_eq!(
            close(&with_reason).0,
            [Owned::Close(1000, "κόσμε".as_bytes().to_vec())]
        );
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(b"\xCE\xBA\xE1\xBD");
        assert_eq!(close(&bad_reason).1.map(|f| f.code), Some(1007));
    }

    fn deflate_reader(max: usize) -> Reader {
        Reader::new(max, Some(Inflater::new(&DeflateParams::default_params())))
    }

    fn compressed(deflater: &mut Deflater, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        deflater.deflate(msg, &mut out);
        out
    }

    #[test]
    fn compressed_messages() {
        // RFC 7692 section 7.2.3.1, masked
        let (events, fail) = run_with(
            deflate_reader(100),
            &client_frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        );
        assert_eq!((events, fail), (vec![Owned::Text(b"Hello".to_vec())], None));

        // several messages with context takeover, one fragmented, a ping inside, an
        // uncompressed one between
        let mut d = Deflater::new(&DeflateParams::default_params());
        let long: Vec<u8> = b"harrier ".iter().copied().cycle().take(5000).collect();
        let a = compressed(&mut d, &long);
        let b = compressed(&mut d, &long);
        let (b1, b2) = b.split_at(b.len() / 2);
        let wire = cat(&[
            client_frame(0xC2, &a),
            client_frame(0x81, b"plain"),
            client_frame(0x41, b1),
            client_frame(0x89, b"p"),
            client_frame(0x80, b2),
        ]);
        let (events, fail) = run_with(deflate_reader(1 << 20), &wire);
        assert_eq!(fail, None);
        assert_eq!(
            events,
            [
                Owned::Binary(long.clone()),
                Owned::Text(b"plain".to_vec()),
                Owned::Ping(b"p".to_vec()),
                Owned::Text(long)
            ]
        );
    }

    #[test]
    fn empty_compressed_messages() {
        // 0x00 as RFC 7692 writes an empty message, a bare empty payload, then "Hello" in the
        // same stream
        let wire = cat(&[
            client_frame(0xC1, &[0x00]),
            client_frame(0xC2, &[]),
            client_frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ]);
        let (events, fail) = run_with(deflate_reader(100), &wire);
        assert_eq!(fail, None);
        assert_eq!(
            events,
            [
                Owned::Text(vec![]),
                Owned::Binary(vec![]),
                Owned::Text(b"Hello".to_vec())
            ]
        );
    }

    #[test]
    fn release_inflater_between_messages() {
        let p = DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default_params()
        };
        let mut r = Reader::new(100, Some(Inflater::new(&p)));
        for _ in 0..2 {
            let mut wire = client_frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            let mut got = Vec::new();
            r.feed(&mut wire, &mut |e| got.push(own(e))).unwrap();
            assert_eq!(got, [Owned::Text(b"Hello".to_vec())]);
            assert!(r.is_idle() && r.heap_bytes() > 0);
            r.release_inflater();
            assert_eq!(r.heap_bytes(), 0);
        }
    }

    #[test]
    fn compressed_rsv1_rules() {
        // RSV1 on a continuation
        let wire = cat(&[
            client_frame(0x41, &[0xf2, 0x48]),
            client_frame(0xC0, &[0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ]);
        assert_eq!(
            run_with(deflate_reader(100), &wire).1.map(|f| f.code),
            Some(1002)
        );
        // RSV1 on a control frame
        assert_eq!(
            run_with(deflate_reader(100), &client_frame(0xC9, b""))
                .1
                .map(|f| f.code),
            Some(1002)
        );
    }

    #[test]
    fn too_big_only_after_inflation() {
        let mut d = Deflater::new(&DeflateParams::default_params());
        let big = vec![b'z'; 50_000];
        let small = compressed(&mut d, &big);
        assert!(small.len() < 1000);
        let (events, fail) = run_with(deflate_reader(10_000), &client_frame(0xC2, &small));
        assert!(events.is_empty());
        assert_eq!(fail.map(|f| f.code), Some(1009));
        // the same message fits a larger limit
        let mut d = Deflater::new(&DeflateParams::default_params());
        let small = compressed(&mut d, &big);
        assert_eq!(
            run_with(deflate_reader(50_000), &client_frame(0xC2, &small)).0,
            [Owned::Binary(big)]
        );
    }

    #[test]
    fn compressed_invalid_utf8_and_corrupt_data() {
        let mut d = Deflater::new(&DeflateParams::default_params());
        let bad = compressed(&mut d, b"valid then \xED\xA0\x80 not");
        assert_eq!(
            run_with(deflate_reader(1000), &client_frame(0xC1, &bad))
                .1
                .map(|f| f.code),
            Some(1007)
        );
        assert_eq!(
            run_with(
                deflate_reader(1000),
                &client_frame(0xC2, &[0xFF, 0xFF, 0xFF])
            )
            .1
            .map(|f| f.code),
            Some(1007)
        );
    }

    #[test]
    fn control_frame_split_across_reads() {
        let wire = client_frame(0x89, b"0123456789");
        let mut r = Reader::new(100, None);
        let mut events = Vec::new();
        let mut first = wire[..9].to_vec();
        assert_eq!(r.feed(&mut first, &mut |e| events.push(own(e))), Ok(9));
        let mut second = wire[9..].to_vec();
        assert_eq!(
            r.feed(&mut second, &mut |e| events.push(own(e))),
            Ok(wire.len() - 9)
        );
        assert_eq!(events, [Owned::Ping(b"0123456789".to_vec())]);
        assert!(r.is_idle());
    }

    #[test]
    fn byte_at_a_time_equals_one_shot_for_a_mixed_stream() {
        let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let wire = cat(&[
            client_frame(0x81, "héllo".as_bytes()),
            client_frame(0x02, &big[..1000]),
            client_frame(0x89, b"mid"),
            client_frame(0x00, &big[1000..2000]),
            client_frame(0x80, &big[2000..]),
            client_frame(0x8A, b"pong"),
            client_frame(0x81, &[b'x'; 200]),
            client_frame(0x88, &1001u16.to_be_bytes()),
        ]);
        let (events, fail) = run(&wire);
        assert_eq!(fail, None);
        assert_eq!(events.len(), 6);
        assert_eq!(events[2], Owned::Binary(big));
        assert_eq!(events[5], Owned::Close(1001, vec![]));
    }

    #[test]
    fn an_idle_reader_is_small() {
        // per connection: no inline buffer (a split control frame gets one while it lasts)
        assert!(
            std::mem::size_of::<Reader>() <= 112,
            "{}",
            std::mem::size_of::<Reader>()
        );
    }

    #[test]
    fn opcodes_used() {
        // the test frames use these: keep the constants honest
        assert_eq!(
            (TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION),
            (1, 2, 8, 9, 10, 0)
        );
    }
}
