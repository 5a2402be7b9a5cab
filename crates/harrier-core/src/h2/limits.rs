//! HTTP/2 settings and abuse limits.
//!
//! h2 bounds most abuse itself: the header list while it arrives (`max_header_list_size`,
//! and CONTINUATION frames counted against it, CVE-2024-27316), streams reset before they
//! were accepted (`max_pending_accept_reset_streams`, CVE-2023-44487), resets h2 itself
//! had to send for a client's errors (`max_local_error_reset_streams`), and SETTINGS and PING
//! floods (h2 owes at most one SETTINGS ack and one PONG at a time, and reads no more until
//! they are written: the pipe's high-water mark holds such a client back). What h2 cannot
//! see is counted here: streams the engine accepted and handed to the handler, then reset
//! by the client before an answer (`Resets`).

use ::h2::server::Builder;

use crate::engine::config::Config;

/// What h2 allows, from the engine's configuration. h2's defaults are hyper's, but the
/// windows: `initial_window_size` (1 MiB) per stream, four of them for the connection.
pub(crate) fn builder(config: &Config) -> Builder {
    let o = &config.http2;
    let window = o.initial_window_size.clamp(1, (1 << 31) - 1);
    let header_list = if o.max_header_list_size > 0 {
        o.max_header_list_size
    } else {
        config.max_header_size.clamp(1024, u32::MAX as usize) as u32
    };
    let mut b = Builder::new();
    // The connection's window is four streams' worth: one stream whose handler does not
    // read holds back its own client, not every upload on the connection.
    let connection_window = window.saturating_mul(4).clamp(65_535, (1 << 31) - 1);
    b.initial_window_size(window)
        .initial_connection_window_size(connection_window)
        .max_frame_size(16 * 1024)
        .max_concurrent_streams(o.max_concurrent_streams)
        .max_header_list_size(header_list)
        // What an answer may have buffered before `res.write()` says to wait for `drain`.
        .max_send_buffer_size(if config.high_water_mark > 0 {
            config.high_water_mark
        } else {
            256 * 1024
        })
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(1024));
    b
}

/// Streams the client reset while their handler still held them, less streams answered
/// since: a client that resets faster than it lets streams finish is told to calm down.
#[derive(Default)]
pub(crate) struct Resets {
    outstanding: u32,
}

impl Resets {
    /// Past this many outstanding resets: GOAWAY `ENHANCE_YOUR_CALM`.
    pub const LIMIT: u32 = 100;

    /// A stream reset by the client before its answer; true once over the limit.
    pub fn reset(&mut self) -> bool {
        self.outstanding += 1;
        self.outstanding > Self::LIMIT
    }

    /// A stream answered whole.
    pub fn answered(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_count_against_answers() {
        let mut r = Resets::default();
        for _ in 0..Resets::LIMIT {
            assert!(!r.reset());
            r.answered();
        }
        for _ in 0..Resets::LIMIT {
            assert!(!r.reset());
        }
        assert!(r.reset(), "one past the limit");
    }
}
