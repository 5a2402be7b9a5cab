//! The chunked transfer coding of request bodies (RFC 9112 section 7.1), decoded incrementally:
//! bytes arrive in any split, and the decoder keeps only a few integers between reads.

use super::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    /// Chunk extensions after the size: skipped up to the line end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Trailer section after the last chunk: lines until an empty one.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
    size_digits: u8,
}

/// What one call to `decode` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// `len` body bytes start at `start` in the input (relative to the slice given).
    Data { start: usize, len: usize },
    /// The body ended; nothing of it is left in the input.
    End,
    /// Every input byte was consumed and more are needed.
    NeedMore,
}

/// Bounds the trailer section so that an endless trailer cannot pin a connection.
const MAX_TRAILER_BYTES: u64 = 16 * 1024;

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            size_digits: 0,
        }
    }

    /// Decodes from `input`; returns what was found and how many input bytes were consumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<(Chunk, usize), Status> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 16 hex digits fill a u64; more would overflow
                        if self.size_digits == 16 {
                            return Err(Status::BAD_REQUEST);
                        }
                        self.size = self.size << 4 | (b as char).to_digit(16).unwrap() as u64;
                        self.size_digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.size_digits > 0 => self.state = State::Extension,
                    b'\r' if self.size_digits > 0 => self.state = State::SizeLf,
                    _ => return Err(Status::BAD_REQUEST),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(Status::BAD_REQUEST),
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(Status::BAD_REQUEST);
                    }
                    self.size_digits = 0;
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let len = (input.len() - i).min(self.size.min(usize::MAX as u64) as usize);
                    self.size -= len as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((Chunk::Data { start: i, len }, i + len));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(Status::BAD_REQUEST);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(Status::BAD_REQUEST);
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine
                    };
                    self.size = 1;
                }
                State::TrailerLine => {
                    self.size += 1;
                    if self.size > MAX_TRAILER_BYTES {
                        return Err(Status::HEADERS_TOO_LARGE);
                    }
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(Status::BAD_REQUEST);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(Status::BAD_REQUEST);
                    }
                    self.state = State::Done;
                    return Ok((Chunk::End, i + 1));
                }
                State::Done => return Ok((Chunk::End, i)),
            }
            i += 1;
        }
        if self.state == State::Done {
            return Ok((Chunk::End, i));
        }
        Ok((Chunk::NeedMore, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and the bytes left after it.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), Status> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pos = 0;
        let mut end = 0;
        loop {
            end = (end + step).min(input.len()).max(pos);
            let (chunk, used) = d.decode(&input[pos..end])?;
            match chunk {
                Chunk::Data { start, len } => {
                    body.extend_from_slice(&input[pos + start..pos + start + len])
                }
                Chunk::End => return Ok((body, input.len() - (pos + used))),
                Chunk::NeedMore => assert!(end < input.len(), "ran out of input"),
            }
            pos += used;
        }
    }

    #[test]
    fn decodes_in_any_split() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nGET";
        for step in 1..input.len() {
            let (body, left) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello world");
            assert_eq!(left, 3, "step {step}");
        }
    }

    #[test]
    fn refuses_bad_sizes() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhelloXX",
            b"5\n",
        ] {
            assert_eq!(
                decode_all(bad, bad.len()).unwrap_err(),
                Status::BAD_REQUEST,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_endless_trailers() {
        let mut input = b"0\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 20_000));
        assert!(decode_all(&input, 4096).is_err());
    }
}
