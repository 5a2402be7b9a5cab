//! Static files, answered by the engine without the handler: the request path is checked
//! and mapped under a root, conditional requests (`If-None-Match`, `If-Modified-Since`),
//! ranges (`Range`, `If-Range`, `multipart/byteranges`) and precompressed variants
//! (`file.br`, `file.gz`) are decided here. The result is a [`Plan`]: a status, header lines
//! and body pieces (bytes, or spans of an open file that the connection streams).

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http1::Status;

/// Bodies up to this size are read into the response buffer; larger ones are streamed.
pub const INLINE_LIMIT: u64 = 64 * 1024;
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
        StaticOptions { max_age: None, immutable: false, index: Some("index.html".into()), fallback: None, dotfiles: false, precompressed: true }
    }
}

/// A directory served under a route prefix.
#[derive(Debug)]
pub struct StaticMount {
    /// Canonical: every file served resolves under it.
    root: PathBuf,
    pub options: StaticOptions,
}

impl StaticMount {
    pub fn new(root: impl AsRef<Path>, options: StaticOptions) -> io::Result<StaticMount> {
        let root = fs::canonicalize(root.as_ref())?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a directory", root.display())));
        }
        Ok(StaticMount { root, options })
    }

    pub fn root(&self) -> &Path {
        &self.root
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
    File { offset: u64, len: u64 },
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
    pub file: Option<File>,
}

impl Plan {
    fn error(status: Status) -> Plan {
        let body = status.reason().as_bytes().to_vec();
        Plan { status, headers: b"content-type: text/plain; charset=utf-8\r\n".to_vec(), length: body.len() as u64, pieces: vec![Piece::Bytes(body)], file: None }
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
            let (Some(h), Some(l)) = (raw.get(i + 1).and_then(|&c| hex(c)), raw.get(i + 2).and_then(|&c| hex(c))) else {
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

/// Resolves `path` (symlinks too) and checks that it stays under `root`; a directory gives
/// its index file.
fn locate(root: &Path, path: &Path, options: &StaticOptions) -> Result<(PathBuf, Metadata), Status> {
    let canon = fs::canonicalize(path).map_err(|e| io_status(&e))?;
    if !canon.starts_with(root) {
        return Err(Status(403));
    }
    let meta = fs::metadata(&canon).map_err(|e| io_status(&e))?;
    if meta.is_dir() {
        let Some(index) = options.index.as_deref().filter(|i| !i.is_empty()) else { return Err(Status::NOT_FOUND) };
        let file = fs::canonicalize(canon.join(index)).map_err(|e| io_status(&e))?;
        if !file.starts_with(root) {
            return Err(Status(403));
        }
        let meta = fs::metadata(&file).map_err(|e| io_status(&e))?;
        return if meta.is_file() { Ok((file, meta)) } else { Err(Status::NOT_FOUND) };
    }
    if !meta.is_file() {
        return Err(Status::NOT_FOUND);
    }
    Ok((canon, meta))
}

/// Answers a request for `raw` (the path under the mount, as sent) from `mount`.
pub(crate) fn serve(mount: &StaticMount, raw: &[u8], cond: &Conditions) -> Plan {
    let options = &mount.options;
    let found = segments(raw, options.dotfiles).and_then(|segs| {
        let mut path = mount.root.clone();
        path.extend(&segs);
        locate(&mount.root, &path, options)
    });
    let found = match (found, &options.fallback) {
        (Err(Status::NOT_FOUND), Some(fallback)) => locate(&mount.root, &mount.root.join(fallback.trim_start_matches('/')), options),
        (found, _) => found,
    };
    match found {
        Ok((path, _)) => serve_file(&mount.root, &path, options, cond),
        Err(status) => Plan::error(status),
    }
}

/// Answers with one file chosen by the application (`sendFile`): its own directory is the
/// root that variants must stay in.
pub(crate) fn serve_path(path: &Path, options: &StaticOptions, cond: &Conditions) -> Plan {
    if !options.dotfiles && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
        return Plan::error(Status::NOT_FOUND);
    }
    let Ok(canon) = fs::canonicalize(path) else { return Plan::error(Status::NOT_FOUND) };
    let root = canon.parent().map(Path::to_path_buf).unwrap_or_default();
    match locate(&root, &canon, options) {
        Ok((path, _)) => serve_file(&root, &path, options, cond),
        Err(status) => Plan::error(status),
    }
}

/// Whether `accept` (an `Accept-Encoding` value) takes `coding` with a non-zero weight.
fn accepts(accept: &[u8], coding: &str) -> bool {
    let Ok(accept) = std::str::from_utf8(accept) else { return false };
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case(coding) {
            return false;
        }
        !parts.any(|p| {
            let p = p.trim();
            (p.starts_with("q=") || p.starts_with("Q=")) && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        })
    })
}

fn variant(root: &Path, path: &Path, ext: &str) -> Option<(PathBuf, Metadata)> {
    let mut name = path.as_os_str().to_owned();
    name.push(ext);
    let canon = fs::canonicalize(PathBuf::from(name)).ok()?;
    if !canon.starts_with(root) {
        return None;
    }
    let meta = fs::metadata(&canon).ok()?;
    meta.is_file().then_some((canon, meta))
}

fn mtime(meta: &Metadata) -> SystemTime {
    meta.modified().unwrap_or(UNIX_EPOCH)
}

fn etag(meta: &Metadata) -> String {
    let nanos = mtime(meta).duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
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
    if mime.type_() == mime_guess::mime::TEXT || essence == "application/javascript" || essence == "application/json" || essence == "image/svg+xml" {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// Whether `If-None-Match` names `tag` (weak comparison) or is `*`.
fn none_match(header: &[u8], tag: &str) -> bool {
    let Ok(header) = std::str::from_utf8(header) else { return false };
    header.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

fn parse_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?.trim()).ok()
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
            let end: u64 = if last.is_empty() { u64::MAX } else { last.parse().unwrap_or(u64::MAX) };
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

fn serve_file(root: &Path, path: &Path, options: &StaticOptions, cond: &Conditions) -> Plan {
    let mut chosen = (path.to_path_buf(), None::<&str>);
    let mut vary = false;
    if options.precompressed {
        let br = variant(root, path, ".br");
        let gz = variant(root, path, ".gz");
        vary = br.is_some() || gz.is_some();
        let accept = cond.accept_encoding.unwrap_or(b"");
        if let Some((p, _)) = br.filter(|_| accepts(accept, "br")) {
            chosen = (p, Some("br"));
        } else if let Some((p, _)) = gz.filter(|_| accepts(accept, "gzip")) {
            chosen = (p, Some("gzip"));
        }
    }
    let file = match File::open(&chosen.0) {
        Ok(f) => f,
        Err(e) => return Plan::error(io_status(&e)),
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Plan::error(Status::NOT_FOUND),
        Err(e) => return Plan::error(io_status(&e)),
    };
    let size = meta.len();
    let tag = etag(&meta);
    let modified = mtime(&meta);
    let last_modified = httpdate::fmt_http_date(modified);

    // Headers every answer about this file carries (200, 206, 304).
    let mut headers = Vec::with_capacity(256);
    push_header(&mut headers, "etag", &tag);
    push_header(&mut headers, "last-modified", &last_modified);
    if let Some(age) = options.max_age {
        let value = if options.immutable { format!("public, max-age={age}, immutable") } else { format!("public, max-age={age}") };
        push_header(&mut headers, "cache-control", &value);
    } else if options.immutable {
        push_header(&mut headers, "cache-control", "public, max-age=31536000, immutable");
    }
    if vary {
        push_header(&mut headers, "vary", "Accept-Encoding");
    }

    let not_modified = match (cond.if_none_match, cond.if_modified_since) {
        (Some(inm), _) => none_match(inm, &tag),
        (None, Some(ims)) => parse_date(ims).is_some_and(|since| whole_seconds(modified) <= whole_seconds(since)),
        _ => false,
    };
    if not_modified {
        return Plan { status: Status(304), headers, length: 0, pieces: Vec::new(), file: None };
    }

    let ctype = content_type(path);
    if let Some(coding) = chosen.1 {
        push_header(&mut headers, "content-encoding", coding);
    }
    push_header(&mut headers, "accept-ranges", "bytes");

    let range_applies = cond.range.is_some()
        && match cond.if_range {
            None => true,
            Some(v) if v.first() == Some(&b'"') => v == tag.as_bytes(),
            Some(v) => parse_date(v).is_some_and(|d| whole_seconds(d) == whole_seconds(modified)),
        };
    let ranges = if range_applies { parse_ranges(cond.range.unwrap(), size) } else { None };
    let mut plan = match ranges {
        None => {
            push_header(&mut headers, "content-type", &ctype);
            Plan { status: Status::OK, headers, length: size, pieces: vec![Piece::File { offset: 0, len: size }], file: None }
        }
        Some(r) if r.is_empty() => {
            let mut plan = Plan::error(Status(416));
            push_header(&mut plan.headers, "content-range", &format!("bytes */{size}"));
            return plan;
        }
        Some(r) if r.len() == 1 => {
            let (start, end) = r[0];
            push_header(&mut headers, "content-type", &ctype);
            push_header(&mut headers, "content-range", &format!("bytes {start}-{end}/{size}"));
            Plan { status: Status(206), headers, length: end - start + 1, pieces: vec![Piece::File { offset: start, len: end - start + 1 }], file: None }
        }
        Some(r) => {
            let b = boundary(&tag);
            push_header(&mut headers, "content-type", &format!("multipart/byteranges; boundary={b}"));
            let mut pieces = Vec::with_capacity(r.len() * 2 + 1);
            let mut length = 0;
            for (i, &(start, end)) in r.iter().enumerate() {
                let part = format!("{}--{b}\r\ncontent-type: {ctype}\r\ncontent-range: bytes {start}-{end}/{size}\r\n\r\n", if i == 0 { "" } else { "\r\n" });
                length += part.len() as u64 + end - start + 1;
                pieces.push(Piece::Bytes(part.into_bytes()));
                pieces.push(Piece::File { offset: start, len: end - start + 1 });
            }
            let closing = format!("\r\n--{b}--\r\n");
            length += closing.len() as u64;
            pieces.push(Piece::Bytes(closing.into_bytes()));
            Plan { status: Status(206), headers, length, pieces, file: None }
        }
    };
    // Small bodies are read now, so that a read error is still a clean answer.
    if plan.length <= INLINE_LIMIT {
        for piece in plan.pieces.iter_mut() {
            if let Piece::File { offset, len } = *piece {
                match read_span(&file, offset, len) {
                    Ok(bytes) => *piece = Piece::Bytes(bytes),
                    Err(e) => return Plan::error(io_status(&e)),
                }
            }
        }
    } else {
        plan.file = Some(file);
    }
    plan
}

/// `len` bytes of `file` from `offset`; short if the file shrank.
pub(crate) fn read_span(mut file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(offset))?;
    file.take(len).read_to_end(&mut out)?;
    Ok(out)
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
        assert_eq!(parse_ranges(b"bytes=0-0, 5-6", 100), Some(vec![(0, 0), (5, 6)]));
        assert_eq!(parse_ranges(b"bytes=100-", 100), Some(vec![]));
        assert_eq!(parse_ranges(b"bytes=5-1", 100), None);
        assert_eq!(parse_ranges(b"items=0-1", 100), None);
        assert_eq!(parse_ranges(b"bytes=x-1", 100), None);
    }

    #[test]
    fn io_errors_are_403_or_404_never_500() {
        assert_eq!(io_status(&io::Error::from(io::ErrorKind::PermissionDenied)), Status(403));
        assert_eq!(io_status(&io::Error::from(io::ErrorKind::NotFound)), Status::NOT_FOUND);
        assert_eq!(io_status(&io::Error::from(io::ErrorKind::Other)), Status::NOT_FOUND);
    }

    #[test]
    fn encodings() {
        assert!(accepts(b"gzip, deflate, br", "br"));
        assert!(accepts(b"gzip;q=0.5", "gzip"));
        assert!(!accepts(b"gzip;q=0, br", "gzip"));
        assert!(!accepts(b"deflate", "br"));
    }
}
