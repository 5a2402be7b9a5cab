//! Buffers handed back and forth between a thread's connections, so that a connection holds
//! memory only while it has something to read or write.

/// Bounds what an idle server keeps: a burst of connections should not pin its buffers
/// forever. Within a turn up to `MAX_POOLED_IN_BURST` are kept (a publish to a thousand
/// sockets takes a buffer for each, every turn); the sweep trims back to `MAX_POOLED`.
const MAX_POOLED: usize = 256;
const MAX_POOLED_IN_BURST: usize = 4096;
/// Buffers that grew past this (a large response) are freed rather than pooled.
pub(crate) const MAX_POOLED_CAPACITY: usize = 64 * 1024;
const FRESH_CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    pub fn get(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FRESH_CAPACITY))
    }

    pub fn put(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0
            || buf.capacity() > MAX_POOLED_CAPACITY
            || self.free.len() >= MAX_POOLED_IN_BURST
        {
            return;
        }
        buf.clear();
        self.free.push(buf);
    }

    /// Lets go of what a burst left beyond the idle bound (the sweep, every 100 ms).
    pub fn trim(&mut self) {
        self.free.truncate(MAX_POOLED);
    }
}
