//! UTF-8 validation of a text message that arrives in pieces (fragments, or reads of one
//! frame). A character may straddle two pieces, so up to 3 bytes of an unfinished one are
//! carried; anything that cannot begin valid UTF-8 fails at once, not when the message ends,
//! which is what RFC 6455 section 8.1 asks for and Autobahn section 6 checks.

#[derive(Debug, Default)]
pub(crate) struct Utf8Validator {
    /// The start of a character not yet complete, as a valid prefix.
    tail: [u8; 4],
    tail_len: u8,
}

/// Length of the sequence that `first` begins, or 0 if it cannot begin one (a continuation
/// byte, the overlong leads C0/C1, or F5..FF beyond U+10FFFF).
fn sequence_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Whether `b` may follow the first `at` bytes `prefix[..at]` of a sequence. The second byte's
/// range is narrowed for E0 (overlong), ED (surrogates), F0 (overlong) and F4 (> U+10FFFF).
fn continues(first: u8, at: usize, b: u8) -> bool {
    if at == 1 {
        let (lo, hi) = match first {
            0xE0 => (0xA0, 0xBF),
            0xED => (0x80, 0x9F),
            0xF0 => (0x90, 0xBF),
            0xF4 => (0x80, 0x8F),
            _ => (0x80, 0xBF),
        };
        (lo..=hi).contains(&b)
    } else {
        b & 0xC0 == 0x80
    }
}

impl Utf8Validator {
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Checks the next piece; `Err` as soon as the bytes so far cannot be the start of UTF-8.
    #[allow(clippy::result_unit_err)]
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        if self.tail_len > 0 {
            // finish the carried character by hand, byte by byte
            let first = self.tail[0];
            let need = sequence_len(first);
            while (self.tail_len as usize) < need {
                let Some((&b, rest)) = bytes.split_first() else {
                    return Ok(());
                };
                if !continues(first, self.tail_len as usize, b) {
                    return Err(());
                }
                self.tail[self.tail_len as usize] = b;
                self.tail_len += 1;
                bytes = rest;
            }
            self.tail_len = 0;
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            // an error with a length is a byte that can never be valid
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                // the input ends inside a character: keep its start, checking it is a valid prefix
                let tail = &bytes[e.valid_up_to()..];
                let first = tail[0];
                let need = sequence_len(first);
                if need == 0 || tail.len() >= need {
                    return Err(());
                }
                for (at, &b) in tail.iter().enumerate().skip(1) {
                    if !continues(first, at, b) {
                        return Err(());
                    }
                }
                self.tail[..tail.len()].copy_from_slice(tail);
                self.tail_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The message ended: `Err` if it ended inside a character. Leaves the validator reset.
    #[allow(clippy::result_unit_err)]
    pub fn finish(&mut self) -> Result<(), ()> {
        let incomplete = self.tail_len > 0;
        self.reset();
        if incomplete {
            Err(())
        } else {
            Ok(())
        }
    }

    pub fn reset(&mut self) {
        self.tail_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(bytes: &[u8]) -> Vec<Result<(), ()>> {
        // the result of feeding bytes one at a time, then finishing
        let mut v = Utf8Validator::new();
        let mut results: Vec<_> = bytes
            .iter()
            .map(|b| v.feed(std::slice::from_ref(b)))
            .collect();
        results.push(v.finish());
        results
    }

    #[test]
    fn valid_text_in_any_split() {
        let text = "κόσμε ascii €𝄞 \u{10FFFF} \u{FFFF}".as_bytes();
        for cut in 0..=text.len() {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(&text[..cut]), Ok(()), "cut {cut}");
            assert_eq!(v.feed(&text[cut..]), Ok(()), "cut {cut}");
            assert_eq!(v.finish(), Ok(()));
        }
        assert!(split_everywhere(text).iter().all(|r| r.is_ok()));
        // three pieces, the middle one inside a 4-byte character
        let s = "a𝄞b".as_bytes();
        let mut v = Utf8Validator::new();
        assert!(v.feed(&s[..2]).is_ok() && v.feed(&s[2..3]).is_ok() && v.feed(&s[3..]).is_ok());
        assert!(v.finish().is_ok());
    }

    #[test]
    fn fails_on_first_bad_byte_mid_sequence() {
        // each fails when its last byte arrives, whether alone or in one piece
        for bad in [
            &[0xF4, 0x90][..],
            &[0xED, 0xA0],
            &[0xC0],
            &[0xC1],
            &[0xF5],
            &[0xFF],
            &[0x80],
            &[0xE0, 0x80],
            &[0xF0, 0x80],
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
            ],
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(bad), Err(()), "{bad:x?} whole");
            let results = split_everywhere(bad);
            let first_err = results.iter().position(|r| r.is_err());
            assert_eq!(first_err, Some(bad.len() - 1), "{bad:x?} byte by byte");
        }
    }

    #[test]
    fn incomplete_tail_is_carried_then_fails_at_finish() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok\xE2\x82"), Ok(()));
        assert_eq!(v.finish(), Err(()));
        // finish reset it
        assert_eq!(v.feed(b"ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn bad_byte_after_carried_tail() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xF0\x9D"), Ok(()));
        assert_eq!(v.feed(b"\x84A"), Err(()));
        v.reset();
        assert_eq!(v.feed(b"\xF0\x9D"), Ok(()));
        assert_eq!(v.feed(b"\x84\x9E\xFF"), Err(()));
    }

    #[test]
    fn agrees_with_std_on_all_two_and_three_byte_inputs_split() {
        let mut buf = [0u8; 3];
        for a in 0x80..=0xFFu8 {
            for b in (0..=0xFFu8).step_by(3) {
                for c in [0x41u8, 0x80, 0xBF, 0xC0] {
                    buf[0] = a;
                    buf[1] = b;
                    buf[2] = c;
                    let expect = std::str::from_utf8(&buf).is_ok();
                    for cut in 0..=3 {
                        let mut v = Utf8Validator::new();
                        let got = v.feed(&buf[..cut]).is_ok()
                            && v.feed(&buf[cut..]).is_ok()
                            && v.finish().is_ok();
                        assert_eq!(got, expect, "{buf:x?} cut {cut}");
                    }
                }
            }
        }
    }
}
