//! permessage-deflate (RFC 7692): raw DEFLATE per message, flushed with a sync flush whose
//! trailing `00 00 FF FF` is stripped by the sender and put back by the receiver. With context
//! takeover the window carries over from message to message; without it each message is a
//! fresh stream. zlib state is allocated on the first compressed message, so a connection that
//! negotiated the extension but never uses it costs nothing.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame;

const TRAILER: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Level 1: the engine compresses without server context takeover (one compressor per
/// thread for every socket), where level 1 ("quick") loses little against 3, and costs about
/// 0.6x the CPU per message (4 KiB text echo: 5.5 against 9.4 µs per message, the whole
/// server, same run).
const LEVEL: u32 = 1;

/// What the server is willing to negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeflateConfig {
    /// The largest window the server compresses with, 8..=15 (8 compresses with 9, see
    /// `DeflateParams::deflate_window_bits`).
    pub server_max_window_bits: u8,
    /// Always reset the compressor between messages: less memory kept, worse ratio.
    pub server_no_context_takeover: bool,
    /// Echo a client's `client_no_context_takeover` hint, which lets the inflater start each
    /// message afresh (and drop its window when idle). Declining it is harmless: a client that
    /// does not take context over still decodes the same.
    pub client_no_context_takeover_allowed: bool,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover_allowed: true,
        }
    }
}

/// The outcome of a negotiation: what the response says, and what each side's zlib uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// As in the response; 15 (the default) is not written.
    pub server_max_window_bits: u8,
    /// As in the response; 15 (the default) is not written. The client compresses with at most
    /// this window; the inflater decodes with 15 regardless.
    pub client_max_window_bits: u8,
    /// The window the deflater uses: at most `server_max_window_bits` and the config's, and at
    /// least 9, because zlib refuses 8 for raw deflate. A window of 9 is still safe for a peer
    /// that asked for 8: zlib never emits a distance beyond the window minus 262 bytes, so the
    /// farthest reference is 250 bytes back, inside a 256-byte window.
    pub deflate_window_bits: u8,
}

impl DeflateParams {
    /// The defaults of RFC 7692: context takeover both ways, 15-bit windows.
    pub fn default_params() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            deflate_window_bits: 15,
        }
    }

    /// Appends the `Sec-WebSocket-Extensions` value of the response.
    pub fn write_response_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"permessage-deflate");
        if self.server_no_context_takeover {
            out.extend_from_slice(b"; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.extend_from_slice(b"; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            out.extend_from_slice(b"; server_max_window_bits=");
            write_bits(out, self.server_max_window_bits);
        }
        if self.client_max_window_bits < 15 {
            out.extend_from_slice(b"; client_max_window_bits=");
            write_bits(out, self.client_max_window_bits);
        }
    }
}

fn write_bits(out: &mut Vec<u8>, bits: u8) {
    if bits >= 10 {
        out.push(b'1');
    }
    out.push(b'0' + bits % 10);
}

/// zlib-rs's footprint, for `heap_bytes`, as measured once (resident bytes of 1,000 states
/// once a 100 KB message had touched every page, read from /proc/self/statm). Deflate keeps two windows of `1 << bits`, a
/// `prev` chain of 2-byte entries per window slot, a 64 Ki-entry hash head and literal
/// buffers for memLevel 8: ~205 KiB at 9 bits, ~328 KiB at 15. Inflate allocates a 32 KiB
/// window whatever the bits, plus its state: ~47 KiB.
#[cfg(test)]
fn deflate_state_bytes(bits: u8) -> usize {
    (4 << bits) + (201 << 10)
}

#[cfg(test)]
const INFLATE_STATE_BYTES: usize = 47 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The message would inflate past the limit (close 1009). Inflation stopped there.
    TooBig,
    /// Not a valid DEFLATE stream (close 1007: the payload is inconsistent with its type).
    Corrupt,
}

/// Decompresses one connection's incoming messages.
///
/// Memory: `size_of::<Inflater>()` is 16 bytes; the zlib-rs state, allocated on the first
/// compressed message, is ~47 KiB whatever the window bits (zlib-rs always allocates a
/// 32 KiB window). A client that offers `client_no_context_takeover` lets it be released.
pub(crate) struct Inflater {
    /// Boxed, so that a reader that never inflates carries one word for it.
    zlib: Option<Box<Decompress>>,
    no_context_takeover: bool,
    /// The sender ended its stream (a BFINAL block) within this message; only the trailer may
    /// follow.
    stream_ended: bool,
    /// Some payload arrived for this message: an empty one (which RFC 7692 senders write as
    /// 0x00, but some may not) leaves the stream alone instead of taking a bare trailer.
    has_input: bool,
}

impl Inflater {
    pub fn new(params: &DeflateParams) -> Inflater {
        Inflater {
            zlib: None,
            no_context_takeover: params.client_no_context_takeover,
            stream_ended: false,
            has_input: false,
        }
    }

    /// Inflates a whole message's payload (without its trailer), appending to `out`.
    #[cfg(test)]
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.inflate_part(input, out, limit)?;
        self.finish_message(out, limit)
    }

    /// Inflates the next piece of a message's payload, appending to `out`, which must not grow
    /// past `limit` bytes (its existing contents count).
    pub fn inflate_part(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if input.is_empty() {
            return Ok(());
        }
        if self.stream_ended {
            return Err(InflateError::Corrupt);
        }
        self.has_input = true;
        self.run(input, out, limit)
    }

    /// Ends the message: inflates the trailer the sender stripped, and starts afresh for the
    /// next message if the client does not take context over.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = if self.stream_ended || !self.has_input {
            Ok(())
        } else {
            self.run(&TRAILER, out, limit)
        };
        self.has_input = false;
        if self.stream_ended || self.no_context_takeover {
            self.stream_ended = false;
            if let Some(z) = &mut self.zlib {
                z.reset(false);
            }
        }
        result
    }

    /// Drops the zlib state (it is made again when needed). Only for connections without
    /// context takeover, between messages: with takeover, the window is part of the stream.
    pub fn release(&mut self) {
        debug_assert!(self.no_context_takeover || self.zlib.is_none());
        self.zlib = None;
    }

    pub fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Heap held by the zlib state, estimated from zlib's footprint.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        if self.zlib.is_some() {
            INFLATE_STATE_BYTES
        } else {
            0
        }
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        // always the full window: it decodes a client's smaller-window stream just the same,
        // zlib-rs allocates 32 KiB whatever the bits, and flate2 resets a 15-bit state in place
        // where it would make a smaller one anew
        let z = self
            .zlib
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    // room for one byte past the limit tells "exactly full" from "too big"
                    if out.len() > limit || !grow(out, limit.saturating_add(1)) {
                        return Err(InflateError::TooBig);
                    }
                } else {
                    grow(out, limit);
                }
            }
            let before_in = z.total_in();
            let before_out = out.len();
            let status = z
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            consumed += (z.total_in() - before_in) as usize;
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                self.stream_ended = true;
                // what may follow a final block in this call is only the trailer we appended
                let rest = &input[consumed..];
                return if rest.is_empty() || TRAILER.starts_with(rest) {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
            let room_left = out.len() < out.capacity();
            if consumed == input.len() && room_left {
                // everything read, and zlib stopped with room to spare: nothing is pending
                return Ok(());
            }
            if room_left
                && consumed < input.len()
                && z.total_in() == before_in
                && out.len() == before_out
            {
                return Err(InflateError::Corrupt);
            }
        }
    }
}

/// Grows `out`'s capacity geometrically but never past `cap_limit`; false when already there.
fn grow(out: &mut Vec<u8>, cap_limit: usize) -> bool {
    let cap = out.capacity();
    if cap >= cap_limit {
        return false;
    }
    let target = (cap * 2).max(cap + 4096).min(cap_limit);
    out.reserve_exact(target - out.len());
    true
}

/// Compresses one connection's outgoing messages (or, without context takeover, any
/// connection's: the engine may keep one per thread for publishing to many).
///
/// With context takeover the client's inflater window is the history of every compressed
/// message it received, so each of them must come from this connection's own Deflater: one
/// compressed elsewhere (a shared publishing Deflater) in between shifts that history, and the
/// next message's back-references land on the wrong bytes. A shared Deflater may serve only
/// connections that negotiated `server_no_context_takeover`; others get their own Deflater's
/// output, or the message uncompressed (RSV1 clear leaves the window alone).
///
/// Memory: `size_of::<Deflater>()` is 16 bytes; the zlib-rs state, allocated on the first
/// compressed message, is about `4 << window bits` plus ~200 KiB of hash and literal buffers:
/// ~328 KiB at 15 bits, ~205 KiB at 9 (resident, measured). That is why `release` exists, and
/// why a per-thread Deflater with `server_no_context_takeover` is much cheaper than one per
/// connection.
pub(crate) struct Deflater {
    zlib: Option<Box<Compress>>,
    window_bits: u8,
    no_context_takeover: bool,
}

impl Deflater {
    pub fn new(params: &DeflateParams) -> Deflater {
        Deflater {
            zlib: None,
            window_bits: params.deflate_window_bits.clamp(9, 15),
            no_context_takeover: params.server_no_context_takeover,
        }
    }

    /// Appends the compressed form of one whole message, without the `00 00 FF FF` trailer.
    pub fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let window_bits = self.window_bits;
        let z = self.zlib.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(LEVEL),
                false,
                window_bits,
            ))
        });
        let start = out.len();
        let mut consumed = 0;
        loop {
            out.reserve((input.len() - consumed) / 2 + 64);
            let before_in = z.total_in();
            // errors only come from a misused stream, which this one is not; stop rather than spin
            if z.compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            consumed += (z.total_in() - before_in) as usize;
            // the flush is complete once zlib stops with output room to spare
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() - start >= 4 && out[out.len() - 4..] == TRAILER {
            out.truncate(out.len() - 4);
        }
        if out.len() == start {
            // zlib writes nothing for an empty message right after a flush; the peer appends
            // 00 00 FF FF, which needs the stored block's header byte before it (section 7.2.3.6)
            out.push(0x00);
        }
        if self.no_context_takeover {
            z.reset();
        }
    }

    /// Appends a whole compressed data frame (RSV1 set) carrying `payload`.
    pub fn write_frame(&mut self, out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
        // compress after room for the longest header, then close the gap the real one leaves
        let start = out.len();
        out.extend_from_slice(&[0; 10]);
        self.deflate(payload, out);
        let compressed = out.len() - start - 10;
        let header_len = frame::header_len(compressed);
        let at = start + 10 - header_len;
        let mut buf = [0u8; 10];
        write_header_into(&mut buf, opcode, compressed);
        out[at..start + 10].copy_from_slice(&buf[..header_len]);
        out.drain(start..at);
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        if self.zlib.is_some() {
            deflate_state_bytes(self.window_bits)
        } else {
            0
        }
    }
}

/// A compressed, final data frame's header, into a stack buffer.
fn write_header_into(buf: &mut [u8; 10], opcode: u8, len: usize) {
    let b0 = 0x80 | 0x40 | (opcode & 0x0F);
    buf[0] = b0;
    match len {
        0..=125 => buf[1] = len as u8,
        126..=0xFFFF => {
            buf[1] = 126;
            buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            buf[1] = 127;
            buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bits: u8, no_takeover: bool) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: no_takeover,
            client_no_context_takeover: no_takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
            deflate_window_bits: bits,
        }
    }

    fn sample(n: usize, seed: u32) -> Vec<u8> {
        // compressible but not trivial: words from a small vocabulary chosen by an LCG
        let words: [&[u8]; 8] = [
            b"harrier ",
            b"socket ",
            b"frame ",
            b"deflate ",
            b"window ",
            b"{\"id\":",
            b"42}, ",
            b"\xE2\x82\xAC ",
        ];
        let mut x = seed;
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % 8]);
        }
        out.truncate(n);
        out
    }

    #[test]
    fn rfc7692_hello() {
        let mut inflater = Inflater::new(&DeflateParams::default_params());
        let mut out = Vec::new();
        inflater
            .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
        // with context takeover, the second "Hello" of RFC 7692 section 7.2.3.2 refers back
        out.clear();
        inflater
            .inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc7692_hello_without_takeover_and_stored_and_bfinal() {
        let p = params(15, true);
        let mut inflater = Inflater::new(&p);
        let mut out = Vec::new();
        for _ in 0..2 {
            out.clear();
            inflater
                .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
                .unwrap();
            assert_eq!(out, b"Hello");
        }
        // section 7.2.3.3: uncompressed (stored) block
        out.clear();
        inflater
            .inflate(
                &[
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ],
                &mut out,
                100,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        // section 7.2.3.5: a final block, then the next message is a new stream
        out.clear();
        inflater
            .inflate(
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
                &mut out,
                100,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        inflater
            .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn empty_messages_keep_the_stream_whole() {
        let p = DeflateParams::default_params();
        let mut deflater = Deflater::new(&p);
        let mut inflater = Inflater::new(&p);
        for msg in [&b"first"[..], b"", b"", b"after the empty ones"] {
            let mut wire = Vec::new();
            deflater.deflate(msg, &mut wire);
            assert!(!wire.is_empty());
            let mut back = Vec::new();
            inflater.inflate(&wire, &mut back, 100).unwrap();
            assert_eq!(back, msg);
        }
        // a peer that sends an empty payload instead of 0x00
        let mut back = Vec::new();
        inflater.inflate(&[], &mut back, 100).unwrap();
        inflater
            .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut back, 100)
            .unwrap();
        assert_eq!(back, b"Hello");
    }

    #[test]
    fn deflate_hello_matches_rfc_shape() {
        let mut deflater = Deflater::new(&DeflateParams::default_params());
        let mut out = Vec::new();
        deflater.deflate(b"Hello", &mut out);
        let mut inflater = Inflater::new(&DeflateParams::default_params());
        let mut back = Vec::new();
        inflater.inflate(&out, &mut back, 100).unwrap();
        assert_eq!(back, b"Hello");
        assert!(!out.ends_with(&TRAILER));
    }

    #[test]
    fn round_trip_every_window_with_and_without_takeover() {
        for bits in 9..=15 {
            for no_takeover in [false, true] {
                let p = params(bits, no_takeover);
                let mut deflater = Deflater::new(&p);
                let mut inflater = Inflater::new(&p);
                for (i, n) in [0usize, 1, 5, 300, 0, 5000, 70000, 0, 300]
                    .into_iter()
                    .enumerate()
                {
                    let msg = sample(n, i as u32 + bits as u32);
                    let mut wire = Vec::new();
                    deflater.deflate(&msg, &mut wire);
                    let mut back = Vec::new();
                    inflater
                        .inflate(&wire, &mut back, 1 << 20)
                        .unwrap_or_else(|e| {
                            panic!("bits {bits} no_takeover {no_takeover} n {n}: {e:?}")
                        });
                    assert!(back == msg, "bits {bits} no_takeover {no_takeover} n {n}");
                }
            }
        }
    }

    #[test]
    fn nine_bit_window_reaches_no_further_than_256_bytes() {
        // what makes answering server_max_window_bits=8 with a 9-bit deflater safe: a block
        // repeated at 200 bytes compresses, one repeated at 300 bytes cannot
        let noise = |n: usize| -> Vec<u8> {
            let mut x = 7u32;
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1103515245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect()
        };
        let size = |block: usize| {
            let msg = noise(block).repeat(10);
            let mut out = Vec::new();
            Deflater::new(&params(9, true)).deflate(&msg, &mut out);
            out.len()
        };
        let (near, far) = (size(200), size(300));
        assert!(near < 1200 && far > 2500, "{near} {far}");
    }

    #[test]
    fn shared_deflater_is_safe_only_without_takeover() {
        let msg = b"a message of the connection's own, a message of the connection's own".to_vec();
        let news = b"something else published to many subscribers".to_vec();
        let mut shared = Deflater::new(&params(15, true));
        let mut published = Vec::new();
        shared.deflate(&news, &mut published);
        for no_takeover in [true, false] {
            let p = params(15, no_takeover);
            let mut own = Deflater::new(&p);
            let mut inflater = Inflater::new(&p);
            let mut back = Vec::new();
            let mut wire = Vec::new();
            own.deflate(&msg, &mut wire);
            inflater.inflate(&wire, &mut back, 1000).unwrap();
            back.clear();
            inflater.inflate(&published, &mut back, 1000).unwrap();
            assert_eq!(back, news);
            // the connection's own next message refers back into its own history
            wire.clear();
            own.deflate(&msg, &mut wire);
            back.clear();
            let ok = inflater.inflate(&wire, &mut back, 1000).is_ok() && back == msg;
            assert_eq!(ok, no_takeover, "no_takeover {no_takeover}");
        }
    }

    #[test]
    fn context_takeover_shrinks_a_repeat() {
        let p = DeflateParams::default_params();
        let mut deflater = Deflater::new(&p);
        // decimal noise: little to match within a message, all of it in the previous one
        let mut x = 99u32;
        let msg: Vec<u8> = (0..2000)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                b'0' + (x >> 16) as u8 % 10
            })
            .collect();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        deflater.deflate(&msg, &mut first);
        deflater.deflate(&msg, &mut second);
        assert!(
            second.len() * 4 < first.len(),
            "{} then {}",
            first.len(),
            second.len()
        );

        let mut fresh = Deflater::new(&params(15, true));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        fresh.deflate(&msg, &mut a);
        fresh.deflate(&msg, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn inflate_in_pieces() {
        let p = DeflateParams::default_params();
        let mut deflater = Deflater::new(&p);
        let msg = sample(20000, 3);
        let mut wire = Vec::new();
        deflater.deflate(&msg, &mut wire);
        let mut inflater = Inflater::new(&p);
        let mut back = Vec::new();
        for piece in wire.chunks(7) {
            inflater.inflate_part(piece, &mut back, 1 << 20).unwrap();
        }
        inflater.finish_message(&mut back, 1 << 20).unwrap();
        assert!(back == msg);
    }

    #[test]
    fn too_big_stops_at_the_limit() {
        let p = DeflateParams::default_params();
        let mut deflater = Deflater::new(&p);
        let bomb = vec![b'a'; 1 << 20];
        let mut wire = Vec::new();
        deflater.deflate(&bomb, &mut wire);
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut inflater = Inflater::new(&p);
        let mut out = Vec::new();
        assert_eq!(
            inflater.inflate(&wire, &mut out, 10_000),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() <= 10_001, "capacity {}", out.capacity());
        // exactly at the limit is fine
        let mut out = Vec::new();
        let mut inflater = Inflater::new(&p);
        inflater.inflate(&wire, &mut out, 1 << 20).unwrap();
        assert_eq!(out.len(), 1 << 20);
    }

    #[test]
    fn corrupt_data() {
        let mut inflater = Inflater::new(&DeflateParams::default_params());
        let mut out = Vec::new();
        // BTYPE 11 is reserved
        assert_eq!(
            inflater.inflate(&[0xff, 0xff, 0xff], &mut out, 100),
            Err(InflateError::Corrupt)
        );
        // data after a final block
        let mut inflater = Inflater::new(&DeflateParams::default_params());
        let mut out = Vec::new();
        assert_eq!(
            inflater.inflate(
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x41, 0x42],
                &mut out,
                100
            ),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn lazy_state_and_release() {
        let p = params(15, true);
        let mut inflater = Inflater::new(&p);
        let mut deflater = Deflater::new(&p);
        assert_eq!((inflater.heap_bytes(), deflater.heap_bytes()), (0, 0));
        let mut wire = Vec::new();
        deflater.deflate(b"hello hello hello", &mut wire);
        let mut back = Vec::new();
        inflater.inflate(&wire, &mut back, 100).unwrap();
        assert!(inflater.heap_bytes() > 0 && deflater.heap_bytes() > 0);
        inflater.release();
        assert_eq!(inflater.heap_bytes(), 0);
        // and it works again afterwards
        let mut wire = Vec::new();
        deflater.deflate(b"again", &mut wire);
        let mut back = Vec::new();
        inflater.inflate(&wire, &mut back, 100).unwrap();
        assert_eq!(back, b"again");
    }

    #[test]
    fn write_frame_has_rsv1_and_right_length() {
        let p = DeflateParams::default_params();
        for n in [0usize, 10, 500, 200_000] {
            let mut deflater = Deflater::new(&p);
            let msg: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut out = vec![0xAA];
            deflater.write_frame(&mut out, frame::BINARY, &msg);
            let h = frame::parse_header(&out[1..]).unwrap();
            assert!(h.fin && h.rsv1 && h.opcode == frame::BINARY && h.mask.is_none());
            let payload = &out[1 + h.header_len..];
            assert_eq!(payload.len() as u64, h.payload_len);
            let mut back = Vec::new();
            Inflater::new(&p)
                .inflate(payload, &mut back, usize::MAX)
                .unwrap();
            assert!(back == msg, "n {n}");
        }
    }

    #[test]
    fn idle_states_are_small() {
        assert!(
            std::mem::size_of::<Inflater>() <= 16,
            "{}",
            std::mem::size_of::<Inflater>()
        );
        assert!(
            std::mem::size_of::<Deflater>() <= 16,
            "{}",
            std::mem::size_of::<Deflater>()
        );
    }

    #[test]
    fn response_values() {
        let mut out = Vec::new();
        DeflateParams::default_params().write_response_value(&mut out);
        assert_eq!(out, b"permessage-deflate");
        let mut out = Vec::new();
        DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            deflate_window_bits: 10,
        }
        .write_response_value(&mut out);
        assert_eq!(out, b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9");
    }
}
