//! Header values of HTTP/2 answers, kept by each I/O thread for the next answers: an
//! `http::HeaderValue` made from bytes is an allocation and a copy, and a clone of one kept
//! is a reference count. Most answers repeat the date (new once a second), their type and,
//! often, their length.

use http::HeaderValue;

/* Types an app answers with are few; lengths are many, a small table catches repeats. */
const TYPES: usize = 8;
const LENGTHS: usize = 16;

#[derive(Default)]
pub(crate) struct HeadValues {
    date: Option<HeaderValue>,
    /// Most recently used first.
    types: Vec<HeaderValue>,
    lengths: [Option<(u64, HeaderValue)>; LENGTHS],
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
    }
}
