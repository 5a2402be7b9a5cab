//! The cache of resolved files: what a request path resolved to (the file, its variants,
//! their validators and precomputed headers, and the bytes of small files or an open
//! descriptor of large ones), so that a repeated request costs no syscall at all.
//!
//! An entry is trusted for [`TRUST_MS`] (1 s) after it was built or last checked; the first
//! request after that stats every file the answer depended on (the requested file, and its
//! `.br` / `.gz` siblings when precompressed variants are on) and keeps the entry only if
//! each is as it was (device, inode, size, modification and change times; absent stays
//! absent). A change is therefore seen within a second. Only answers about existing files
//! are cached: a path that names nothing is resolved again on every request.
//!
//! Bounded per cache: entries, bytes held, and open descriptors; past any of these the least
//! recently used eighth is dropped, and entries unused for [`INACTIVE_MS`] go at the next
//! sweep (so that a deleted large file is not held open for long by an idle entry).

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::Served;
use crate::http1::Status;

/// How long an entry is served without looking at the disk.
pub(crate) const TRUST_MS: u64 = 1000;
/// Entries not used for this long are dropped (at the next sweep, at most once a second).
pub(crate) const INACTIVE_MS: u64 = 20_000;
const SWEEP_MS: u64 = 1000;

/// The bounds of one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub entries: usize,
    /// Bytes of small files held in memory.
    pub bytes: usize,
    /// Open descriptors of large files.
    pub files: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            entries: 1024,
            bytes: 32 * 1024 * 1024,
            files: 256,
        }
    }
}

/// Counters of one cache (for tests and diagnostics).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub files: usize,
    /// Lookups answered from an entry (fresh or revalidated).
    pub hits: u64,
    /// Lookups that found no usable entry: the path was resolved from the disk.
    pub misses: u64,
    /// Entries found unchanged after their trust period.
    pub revalidated: u64,
    /// Entries found changed (or gone) after their trust period, and dropped.
    pub invalidated: u64,
}

/// What identifies a file's contents for revalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    pub fn of(meta: &Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let nanos = |t: std::io::Result<std::time::SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos() as i64))
            };
            FileId {
                dev: 0,
                ino: 0,
                size: meta.len(),
                mtime: nanos(meta.modified()),
                ctime: nanos(meta.created()),
            }
        }
    }

    /// The file at `path` now (symlinks followed), if it is a regular file.
    pub fn probe(path: &std::path::Path) -> Option<FileId> {
        fs::metadata(path)
            .ok()
            .filter(Metadata::is_file)
            .map(|m| FileId::of(&m))
    }
}

/// One cached answer: a request path's file and its variants.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Found as a directory's index (a request without the trailing slash is redirected).
    pub dir: bool,
    pub identity: Result<Served, Status>,
    pub br: Option<Result<Served, Status>>,
    pub gzip: Option<Result<Served, Status>>,
    /// The paths the answer depends on, and what each was (`None`: absent).
    pub witnesses: Vec<(PathBuf, Option<FileId>)>,
    /// When the entry was built or last found unchanged (the cache's clock, ms).
    checked: AtomicU64,
}

impl Entry {
    pub fn new(
        dir: bool,
        identity: Result<Served, Status>,
        br: Option<Result<Served, Status>>,
        gzip: Option<Result<Served, Status>>,
        witnesses: Vec<(PathBuf, Option<FileId>)>,
        now: u64,
    ) -> Entry {
        Entry {
            dir,
            identity,
            br,
            gzip,
            witnesses,
            checked: AtomicU64::new(now),
        }
    }

    fn served(&self) -> impl Iterator<Item = &Result<Served, Status>> {
        std::iter::once(&self.identity)
            .chain(self.br.iter())
            .chain(self.gzip.iter())
    }

    /// Only entries whose every file could be served are kept.
    pub fn cacheable(&self) -> bool {
        self.served().all(Result::is_ok)
    }

    /// (bytes held, descriptors held)
    fn cost(&self) -> (usize, usize) {
        self.served().flatten().fold((0, 0), |(b, f), s| {
            (b + s.cached_bytes(), f + s.holds_file() as usize)
        })
    }

    /// Whether every file the answer depends on is as it was.
    fn unchanged(&self) -> bool {
        self.witnesses
            .iter()
            .all(|(path, id)| FileId::probe(path) == *id)
    }
}

struct Slot {
    entry: Arc<Entry>,
    /// Last use (the cache's clock, ms).
    used: u64,
    bytes: usize,
    files: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Box<[u8]>, Slot>,
    bytes: usize,
    files: usize,
    last_sweep: u64,
}

impl Inner {
    fn remove(&mut self, key: &[u8]) {
        if let Some(slot) = self.map.remove(key) {
            self.bytes -= slot.bytes;
            self.files -= slot.files;
        }
    }

    /// Drops the slots `drop` picks, keeping the totals.
    fn drop_where(&mut self, drop: impl Fn(&Slot) -> bool) {
        let (mut bytes, mut files) = (0, 0);
        self.map.retain(|_, s| {
            if drop(s) {
                bytes += s.bytes;
                files += s.files;
                false
            } else {
                true
            }
        });
        self.bytes -= bytes;
        self.files -= files;
    }

    /// Drops the least recently used eighth (at least one entry).
    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.map.values().map(|s| s.used).collect();
        if ages.is_empty() {
            return;
        }
        let k = (ages.len() / 8).max(1) - 1;
        let (_, &mut cut, _) = ages.select_nth_unstable(k);
        self.drop_where(|s| s.used <= cut);
    }

    fn sweep(&mut self, now: u64) {
        if now.saturating_sub(self.last_sweep) < SWEEP_MS {
            return;
        }
        self.last_sweep = now;
        self.drop_where(|s| now.saturating_sub(s.used) >= INACTIVE_MS);
    }
}

/// The resolved files of one mount (or of `sendFile`), shared by the I/O threads that serve
/// it: the lock is held for a hash lookup, never across a syscall.
pub(crate) struct FileCache {
    inner: Mutex<Inner>,
    epoch: Instant,
    limits: Limits,
    hits: AtomicU64,
    misses: AtomicU64,
    revalidated: AtomicU64,
    invalidated: AtomicU64,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FileCache {
    pub fn new(limits: Limits) -> FileCache {
        FileCache {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
            limits,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            revalidated: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cache's clock: milliseconds since it was made.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The entry for `key`, revalidated if its trust period is over; `None` when there is
    /// none or it changed (then it is dropped).
    pub fn lookup(&self, key: &[u8], now: u64) -> Option<Arc<Entry>> {
        let entry = {
            let mut inner = self.lock();
            inner.sweep(now);
            match inner.map.get_mut(key) {
                Some(slot) => {
                    slot.used = now;
                    slot.entry.clone()
                }
                None => {
                    drop(inner);
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        };
        if now.saturating_sub(entry.checked.load(Ordering::Relaxed)) < TRUST_MS {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(entry);
        }
        // Outside the lock: stats of the files the answer depends on.
        if entry.unchanged() {
            entry.checked.store(now, Ordering::Relaxed);
            self.revalidated.fetch_add(1, Ordering::Relaxed);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(entry);
        }
        let mut inner = self.lock();
        if inner
            .map
            .get(key)
            .is_some_and(|s| Arc::ptr_eq(&s.entry, &entry))
        {
            inner.remove(key);
        }
        drop(inner);
        self.invalidated.fetch_add(1, Ordering::Relaxed);
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Keeps `entry` for `key` (if it is cacheable and fits), making room if needed.
    pub fn insert(&self, key: &[u8], entry: Arc<Entry>, now: u64) {
        if !entry.cacheable() {
            return;
        }
        let (bytes, files) = entry.cost();
        if bytes > self.limits.bytes || files > self.limits.files || self.limits.entries == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.remove(key);
        while inner.map.len() >= self.limits.entries
            || inner.bytes + bytes > self.limits.bytes
            || inner.files + files > self.limits.files
        {
            inner.evict();
        }
        inner.bytes += bytes;
        inner.files += files;
        inner.map.insert(
            key.into(),
            Slot {
                entry,
                used: now,
                bytes,
                files,
            },
        );
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes, files) = {
            let inner = self.lock();
            (inner.map.len(), inner.bytes, inner.files)
        };
        CacheStats {
            entries,
            bytes,
            files,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            revalidated: self.revalidated.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize, now: u64) -> Arc<Entry> {
        Arc::new(Entry::new(
            false,
            Ok(Served::test_data(vec![7; bytes])),
            None,
            None,
            Vec::new(),
            now,
        ))
    }

    #[test]
    fn bounded_by_entries_and_bytes_least_recently_used_first() {
        let cache = FileCache::new(Limits {
            entries: 16,
            bytes: 1000,
            files: 4,
        });
        for i in 0..16u64 {
            cache.insert(format!("k{i}").as_bytes(), entry(10, i), i);
        }
        assert_eq!(cache.stats().entries, 16);
        // k0 is used again: it is no longer the oldest.
        assert!(cache.lookup(b"k0", 100).is_some());
        cache.insert(b"k16", entry(10, 101), 101);
        let s = cache.stats();
        assert!(s.entries <= 16 && s.entries >= 15, "{s:?}");
        assert!(
            cache.lookup(b"k1", 102).is_none(),
            "the least recently used went first"
        );
        assert!(cache.lookup(b"k0", 102).is_some());
        assert!(cache.lookup(b"k16", 102).is_some());
        // Bytes: a 900-byte entry pushes most others out.
        cache.insert(b"big", entry(900, 103), 103);
        let s = cache.stats();
        assert!(s.bytes <= 1000, "{s:?}");
        assert!(cache.lookup(b"big", 104).is_some());
        // Larger than the whole budget: not kept.
        cache.insert(b"huge", entry(2000, 105), 105);
        assert!(cache.lookup(b"huge", 105).is_none());
        assert!(cache.stats().bytes <= 1000);
    }

    #[test]
    fn unused_entries_are_swept_and_errors_not_kept() {
        let cache = FileCache::new(Limits::default());
        cache.insert(b"a", entry(1, 0), 0);
        cache.insert(b"b", entry(1, 0), 0);
        assert!(cache.lookup(b"a", INACTIVE_MS - 10).is_some());
        // The next sweep (a second later at most) drops `b` (unused since 0), not `a`.
        assert!(cache.lookup(b"c", INACTIVE_MS + SWEEP_MS).is_none());
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes), (1, 1));
        cache.insert(
            b"err",
            Arc::new(Entry::new(
                false,
                Err(Status(403)),
                None,
                None,
                Vec::new(),
                0,
            )),
            0,
        );
        assert_eq!(cache.stats().entries, 1);
    }
}
