//! Frame headers (RFC 6455 section 5.2): decoding client frames, encoding server frames, and
//! unmasking payloads in place.

pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// Control frames carry at most 125 payload bytes (section 5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;
/// 2 bytes, 8 of extended length, 4 of mask.
#[cfg(test)]
pub(crate) const MAX_HEADER_LEN: usize = 14;

pub(crate) fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

/// A decoded frame header; lengths are as sent, not yet checked against any limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: u8,
    /// `None` when the MASK bit was clear.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of the header itself: 2 to 14.
    pub header_len: usize,
}

/// Decodes a header from the start of `input`, or `None` when it is not all there yet.
pub(crate) fn parse_header(input: &[u8]) -> Option<Header> {
    if input.len() < 2 {
        return None;
    }
    let (b0, b1) = (input[0], input[1]);
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut at) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(input.get(2..4)?.try_into().unwrap()) as u64,
            4,
        ),
        127 => (
            u64::from_be_bytes(input.get(2..10)?.try_into().unwrap()),
            10,
        ),
        n => (n as u64, 2),
    };
    let mask = if masked {
        let m: [u8; 4] = input.get(at..at + 4)?.try_into().unwrap();
        at += 4;
        Some(m)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode: b0 & 0x0F,
        mask,
        payload_len,
        header_len: at,
    })
}

/// XORs `data` with `mask`, where `data[0]` is payload byte number `offset` of its frame (the
/// mask repeats every 4 bytes from the payload's start). Works 16 bytes at a time.
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    let rotated = [
        mask[r],
        mask[(r + 1) % 4],
        mask[(r + 2) % 4],
        mask[(r + 3) % 4],
    ];
    let mut wide = [0u8; 16];
    for (i, b) in wide.iter_mut().enumerate() {
        *b = rotated[i % 4];
    }
    // native-endian on both sides keeps byte i of the word lined up with byte i of the mask
    let wide = u128::from_ne_bytes(wide);
    let mut chunks = data.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let word = u128::from_ne_bytes((&*chunk).try_into().unwrap()) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // the remainder starts at a multiple of 16, so the rotation still holds
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= rotated[i % 4];
    }
}

/// Header bytes of an unmasked (server) frame with `payload_len` bytes.
pub(crate) fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Wire size of a server frame carrying `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    header_len(payload_len) + payload_len
}

/// Appends the header of a server frame; server frames are never masked.
pub(crate) fn write_header(out: &mut Vec<u8>, opcode: u8, fin: bool, rsv1: bool, len: usize) {
    let b0 = (fin as u8) << 7 | (rsv1 as u8) << 6 | (opcode & 0x0F);
    match len {
        0..=125 => out.extend_from_slice(&[b0, len as u8]),
        126..=0xFFFF => {
            out.extend_from_slice(&[b0, 126]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&[b0, 127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends a whole, unfragmented, uncompressed frame.
pub(crate) fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.reserve(frame_len(payload.len()));
    write_header(out, opcode, true, false, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame. The reason is cut to the 123 bytes a control frame leaves for it, at
/// a UTF-8 character boundary so that the peer does not fail the connection over our reason.
/// Code 1005 ("no status") is never sent on the wire: it writes a close frame with no payload.
pub(crate) fn write_close(out: &mut Vec<u8>, code: u16, reason: &[u8]) {
    if code == 1005 {
        write_header(out, CLOSE, true, false, 0);
        return;
    }
    let reason = &reason[..utf8_cut(reason, MAX_CONTROL_PAYLOAD - 2)];
    write_header(out, CLOSE, true, false, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
}

/// The longest prefix of `s` no longer than `max` that does not end inside a character.
fn utf8_cut(s: &[u8], max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut n = max;
    // back off over continuation bytes to the start of the character that straddles `max`
    while n > 0 && s[n] & 0xC0 == 0x80 {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask_reference(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn unmask_matches_bytewise_for_every_length_and_offset() {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        for len in 0..100 {
            for offset in 0..8 {
                let original: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                unmask(&mut fast, mask, offset);
                unmask_reference(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unmask_in_pieces_equals_unmask_whole() {
        let mask = [1, 2, 3, 4];
        let original: Vec<u8> = (0..77u8).collect();
        let mut whole = original.clone();
        unmask(&mut whole, mask, 0);
        let mut pieces = original.clone();
        let mut at = 0;
        for step in [1, 5, 3, 16, 17, 2, 33] {
            let end = (at + step).min(pieces.len());
            unmask(&mut pieces[at..end], mask, at);
            at = end;
        }
        assert_eq!(whole, pieces);
    }

    proptest::proptest! {
        #[test]
        fn unmask_proptest(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), mask in proptest::array::uniform4(proptest::num::u8::ANY), offset in 0usize..16) {
            let mut fast = data.clone();
            let mut slow = data;
            unmask(&mut fast, mask, offset);
            unmask_reference(&mut slow, mask, offset);
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 section 5.7: a masked "Hello"
        let mut frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse_header(&frame).unwrap();
        assert!(h.fin && h.opcode == TEXT && h.payload_len == 5 && h.header_len == 6);
        unmask(&mut frame[6..], h.mask.unwrap(), 0);
        assert_eq!(&frame[6..], b"Hello");
    }

    #[test]
    fn parse_each_length_form() {
        assert_eq!(parse_header(&[0x82, 0x7D]).unwrap().payload_len, 125);
        let h = parse_header(&[0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4]).unwrap();
        assert_eq!(
            (h.payload_len, h.header_len, h.mask),
            (256, 8, Some([1, 2, 3, 4]))
        );
        let h = parse_header(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9]).unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 14));
        let h = parse_header(&[0x02, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.payload_len, 1 << 63);
        assert!(!h.fin && h.mask.is_none());
    }

    #[test]
    fn parse_incomplete_headers() {
        let full = [0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9];
        for n in 0..full.len() {
            assert_eq!(parse_header(&full[..n]), None, "{n} bytes");
        }
        assert!(parse_header(&full).is_some());
    }

    #[test]
    fn parse_reserved_bits() {
        let h = parse_header(&[0xF1, 0x80, 0, 0, 0, 0]).unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3);
    }

    #[test]
    fn write_header_length_forms() {
        for (len, expect) in [
            (0usize, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65535, vec![0x81, 126, 0xFF, 0xFF]),
            (65536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            write_header(&mut out, TEXT, true, false, len);
            assert_eq!(out, expect, "len {len}");
            assert_eq!(out.len(), header_len(len));
            let h = parse_header(&out).unwrap();
            assert_eq!(h.payload_len, len as u64);
        }
        let mut out = Vec::new();
        write_header(&mut out, BINARY, false, true, 3);
        assert_eq!(out, [0x42, 3]);
    }

    #[test]
    fn write_frame_and_frame_len() {
        let mut out = Vec::new();
        write_frame(&mut out, PONG, b"abc");
        assert_eq!(out, [0x8A, 3, b'a', b'b', b'c']);
        assert_eq!(frame_len(3), 5);
        assert_eq!(frame_len(300), 304);
        assert_eq!(frame_len(70000), 70010);
    }

    #[test]
    fn write_close_truncates_at_char_boundary() {
        let mut out = Vec::new();
        write_close(&mut out, 1000, b"bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']);

        // 122 ASCII bytes then a 2-byte character straddling the 123-byte limit
        let mut reason = vec![b'a'; 122];
        reason.extend_from_slice("é".as_bytes());
        let mut out = Vec::new();
        write_close(&mut out, 1001, &reason);
        assert_eq!(out[1] as usize, 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());

        let long = "€".repeat(60);
        let mut out = Vec::new();
        write_close(&mut out, 1011, long.as_bytes());
        assert_eq!(out[1] as usize, 2 + 123);
        assert!(std::str::from_utf8(&out[4..]).is_ok());

        let mut out = Vec::new();
        write_close(&mut out, 1005, b"ignored");
        assert_eq!(out, [0x88, 0]);
    }
}
