//! Static files, answered by the engine without the handler: the request path is checked
//! and mapped under a root, conditional requests (`If-None-Match`, `If-Modified-Since`),
//! ranges (`Range`, `If-Range`, `multipart/byteranges`) and precompressed variants
//! (`file.br`, `file.gz`) are decided here. The result is a [`Plan`]: a status, header lines
//! and body pieces (bytes, or spans of an open file that the connection streams).
//!
//! What a path resolves to is cached per mount (and for `sendFile`, per path and options):
//! the file and its variants, their validators and header lines, the bytes of small files
//! and an open descriptor of large ones, so that a repeated request makes no syscall. A
//! cached answer is trusted for one second; after that, one `stat` per file it depends on
//! revalidates it: a file changed, added or deleted on disk is seen within a second (see
//! [`cache`]).

mod cache;
mod resolve;

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http1::Status;
#[doc(hidden)]
pub use cache::CacheStats;
use cache::{Entry, FileCache, FileId, Limits};
use resolve::{Beneath, Located};

/// Bodies up to this size are read into the response buffer; larger ones are streamed.
pub const INLINE_LIMIT: u64 = 64 * 1024;
/// Files up to this size are held in the cache as bytes (copied into the write buffer per
/// answer); larger ones as an open descriptor, streamed with sendfile(2) behind a head sent
/// with `MSG_MORE`. Measured on 64 KiB files (one core, 64 connections): 25 µs of CPU per
/// answer copied, 19.5 µs streamed (30 µs before the head waited for the file's bytes).
const CACHE_INLINE: u64 = 16 * 1024;
/// More ranges than this in one request: the whole file is sent instead.
const MAX_RANGES: usize = 16;

/// How a mount (or a `sendFile`) serves files.
#[derive(Debug, Clone)]
pub struct StaticOptions {
    /// `Cache-Control: public, max-age=N`; none when absent.
    pub max_age: Option<u64>,
    /// Adds `immutable` to `Cache-Control`.
    pub immutable: bool,
    /// The file served for a directory; none: a directory is 404.
    pub index: Option<String>,
    /// A file (relative to the root) served for paths that name nothing.
    pub fallback: Option<String>,
    /// Whether path segments starting with `.` may be served.
    pub dotfiles: bool,
    /// Whether `file.br` / `file.gz` are served to clients that accept them.
    pub precompressed: bool,
}

impl Default for StaticOptions {
    fn default() -> StaticOptions {
        StaticOptions {
            max_age: None,
            immutable: false,
            index: Some("index.html".into()),
            fallback: None,
            dotfiles: false,
            precompressed: true,
        }
    }
}

/// A directory served under a route prefix.
///
/// Resolved files are cached in the mount (at most 1024 paths, 32 MiB of small files and
/// 256 open large files; the least recently used go first, and entries unused for 20 s). A
/// cached answer is served for up to one second without looking at the disk, then
/// revalidated with a `stat` of each file it depends on: changes on disk are seen within a
/// second. Paths that name nothing are not cached.
#[derive(Debug)]
pub struct StaticMount {
    /// Canonical: every file served resolves under it.
    root: PathBuf,
    pub options: StaticOptions,
    /// The root as a descriptor, for openat2 (Linux).
    beneath: Beneath,
    cache: FileCache,
}

impl StaticMount {
    pub fn new(root: impl AsRef<Path>, options: StaticOptions) -> io::Result<StaticMount> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        let beneath = Beneath::new(&root);
        Ok(StaticMount {
            root,
            options,
            beneath,
            cache: FileCache::new(Limits::default()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The counters of the mount's cache of resolved files.
    #[doc(hidden)]
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// The request headers that decide a static answer (raw values).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Conditions<'a> {
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub accept_encoding: Option<&'a [u8]>,
}

impl<'a> Conditions<'a> {
    pub fn from_headers(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Conditions<'a> {
        let mut c = Conditions::default();
        for (name, value) in headers {
            c.set(name, value);
        }
        c
    }

    /// Takes one request header if it is one of these (the first of a name counts).
    pub fn set(&mut self, name: &[u8], value: &'a [u8]) {
        let slot = if name.eq_ignore_ascii_case(b"if-none-match") {
            &mut self.if_none_match
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            &mut self.if_modified_since
        } else if name.eq_ignore_ascii_case(b"range") {
            &mut self.range
        } else if name.eq_ignore_ascii_case(b"if-range") {
            &mut self.if_range
        } else if name.eq_ignore_ascii_case(b"accept-encoding") {
            &mut self.accept_encoding
        } else {
            return;
        };
        slot.get_or_insert(value);
    }
}

#[derive(Debug)]
pub(crate) enum Piece {
    Bytes(Vec<u8>),
    /// `len` bytes of the plan's file from `offset`.
    File {
        offset: u64,
        len: u64,
    },
    /// Bytes of a cached file.
    Shared(Arc<[u8]>, std::ops::Range<usize>),
}

/// What to answer.
#[derive(Debug)]
pub(crate) struct Plan {
    pub status: Status,
    /// Header lines (`name: value\r\n`), besides those the engine writes.
    pub headers: Vec<u8>,
    /// The body's length (also for HEAD, which sends none of it).
    pub length: u64,
    pub pieces: Vec<Piece>,
    pub file: Option<Arc<File>>,
}

impl Plan {
    fn error(status: Status) -> Plan {
        let body = status.reason().as_bytes().to_vec();
        Plan {
            status,
            headers: b"content-type: text/plain; charset=utf-8\r\n".to_vec(),
            length: body.len() as u64,
            pieces: vec![Piece::Bytes(body)],
            file: None,
        }
    }

    /// `301` to `path` with a trailing slash (and the query): a directory asked for without
    /// it. Leading slashes are collapsed, so that the location cannot name another host.
    fn redirect(path: &[u8], query: &[u8]) -> Plan {
        let mut plan = Plan::error(Status(301));
        let rest = &path[path.iter().position(|&b| b != b'/').unwrap_or(path.len())..];
        let mut line = Vec::with_capacity(rest.len() + query.len() + 16);
        line.extend_from_slice(b"location: /");
        line.extend_from_slice(rest);
        if !rest.is_empty() {
            line.push(b'/');
        }
        line.extend_from_slice(query);
        line.extend_from_slice(b"\r\n");
        line.extend_from_slice(&plan.headers);
        plan.headers = line;
        plan
    }
}

fn io_status(e: &io::Error) -> Status {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Status(403),
        _ => Status::NOT_FOUND,
    }
}

/// The segments of a request path under a mount, percent-decoded and checked: encoded
/// slashes or backslashes, backslashes, NUL and bad UTF-8 are 400, `..` is 403, a dotfile
/// (unless allowed) is 404.
fn segments(raw: &[u8], dotfiles: bool) -> Result<Vec<String>, Status> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                raw.get(i + 1).and_then(|&c| hex(c)),
                raw.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(Status::BAD_REQUEST);
            };
            let v = (h * 16 + l) as u8;
            if v == b'/' || v == b'\\' || v == 0 {
                return Err(Status::BAD_REQUEST);
            }
            decoded.push(v);
            i += 3;
        } else {
            if b == b'\\' || b == 0 {
                return Err(Status::BAD_REQUEST);
            }
            decoded.push(b);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| Status::BAD_REQUEST)?;
    let mut out = Vec::new();
    for s in text.split('/') {
        match s {
            "" | "." => continue,
            ".." => return Err(Status(403)),
            // A drive or stream name (`C:`, `file:stream`) would leave the root on Windows.
            s if cfg!(windows) && s.contains(':') => return Err(Status::BAD_REQUEST),
            s if s.starts_with('.') && !dotfiles => return Err(Status::NOT_FOUND),
            s => out.push(s.to_string()),
        }
    }
    Ok(out)
}

/// The cache key of a mount's fallback answer (a request path never contains a NUL byte).
const FALLBACK_KEY: &[u8] = b"\0fallback";

/// Answers a request for `raw` (the path under the mount, as sent) from `mount`. `path` and
/// `query` are the whole request target's (a directory asked for without its trailing slash
/// is redirected to it).
pub(crate) fn serve(
    mount: &StaticMount,
    raw: &[u8],
    path: &[u8],
    query: &[u8],
    cond: &Conditions,
) -> Plan {
    let cache = &mount.cache;
    let now = cache.now();
    if let Some(entry) = cache.lookup(raw, now) {
        return answer_entry(&entry, path, query, cond);
    }
    let options = &mount.options;
    let found = segments(raw, options.dotfiles)
        .and_then(|segs| resolve::locate_segments(&mount.root, &mount.beneath, &segs, options));
    let (key, found) = match (found, &options.fallback) {
        (Err(Status::NOT_FOUND), Some(fallback)) => {
            if let Some(entry) = cache.lookup(FALLBACK_KEY, now) {
                return answer_entry(&entry, path, query, cond);
            }
            let found = resolve::locate_fallback(&mount.root, &mount.beneath, fallback, options)
                .map(|l| Located { dir: false, ..l });
            (FALLBACK_KEY, found)
        }
        (found, _) => (raw, found),
    };
    match found {
        Ok(located) if located.dir && !path.ends_with(b"/") => Plan::redirect(path, query),
        Ok(located) => {
            let entry = Arc::new(build(&mount.root, &mount.beneath, located, options, now));
            cache.insert(key, entry.clone(), now);
            answer_entry(&entry, path, query, cond)
        }
        Err(status) => Plan::error(status),
    }
}

/// `sendFile`'s answers, cached by path and options.
static SEND_FILES: LazyLock<FileCache> = LazyLock::new(|| FileCache::new(Limits::default()));

/// The `sendFile` cache key: the path and every option that shapes the answer.
fn send_key(path: &Path, options: &StaticOptions) -> Option<Vec<u8>> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.contains(&0) {
        return None;
    }
    let mut key = Vec::with_capacity(bytes.len() + 32);
    key.extend_from_slice(bytes);
    key.push(0);
    key.push(
        options.immutable as u8
            | (options.dotfiles as u8) << 1
            | (options.precompressed as u8) << 2
            | (options.max_age.is_some() as u8) << 3,
    );
    key.extend_from_slice(&options.max_age.unwrap_or(0).to_le_bytes());
    key.extend_from_slice(options.index.as_deref().unwrap_or("").as_bytes());
    Some(key)
}

/// Answers with one file chosen by the application (`sendFile`): its own directory is the
/// root that variants must stay in.
pub(crate) fn serve_path(path: &Path, options: &StaticOptions, cond: &Conditions) -> Plan {
    if !options.dotfiles
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
    {
        return Plan::error(Status::NOT_FOUND);
    }
    let cache = &*SEND_FILES;
    let now = cache.now();
    let key = send_key(path, options);
    if let Some(entry) = key.as_deref().and_then(|k| cache.lookup(k, now)) {
        return answer_entry(&entry, b"", b"", cond);
    }
    let Ok(canon) = std::fs::canonicalize(path) else {
        return Plan::error(Status::NOT_FOUND);
    };
    let root = canon.parent().map(Path::to_path_buf).unwrap_or_default();
    match resolve::locate_path(&root, &canon, options) {
        Ok(mut located) => {
            // Revalidation looks at the path the application gave.
            located.requested = if located.dir {
                path.join(options.index.as_deref().unwrap_or(""))
            } else {
                path.to_path_buf()
            };
            located.dir = false;
            let entry = Arc::new(build(&root, &Beneath::none(), located, options, now));
            if let Some(key) = &key {
                cache.insert(key, entry.clone(), now);
            }
            answer_entry(&entry, b"", b"", cond)
        }
        Err(status) => Plan::error(status),
    }
}

/// Opens and describes a located file and its variants: the cache entry of one path.
fn build(
    root: &Path,
    beneath: &Beneath,
    located: Located,
    options: &StaticOptions,
    now: u64,
) -> Entry {
    let ctype = content_type(&located.path);
    let (br, gz) = if options.precompressed {
        (
            beneath.variant(root, &located, ".br"),
            beneath.variant(root, &located, ".gz"),
        )
    } else {
        (None, None)
    };
    let vary = br.is_some() || gz.is_some();
    let mut witnesses = Vec::with_capacity(3);
    let identity = match located.file {
        Some(found) => Ok(found),
        None => resolve::open_regular(&located.path),
    };
    witnesses.push((
        located.requested,
        identity.as_ref().ok().map(|(_, m)| FileId::of(m)),
    ));
    let identity = identity.and_then(|(file, meta)| {
        Served::new(
            located.path.clone(),
            file,
            &meta,
            &ctype,
            None,
            vary,
            options,
        )
    });
    let mut variant = |found: Option<Result<(PathBuf, File, Metadata), Status>>,
                       ext: &str,
                       coding: &'static str| {
        let mut probe = located.path.as_os_str().to_owned();
        probe.push(ext);
        witnesses.push((
            PathBuf::from(probe),
            found
                .as_ref()
                .and_then(|f| f.as_ref().ok())
                .map(|(_, _, m)| FileId::of(m)),
        ));
        found.map(|f| {
            f.and_then(|(path, file, meta)| {
                Served::new(path, file, &meta, &ctype, Some(coding), vary, options)
            })
        })
    };
    let (br, gz) = if options.precompressed {
        (variant(br, ".br", "br"), variant(gz, ".gz", "gzip"))
    } else {
        (None, None)
    };
    Entry::new(located.dir, identity, br, gz, witnesses, now)
}

/// One file as served: its validators, header lines, and body.
#[derive(Debug)]
pub(crate) struct Served {
    /// Where it was opened (a multipart answer longer than the inline limit reopens it).
    path: PathBuf,
    body: Body,
    size: u64,
    etag: String,
    /// The modification time in whole seconds (what dates compare at).
    modified: u64,
    /// `etag`, `last-modified`, `cache-control`, `vary` (a 304's headers, up to
    /// `common_end`), `content-encoding`, `accept-ranges` (up to `ranges_end`), then
    /// `content-type`.
    head: Vec<u8>,
    common_end: usize,
    ranges_end: usize,
    ctype: String,
}

#[derive(Debug)]
enum Body {
    Bytes(Arc<[u8]>),
    File(Arc<File>),
}

impl Served {
    fn new(
        path: PathBuf,
        file: File,
        meta: &Metadata,
        ctype: &str,
        coding: Option<&str>,
        vary: bool,
        options: &StaticOptions,
    ) -> Result<Served, Status> {
        let size = meta.len();
        let tag = etag(meta);
        let modified = mtime(meta);
        let mut head = Vec::with_capacity(256);
        push_header(&mut head, "etag", &tag);
        push_header(
            &mut head,
            "last-modified",
            &httpdate::fmt_http_date(modified),
        );
        if let Some(age) = options.max_age {
            let value = if options.immutable {
                format!("public, max-age={age}, immutable")
            } else {
                format!("public, max-age={age}")
            };
            push_header(&mut head, "cache-control", &value);
        } else if options.immutable {
            push_header(
                &mut head,
                "cache-control",
                "public, max-age=31536000, immutable",
            );
        }
        if vary {
            push_header(&mut head, "vary", "Accept-Encoding");
        }
        let common_end = head.len();
        if let Some(coding) = coding {
            push_header(&mut head, "content-encoding", coding);
        }
        push_header(&mut head, "accept-ranges", "bytes");
        let ranges_end = head.len();
        push_header(&mut head, "content-type", ctype);
        let body = if size <= CACHE_INLINE {
            let bytes = read_span(&file, 0, size).map_err(|e| io_status(&e))?;
            if bytes.len() as u64 != size {
                // It changed while being read: answered as if it were missing.
                return Err(Status::NOT_FOUND);
            }
            Body::Bytes(bytes.into())
        } else {
            resolve::blocking(&file);
            Body::File(Arc::new(file))
        };
        Ok(Served {
            path,
            body,
            size,
            etag: tag,
            modified: whole_seconds(modified),
            head,
            common_end,
            ranges_end,
            ctype: ctype.to_string(),
        })
    }

    fn cached_bytes(&self) -> usize {
        match &self.body {
            Body::Bytes(b) => b.len(),
            Body::File(_) => 0,
        }
    }

    fn holds_file(&self) -> bool {
        matches!(self.body, Body::File(_))
    }

    #[cfg(test)]
    fn test_data(bytes: Vec<u8>) -> Served {
        Served {
            path: PathBuf::new(),
            size: bytes.len() as u64,
            body: Body::Bytes(bytes.into()),
            etag: String::new(),
            modified: 0,
            head: Vec::new(),
            common_end: 0,
            ranges_end: 0,
            ctype: String::new(),
        }
    }
}

/// Answers from a cache entry: the variant the client accepts, or a redirect for a
/// directory asked for without its trailing slash (`sendFile` passes no path: never).
fn answer_entry(entry: &Entry, path: &[u8], query: &[u8], cond: &Conditions) -> Plan {
    if entry.dir && !path.is_empty() && !path.ends_with(b"/") {
        return Plan::redirect(path, query);
    }
    let accept = cond.accept_encoding.unwrap_or(b"");
    let chosen = match (&entry.br, &entry.gzip) {
        (Some(br), _) if accepts(accept, "br") => br,
        (_, Some(gz)) if accepts(accept, "gzip") => gz,
        _ => &entry.identity,
    };
    match chosen {
        Ok(served) => answer(served, cond),
        Err(status) => Plan::error(*status),
    }
}

/// The answer about one file: `304`, `200`, `206` (one range or several), or `416`.
fn answer(s: &Served, cond: &Conditions) -> Plan {
    let size = s.size;
    let not_modified = match (cond.if_none_match, cond.if_modified_since) {
        (Some(inm), _) => none_match(inm, &s.etag),
        (None, Some(ims)) => {
            parse_date(ims).is_some_and(|since| s.modified <= whole_seconds(since))
        }
        _ => false,
    };
    if not_modified {
        return Plan {
            status: Status(304),
            headers: s.head[..s.common_end].to_vec(),
            length: 0,
            pieces: Vec::new(),
            file: None,
        };
    }
    let range_applies = cond.range.is_some()
        && match cond.if_range {
            None => true,
            Some(v) if v.first() == Some(&b'"') => v == s.etag.as_bytes(),
            Some(v) => parse_date(v).is_some_and(|d| whole_seconds(d) == s.modified),
        };
    let ranges = if range_applies {
        parse_ranges(cond.range.unwrap(), size)
    } else {
        None
    };
    let mut plan = match ranges {
        None => Plan {
            status: Status::OK,
            headers: s.head.clone(),
            length: size,
            pieces: vec![Piece::File {
                offset: 0,
                len: size,
            }],
            file: None,
        },
        Some(r) if r.is_empty() => {
            let mut plan = Plan::error(Status(416));
            push_header(
                &mut plan.headers,
                "content-range",
                &format!("bytes */{size}"),
            );
            return plan;
        }
        Some(r) if r.len() == 1 => {
            let (start, end) = r[0];
            let mut headers = s.head.clone();
            push_header(
                &mut headers,
                "content-range",
                &format!("bytes {start}-{end}/{size}"),
            );
            Plan {
                status: Status(206),
                headers,
                length: end - start + 1,
                pieces: vec![Piece::File {
                    offset: start,
                    len: end - start + 1,
                }],
                file: None,
            }
        }
        Some(r) => {
            let b = boundary(&s.etag);
            let ctype = &s.ctype;
            let mut headers = s.head[..s.ranges_end].to_vec();
            push_header(
                &mut headers,
                "content-type",
                &format!("multipart/byteranges; boundary={b}"),
            );
            let mut pieces = Vec::with_capacity(r.len() * 2 + 1);
            let mut length = 0;
            for (i, &(start, end)) in r.iter().enumerate() {
                let part = format!("{}--{b}\r\ncontent-type: {ctype}\r\ncontent-range: bytes {start}-{end}/{size}\r\n\r\n", if i == 0 { "" } else { "\r\n" });
                length += part.len() as u64 + end - start + 1;
                pieces.push(Piece::Bytes(part.into_bytes()));
                pieces.push(Piece::File {
                    offset: start,
                    len: end - start + 1,
                });
            }
            let closing = format!("\r\n--{b}--\r\n");
            length += closing.len() as u64;
            pieces.push(Piece::Bytes(closing.into_bytes()));
            Plan {
                status: Status(206),
                headers,
                length,
                pieces,
                file: None,
            }
        }
    };
    match &s.body {
        // Cached bytes, unless several ranges add up to more than a buffer should hold:
        // then they are streamed from the file, as large files are.
        Body::Bytes(bytes) if plan.length <= INLINE_LIMIT.max(size) => {
            for piece in plan.pieces.iter_mut() {
                if let Piece::File { offset, len } = *piece {
                    *piece = Piece::Shared(bytes.clone(), offset as usize..(offset + len) as usize);
                }
            }
        }
        Body::Bytes(_) => match resolve::open_regular(&s.path) {
            Ok((file, _)) => {
                resolve::blocking(&file);
                plan.file = Some(Arc::new(file));
            }
            Err(status) => return Plan::error(status),
        },
        // A small part of a large file is read now, so that a read error is still a clean
        // answer; the rest is streamed.
        Body::File(file) if plan.length <= CACHE_INLINE => {
            for piece in plan.pieces.iter_mut() {
                if let Piece::File { offset, len } = *piece {
                    match read_span(file, offset, len) {
                        Ok(bytes) => *piece = Piece::Bytes(bytes),
                        Err(e) => return Plan::error(io_status(&e)),
                    }
                }
            }
        }
        Body::File(file) => plan.file = Some(file.clone()),
    }
    plan
}

/// Whether `accept` (an `Accept-Encoding` value) takes `coding` with a non-zero weight.
fn accepts(accept: &[u8], coding: &str) -> bool {
    let Ok(accept) = std::str::from_utf8(accept) else {
        return false;
    };
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case(coding) {
            return false;
        }
        !parts.any(|p| {
            let p = p.trim();
            (p.starts_with("q=") || p.starts_with("Q="))
                && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        })
    })
}

fn mtime(meta: &Metadata) -> SystemTime {
    meta.modified().unwrap_or(UNIX_EPOCH)
}

fn etag(meta: &Metadata) -> String {
    let nanos = mtime(meta)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    format!("\"{:x}-{:x}-{:x}\"", meta.len(), nanos, ino)
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    if mime.type_() == mime_guess::mime::TEXT
        || essence == "application/javascript"
        || essence == "application/json"
        || essence == "image/svg+xml"
    {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// Whether `If-None-Match` names `tag` (weak comparison) or is `*`.
fn none_match(header: &[u8], tag: &str) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

fn parse_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?.trim()).ok()
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The ranges of a `Range` value over `size` bytes: `None` when the header is to be ignored
/// (not bytes, malformed, too many), `Some(empty)` when none is satisfiable.
fn parse_ranges(value: &[u8], size: u64) -> Option<Vec<(u64, u64)>> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let specs = value.strip_prefix("bytes=")?;
    let mut out = Vec::new();
    let mut count = 0;
    for spec in specs.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if first.is_empty() {
            if !digits(last) {
                return None;
            }
            let n: u64 = last.parse().unwrap_or(u64::MAX);
            if n > 0 && size > 0 {
                let n = n.min(size);
                out.push((size - n, size - 1));
            }
        } else {
            if !digits(first) || !(last.is_empty() || digits(last)) {
                return None;
            }
            let start: u64 = first.parse().unwrap_or(u64::MAX);
            let end: u64 = if last.is_empty() {
                u64::MAX
            } else {
                last.parse().unwrap_or(u64::MAX)
            };
            if end < start {
                return None;
            }
            if start < size {
                out.push((start, end.min(size - 1)));
            }
        }
    }
    if count == 0 {
        return None;
    }
    Some(out)
}

/// A boundary for `multipart/byteranges`, different per response.
fn boundary(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut h: u64 = 0xcbf29ce484222325;
    for b in tag.bytes().chain(n.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("harrier-{h:016x}{n:x}")
}

/// `len` bytes of `file` from `offset` (short if the file shrank), read at that offset: the
/// file's own position is not used, so that one descriptor serves several answers at once.
pub(crate) fn read_span(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; len as usize];
    let mut got = 0;
    while got < out.len() {
        match read_at(file, &mut out[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(got);
    Ok(out)
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks() {
        assert_eq!(segments(b"a/b.txt", false).unwrap(), vec!["a", "b.txt"]);
        assert_eq!(segments(b"a//./b", false).unwrap(), vec!["a", "b"]);
        assert_eq!(segments(b"../x", false), Err(Status(403)));
        assert_eq!(segments(b"%2e%2e/x", false), Err(Status(403)));
        assert_eq!(segments(b"a%2fb", false), Err(Status::BAD_REQUEST));
        assert_eq!(segments(b"a%5cb", false), Err(Status::BAD_REQUEST));
        assert_eq!(segments(b"a\\b", false), Err(Status::BAD_REQUEST));
        assert_eq!(segments(b"a%00", false), Err(Status::BAD_REQUEST));
        assert_eq!(segments(b"a%zz", false), Err(Status::BAD_REQUEST));
        assert_eq!(segments(b".env", false), Err(Status::NOT_FOUND));
        assert_eq!(segments(b".env", true).unwrap(), vec![".env"]);
        assert_eq!(segments(b"a%20b", false).unwrap(), vec!["a b"]);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_ranges(b"bytes=0-9", 100), Some(vec![(0, 9)]));
        assert_eq!(parse_ranges(b"bytes=90-", 100), Some(vec![(90, 99)]));
        assert_eq!(parse_ranges(b"bytes=-10", 100), Some(vec![(90, 99)]));
        assert_eq!(parse_ranges(b"bytes=-1000", 100), Some(vec![(0, 99)]));
        assert_eq!(parse_ranges(b"bytes=0-1000", 100), Some(vec![(0, 99)]));
        assert_eq!(
            parse_ranges(b"bytes=0-0, 5-6", 100),
            Some(vec![(0, 0), (5, 6)])
        );
        assert_eq!(parse_ranges(b"bytes=100-", 100), Some(vec![]));
        assert_eq!(parse_ranges(b"bytes=5-1", 100), None);
        assert_eq!(parse_ranges(b"items=0-1", 100), None);
        assert_eq!(parse_ranges(b"bytes=x-1", 100), None);
    }

    #[test]
    fn io_errors_are_403_or_404_never_500() {
        assert_eq!(
            io_status(&io::Error::from(io::ErrorKind::PermissionDenied)),
            Status(403)
        );
        assert_eq!(
            io_status(&io::Error::from(io::ErrorKind::NotFound)),
            Status::NOT_FOUND
        );
        assert_eq!(
            io_status(&io::Error::from(io::ErrorKind::Other)),
            Status::NOT_FOUND
        );
    }

    #[test]
    fn encodings() {
        assert!(accepts(b"gzip, deflate, br", "br"));
        assert!(accepts(b"gzip;q=0.5", "gzip"));
        assert!(!accepts(b"gzip;q=0, br", "gzip"));
        assert!(!accepts(b"deflate", "br"));
    }

    fn body(plan: &Plan) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &plan.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Shared(b, span) => out.extend_from_slice(&b[span.clone()]),
                Piece::File { offset, len } => {
                    out.extend(read_span(plan.file.as_ref().unwrap(), *offset, *len).unwrap())
                }
            }
        }
        out
    }

    fn header<'a>(plan: &'a Plan, name: &str) -> Option<&'a str> {
        std::str::from_utf8(&plan.headers)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("harrier-statics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn cached_variants_and_a_variant_added_later() {
        let dir = temp("variants");
        std::fs::write(dir.join("app.js"), b"plain").unwrap();
        std::fs::write(dir.join("app.js.gz"), b"gzip").unwrap();
        let mount = StaticMount::new(&dir, StaticOptions::default()).unwrap();
        let get = |accept: &'static [u8]| {
            serve(
                &mount,
                b"app.js",
                b"/app.js",
                b"",
                &Conditions {
                    accept_encoding: Some(accept),
                    ..Conditions::default()
                },
            )
        };
        for _ in 0..2 {
            let gz = get(b"gzip, br");
            assert_eq!(body(&gz), b"gzip");
            assert_eq!(header(&gz, "content-encoding"), Some("gzip"));
            assert_eq!(header(&gz, "vary"), Some("Accept-Encoding"));
            let plain = get(b"identity");
            assert_eq!(body(&plain), b"plain");
            assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
            assert_eq!(header(&plain, "content-encoding"), None);
        }
        assert_eq!(
            mount.cache_stats().misses,
            1,
            "one entry answers every encoding"
        );
        // A .br appears: seen once the entry's second is over.
        std::fs::write(dir.join("app.js.br"), b"brotli").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let br = get(b"gzip, br");
        assert_eq!(body(&br), b"brotli");
        assert_eq!(header(&br, "content-encoding"), Some("br"));
        // Conditional and range answers come from the cached entry too.
        let tag = header(&br, "etag").unwrap().to_string();
        let cond = Conditions {
            if_none_match: Some(tag.as_bytes()),
            accept_encoding: Some(b"br"),
            ..Conditions::default()
        };
        assert_eq!(
            serve(&mount, b"app.js", b"/app.js", b"", &cond).status,
            Status(304)
        );
        let cond = Conditions {
            range: Some(b"bytes=1-2"),
            ..Conditions::default()
        };
        let part = serve(&mount, b"app.js", b"/app.js", b"", &cond);
        assert_eq!((part.status, body(&part)), (Status(206), b"la".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redirects_fallback_and_send_file() {
        let dir = temp("redirects");
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/index.html"), b"docs").unwrap();
        std::fs::write(dir.join("app.html"), b"app").unwrap();
        let options = StaticOptions {
            fallback: Some("app.html".into()),
            ..StaticOptions::default()
        };
        let mount = StaticMount::new(&dir, options).unwrap();
        let none = Conditions::default();
        let r = serve(&mount, b"docs", b"/docs", b"?a=1", &none);
        assert_eq!(
            (r.status, header(&r, "location")),
            (Status(301), Some("/docs/?a=1"))
        );
        // Leading slashes are collapsed: the location stays on this host.
        let r = serve(&mount, b"/docs", b"//docs", b"", &none);
        assert_eq!(header(&r, "location"), Some("/docs/"));
        assert_eq!(
            body(&serve(&mount, b"docs/", b"/docs/", b"", &none)),
            b"docs"
        );
        assert_eq!(
            serve(&mount, b"docs", b"/docs", b"", &none).status,
            Status(301),
            "also from the cache"
        );
        // Unknown paths get the fallback (cached once), each still looked up on the disk.
        for p in [&b"a/b"[..], b"c", b"d/e/f"] {
            assert_eq!(body(&serve(&mount, p, p, b"", &none)), b"app");
        }
        assert_eq!(
            mount.cache_stats().entries,
            2,
            "the docs index and the fallback"
        );
        std::fs::write(dir.join("c"), b"now c").unwrap();
        assert_eq!(body(&serve(&mount, b"c", b"/c", b"", &none)), b"now c");

        // sendFile: cached by path and options.
        let file = dir.join("app.html");
        let a = serve_path(&file, &StaticOptions::default(), &none);
        let b = serve_path(
            &file,
            &StaticOptions {
                max_age: Some(5),
                ..StaticOptions::default()
            },
            &none,
        );
        assert_eq!(
            (body(&a), header(&a, "cache-control")),
            (b"app".to_vec(), None)
        );
        assert_eq!(
            (body(&b), header(&b, "cache-control")),
            (b"app".to_vec(), Some("public, max-age=5"))
        );
        assert_eq!(
            body(&serve_path(
                &dir.join("docs"),
                &StaticOptions::default(),
                &none
            )),
            b"docs",
            "a directory gives its index"
        );
        std::fs::write(&file, b"app v2").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            body(&serve_path(&file, &StaticOptions::default(), &none)),
            b"app v2"
        );
        std::fs::remove_file(&file).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            serve_path(&file, &StaticOptions::default(), &none).status,
            Status::NOT_FOUND
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
