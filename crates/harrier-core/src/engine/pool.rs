//! Buffers handed back and forth between a thread's connections, so that a connection holds
//! memory only while it has something to read or write.

/// Bounds what an idle server keeps: a burst of connections should not pin its buffers forever.
const MAX_POOLED: usize = 256;
/// Buffers that grew past this (a large response) are freed rather than pooled.
const MAX_POOLED_CAPACITY: usize = 64 * 1024;
const FRESH_CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    pub fn get(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(FRESH_CAPACITY))
    }

    pub fn put(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > MAX_POOLED_CAPACITY || self.free.len() >= MAX_POOLED {
            return;
        }
        buf.clear();
        self.free.push(buf);
    }
}
