//! What the engine can be told, with its defaults.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// I/O threads, each with its own poll and listener; 0 means one per core.
    pub io_threads: usize,
    /// A request whose handler has not started answering by then gets 503.
    pub handler_timeout: Duration,
    /// How long `shutdown` waits for in-flight requests before closing what is left.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 0,
            io_threads: 0,
            handler_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    pub(crate) fn thread_count(&self) -> usize {
        let n = if self.io_threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { self.io_threads };
        n.min(64)
    }
}
