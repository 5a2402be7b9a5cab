//! Header values of HTTP/2 answers, kept by each I/O thread for the next answers: an
//! `http::HeaderValue` made from bytes is an allocation and a copy, and a clone of one kept
//! is a reference count. Most answers repeat the date (new once a second), their type and,
//! often, their length. And header maps: h2 hands each request its own and consumes each
//! answer's, so a request's map, emptied, becomes an answer's (two allocations fewer each).
//! And small bodies: copied into a block shared by many (h2 wants them as `Bytes`), one
//! allocation per block instead of one per answer.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/* Types an app answers with are few; lengths are many, a small table catches repeats. */
const TYPES: usize = 8;
const LENGTHS: usize = 16;
/* Maps kept: a turn's worth of answers; larger maps (requests with many headers) are let go. */
const MAPS: usize = 64;
const MAP_ROOM: usize = 32;
/* A block of small bodies; one still queued for a slow client holds its whole block. */
const BLOCK: usize = 16 * 1024;
const SMALL_BODY: usize = 1024;

#[derive(Default)]
pub(crate) struct HeadValues {
    date: Option<HeaderValue>,
    /// Most recently used first.
    types: Vec<HeaderValue>,
    lengths: [Option<(u64, HeaderValue)>; LENGTHS],
    maps: Vec<HeaderMap>,
    bodies: BytesMut,
}

impl HeadValues {
    /// The `date` header for the engine's current date line; None if it is no valid value.
    pub fn date(&mut self, date: &[u8]) -> Option<HeaderValue> {
        match &self.date {
            Some(v) if v.as_bytes() == date => Some(v.clone()),
            _ => {
                let v = HeaderValue::from_bytes(date).ok()?;
                self.date = Some(v.clone());
                Some(v)
            }
        }
    }

    pub fn length(&mut self, n: u64) -> HeaderValue {
        let slot = &mut self.lengths[(n % LENGTHS as u64) as usize];
        match slot {
            Some((m, v)) if *m == n => v.clone(),
            _ => {
                let v = HeaderValue::from(n);
                *slot = Some((n, v.clone()));
                v
            }
        }
    }

    /// `data` as `Bytes` for a DATA frame.
    pub fn body(&mut self, data: &[u8]) -> Bytes {
        if data.len() > SMALL_BODY {
            return Bytes::copy_from_slice(data);
        }
        if self.bodies.capacity() - self.bodies.len() < data.len() {
            self.bodies = BytesMut::with_capacity(BLOCK);
        }
        self.bodies.extend_from_slice(data);
        self.bodies.split().freeze()
    }

    /// A request's header map, done with: kept, emptied, for an answer.
    pub fn recycle(&mut self, mut map: HeaderMap) {
        if self.maps.len() < MAPS && map.capacity() > 0 && map.capacity() <= MAP_ROOM {
            map.clear();
            self.maps.push(map);
        }
    }

    /// An empty header map, with room if one was kept.
    pub fn map(&mut self) -> HeaderMap {
        self.maps.pop().unwrap_or_default()
    }

    /// A `content-type` value; None if it is no valid value.
    pub fn content_type(&mut self, value: &[u8]) -> Option<HeaderValue> {
        if let Some(i) = self.types.iter().position(|v| v.as_bytes() == value) {
            let v = self.types[i].clone();
            self.types[..=i].rotate_right(1);
            return Some(v);
        }
        let v = HeaderValue::from_bytes(value).ok()?;
        if self.types.len() == TYPES {
            self.types.pop();
        }
        self.types.insert(0, v.clone());
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_those_asked_for_and_reused() {
        let mut kept = HeadValues::default();
        let date = b"Tue, 01 Dec 2026 16:00:00 GMT";
        assert_eq!(kept.date(date).unwrap().as_bytes(), date);
        assert_eq!(kept.date(date).unwrap().as_bytes(), date);
        let next = b"Tue, 01 Dec 2026 16:00:01 GMT";
        assert_eq!(kept.date(next).unwrap().as_bytes(), next);
        assert!(kept.date(b"bad\nvalue").is_none());
        for n in [0, 13, 13, 29, 13 + LENGTHS as u64, 13] {
            assert_eq!(kept.length(n).as_bytes(), n.to_string().as_bytes());
        }
        for t in 0..20 {
            let value = format!("type/{}", t % 10);
            assert_eq!(
                kept.content_type(value.as_bytes()).unwrap().as_bytes(),
                value.as_bytes()
            );
        }
        assert_eq!(kept.types.len(), TYPES);
        assert!(kept.content_type(b"text/\x01").is_none());
        let mut map = HeaderMap::new();
        map.insert(http::header::HOST, HeaderValue::from_static("x"));
        let room = map.capacity();
        kept.recycle(map);
        let again = kept.map();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        assert_eq!(kept.map().capacity(), 0, "none left: a new one");
        let bodies: Vec<Bytes> = (0..100u32)
            .map(|i| kept.body(format!("body {i}").as_bytes()))
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            assert_eq!(&b[..], format!("body {i}").as_bytes());
        }
        let big = vec![7u8; SMALL_BODY + 1];
        assert_eq!(&kept.body(&big)[..], &big[..]);
        assert_eq!(&kept.body(b"")[..], b"");
    }
}
