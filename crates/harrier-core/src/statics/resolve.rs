//! Finding the file a request names under a root, without leaving it.
//!
//! On Linux the file is opened with `openat2(root, path, RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` from a descriptor of the root: one syscall that cannot leave the
//! root and meets no symbolic link, so the path it opened is the file's real path. Anything
//! it does not settle (a symlink on the way, a permission error, a kernel without openat2)
//! goes the portable way: `canonicalize` (symlinks resolved) and a check that the result lies
//! under the root; both ways answer alike.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use super::{io_status, StaticOptions};
use crate::http1::Status;

/// What a request path resolved to.
#[derive(Debug)]
pub(crate) struct Located {
    /// The path the request named (with the index appended for a directory): what the cache
    /// stats to revalidate (symlinks followed).
    pub requested: PathBuf,
    /// The file's real path: its variants sit beside it, its name gives its type.
    pub path: PathBuf,
    /// `path` relative to the root, when openat2 found it (its variants are probed so too).
    pub rel: Option<String>,
    /// The file and its metadata, when it was opened while resolving.
    pub file: Option<(File, Metadata)>,
    /// The path named a directory, and this is its index.
    pub dir: bool,
}

/// Opens files beneath a root with openat2 (Linux; elsewhere never available).
#[derive(Debug)]
pub(crate) struct Beneath {
    #[cfg(target_os = "linux")]
    root: Option<std::os::fd::OwnedFd>,
    #[cfg(target_os = "linux")]
    off: std::sync::atomic::AtomicBool,
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    /// openat2(2) with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`.
    pub fn openat2(dir: RawFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
        let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: open_how is plain data; zero is a valid value of every field.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        loop {
            // SAFETY: a valid C string and a valid open_how of the size passed.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    path.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            if fd >= 0 {
                // SAFETY: a new descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// An `O_PATH` descriptor of `root`, if openat2 works beneath it.
    pub fn root(root: &std::path::Path) -> Option<OwnedFd> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(root.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        use std::os::fd::AsRawFd;
        openat2(fd.as_raw_fd(), ".", libc::O_PATH | libc::O_CLOEXEC).ok()?;
        Some(fd)
    }
}

/// What the openat2 way decided.
enum Fast {
    Found(Located),
    Answer(Status),
    /// Not decided here: the portable way decides.
    Slow,
}

/// An error of the openat2 way: a missing path is final, anything else goes the portable way.
#[cfg(target_os = "linux")]
fn settled(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG)
    )
}

/// A relative path of plain segments (nothing that openat2 and `canonicalize` could read
/// differently: no empty, `.` or `..` segment, not absolute).
fn plain(rel: &str) -> bool {
    !rel.is_empty()
        && rel.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && !s.contains('\0')
                && !(cfg!(windows) && (s.contains('\\') || s.contains(':')))
        })
}

impl Beneath {
    pub fn new(root: &Path) -> Beneath {
        #[cfg(target_os = "linux")]
        {
            Beneath {
                root: sys::root(root),
                off: std::sync::atomic::AtomicBool::new(false),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = root;
            Beneath {}
        }
    }

    /// No root: everything goes the portable way (`sendFile`).
    pub fn none() -> Beneath {
        #[cfg(target_os = "linux")]
        {
            Beneath {
                root: None,
                off: std::sync::atomic::AtomicBool::new(true),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Beneath {}
        }
    }

    /// Opens `rel` (for reading, without blocking on a FIFO) beneath the root; `None` when
    /// openat2 is not available.
    #[cfg(target_os = "linux")]
    fn open(&self, rel: &str) -> Option<io::Result<File>> {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        let root = self.root.as_ref()?;
        if self.off.load(Ordering::Relaxed) {
            return None;
        }
        match sys::openat2(
            root.as_raw_fd(),
            rel,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        ) {
            Ok(fd) => Some(Ok(File::from(fd))),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                self.off.store(true, Ordering::Relaxed);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(&self, _rel: &str) -> Option<io::Result<File>> {
        None
    }

    /// `rel` (plain segments joined by `/`, or `.`) under `root`, a directory giving its index.
    fn fast(&self, root: &Path, rel: String, options: &StaticOptions) -> Fast {
        let file = match self.open(&rel) {
            None => return Fast::Slow,
            Some(Ok(f)) => f,
            Some(Err(e)) => return on_error(&e),
        };
        let Ok(meta) = file.metadata() else {
            return Fast::Slow;
        };
        if meta.is_file() {
            let path = if rel == "." {
                root.to_path_buf()
            } else {
                root.join(&rel)
            };
            return Fast::Found(Located {
                requested: path.clone(),
                path,
                rel: Some(rel),
                file: Some((file, meta)),
                dir: false,
            });
        }
        if !meta.is_dir() {
            return Fast::Answer(Status::NOT_FOUND);
        }
        drop(file);
        let Some(index) = options.index.as_deref().filter(|i| !i.is_empty()) else {
            return Fast::Answer(Status::NOT_FOUND);
        };
        if !plain(index) {
            return Fast::Slow;
        }
        let rel = if rel == "." {
            index.to_string()
        } else {
            format!("{rel}/{index}")
        };
        let file = match self.open(&rel) {
            None => return Fast::Slow,
            Some(Ok(f)) => f,
            Some(Err(e)) => return on_error(&e),
        };
        match file.metadata() {
            Ok(m) if m.is_file() => {
                let path = root.join(&rel);
                Fast::Found(Located {
                    requested: path.clone(),
                    path,
                    rel: Some(rel),
                    file: Some((file, m)),
                    dir: true,
                })
            }
            Ok(_) => Fast::Answer(Status::NOT_FOUND),
            Err(_) => Fast::Slow,
        }
    }

    /// The variant `ext` (`.br`, `.gz`) of a located file, opened: `None` when there is none
    /// (or it is not a regular file, or leaves the root).
    pub fn variant(
        &self,
        root: &Path,
        located: &Located,
        ext: &str,
    ) -> Option<Result<(PathBuf, File, Metadata), Status>> {
        if let Some(rel) = &located.rel {
            match self.open(&format!("{rel}{ext}")) {
                Some(Ok(file)) => match file.metadata() {
                    Ok(m) if m.is_file() => {
                        return Some(Ok((with_ext(&located.path, ext), file, m)))
                    }
                    Ok(_) => return None,
                    Err(_) => {}
                },
                #[cfg(target_os = "linux")]
                Some(Err(e)) if settled(&e) => return None,
                _ => {}
            }
        }
        let (path, _) = variant(root, &located.path, ext)?;
        Some(open_regular(&path).map(|(f, m)| (path, f, m)))
    }
}

#[cfg(target_os = "linux")]
fn on_error(e: &io::Error) -> Fast {
    if settled(e) {
        Fast::Answer(Status::NOT_FOUND)
    } else {
        Fast::Slow
    }
}

#[cfg(not(target_os = "linux"))]
fn on_error(_e: &io::Error) -> Fast {
    Fast::Slow
}

/// The segments of a request path (checked) under `root`.
pub(crate) fn locate_segments(
    root: &Path,
    beneath: &Beneath,
    segs: &[String],
    options: &StaticOptions,
) -> Result<Located, Status> {
    let rel = if segs.is_empty() {
        ".".to_string()
    } else {
        segs.join("/")
    };
    if rel == "." || plain(&rel) {
        match beneath.fast(root, rel, options) {
            Fast::Found(l) => return Ok(l),
            Fast::Answer(s) => return Err(s),
            Fast::Slow => {}
        }
    }
    let mut path = root.to_path_buf();
    path.extend(segs);
    locate_path(root, &path, options)
}

/// The mount's fallback file (relative to the root).
pub(crate) fn locate_fallback(
    root: &Path,
    beneath: &Beneath,
    fallback: &str,
    options: &StaticOptions,
) -> Result<Located, Status> {
    let rel = fallback.trim_start_matches('/');
    if plain(rel) {
        match beneath.fast(root, rel.to_string(), options) {
            Fast::Found(l) => return Ok(l),
            Fast::Answer(s) => return Err(s),
            Fast::Slow => {}
        }
    }
    locate_path(root, &root.join(rel), options)
}

/// The portable way: resolves `path` (symlinks too) and checks that it stays under `root`;
/// a directory gives its index file.
pub(crate) fn locate_path(
    root: &Path,
    path: &Path,
    options: &StaticOptions,
) -> Result<Located, Status> {
    let canon = fs::canonicalize(path).map_err(|e| io_status(&e))?;
    if !canon.starts_with(root) {
        return Err(Status(403));
    }
    let meta = fs::metadata(&canon).map_err(|e| io_status(&e))?;
    if meta.is_dir() {
        let Some(index) = options.index.as_deref().filter(|i| !i.is_empty()) else {
            return Err(Status::NOT_FOUND);
        };
        let file = fs::canonicalize(canon.join(index)).map_err(|e| io_status(&e))?;
        if !file.starts_with(root) {
            return Err(Status(403));
        }
        let meta = fs::metadata(&file).map_err(|e| io_status(&e))?;
        return if meta.is_file() {
            Ok(Located {
                requested: path.join(index),
                path: file,
                rel: None,
                file: None,
                dir: true,
            })
        } else {
            Err(Status::NOT_FOUND)
        };
    }
    if !meta.is_file() {
        return Err(Status::NOT_FOUND);
    }
    Ok(Located {
        requested: path.to_path_buf(),
        path: canon,
        rel: None,
        file: None,
        dir: false,
    })
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

/// The portable way for a variant: it exists, is a regular file, and resolves under `root`.
fn variant(root: &Path, path: &Path, ext: &str) -> Option<(PathBuf, Metadata)> {
    let canon = fs::canonicalize(with_ext(path, ext)).ok()?;
    if !canon.starts_with(root) {
        return None;
    }
    let meta = fs::metadata(&canon).ok()?;
    meta.is_file().then_some((canon, meta))
}

/// Opens `path` for reading (without blocking on a FIFO): a regular file, or 403/404.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), Status> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(|e| io_status(&e))?;
    regular(file)
}

/// `file` if it is a regular file (then 403/404 by its error, or 404).
pub(crate) fn regular(file: File) -> Result<(File, Metadata), Status> {
    match file.metadata() {
        Ok(m) if m.is_file() => Ok((file, m)),
        Ok(_) => Err(Status::NOT_FOUND),
        Err(e) => Err(io_status(&e)),
    }
}

/// Clears `O_NONBLOCK` (set at open against FIFOs) from a file that is kept to be streamed.
pub(crate) fn blocking(file: &File) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own; F_SETFL 0 clears the status flags (the
        // access mode is not among them).
        unsafe {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0);
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        assert!(plain("a/b.txt"));
        assert!(plain("index.html"));
        assert!(!plain(""));
        assert!(!plain("a//b"));
        assert!(!plain("./a"));
        assert!(!plain("a/../b"));
        assert!(!plain("/a"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn openat2_stays_beneath_and_meets_no_symlink() {
        let dir = std::env::temp_dir().join(format!("harrier-resolve-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
        std::fs::write(dir.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", root.join("in")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let b = Beneath::new(&root);
        let Some(fd) = &b.root else { return }; // no openat2 here: nothing to test
        use std::os::fd::AsRawFd;
        assert!(sys::openat2(fd.as_raw_fd(), "sub/a.txt", libc::O_RDONLY).is_ok());
        let e = |p: &str| {
            sys::openat2(fd.as_raw_fd(), p, libc::O_RDONLY)
                .unwrap_err()
                .raw_os_error()
        };
        assert_eq!(e("../secret"), Some(libc::EXDEV));
        assert_eq!(e("out"), Some(libc::ELOOP));
        assert_eq!(e("in"), Some(libc::ELOOP), "symlinks go the portable way");
        assert_eq!(e("nope"), Some(libc::ENOENT));
        let o = StaticOptions::default();
        assert!(matches!(b.fast(&root, "out".into(), &o), Fast::Slow));
        assert!(matches!(
            b.fast(&root, "nope".into(), &o),
            Fast::Answer(Status::NOT_FOUND)
        ));
        assert!(matches!(
            b.fast(&root, "sub/a.txt/x".into(), &o),
            Fast::Answer(Status::NOT_FOUND)
        ));
        // The portable way decides the symlinks: inside is served, outside is 403.
        assert_eq!(
            locate_segments(&root, &b, &["out".into()], &o).unwrap_err(),
            Status(403)
        );
        let inside = locate_segments(&root, &b, &["in".into()], &o).unwrap();
        assert_eq!(inside.path, root.join("sub/a.txt"));
        assert_eq!(inside.requested, root.join("in"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
