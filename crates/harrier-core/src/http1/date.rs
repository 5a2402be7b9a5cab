//! The `Date` header, rendered once a second per thread rather than once per response.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) struct CachedDate {
    second: u64,
    /// "Sun, 06 Nov 1994 08:49:37 GMT" is always 29 bytes.
    text: [u8; 29],
}

impl CachedDate {
    pub fn new() -> CachedDate {
        let mut d = CachedDate {
            second: u64::MAX,
            text: [b' '; 29],
        };
        d.update(SystemTime::now());
        d
    }

    /// Re-renders if the second changed; called once per event-loop wake, not per response.
    pub fn update(&mut self, now: SystemTime) {
        let second = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if second != self.second {
            self.second = second;
            let s = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            self.text.copy_from_slice(&s.as_bytes()[..29]);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_imf_fixdate() {
        let mut d = CachedDate::new();
        d.update(UNIX_EPOCH + Duration::from_secs(784111777));
        assert_eq!(d.bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
