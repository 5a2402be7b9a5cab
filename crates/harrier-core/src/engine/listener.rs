//! Listening sockets: one per I/O thread on the same port (SO_REUSEPORT lets the kernel spread
//! connections), or one shared by thread 0 where the platform lacks it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
#[cfg(unix)]
use std::os::fd::OwnedFd;
#[cfg(windows)]
use std::os::windows::io::OwnedSocket as OwnedFd;
use std::sync::Mutex;

use socket2::{Domain, Protocol, Socket, Type};

pub(crate) fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let found = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next());
    found.ok_or_else(|| ListenError::not_found(host, port).into())
}

/// A listening socket that could not be had, described as Node's `net.Server` describes it
/// (`listen EADDRINUSE: address already in use 127.0.0.1:3000`), so that code written for
/// Node recognises it by `code`.
#[derive(Debug)]
pub struct ListenError {
    /// `listen` (bind or listen refused), or `getaddrinfo` (the host resolves to nothing).
    pub syscall: &'static str,
    /// The errno's name (`EADDRINUSE`), or `ENOTFOUND` for a host that does not resolve.
    pub code: String,
    /// The errno as Node gives it: negative (`-98`); 0 where there is none.
    pub errno: i32,
    /// The address asked for, resolved (or the host name, for `getaddrinfo`).
    pub address: String,
    pub port: u16,
    detail: String,
}

impl ListenError {
    fn os(addr: SocketAddr, e: &io::Error) -> ListenError {
        let errno = e.raw_os_error().unwrap_or(0);
        let (code, detail) = match errno_name(errno) {
            Some((name, detail)) => (name.to_string(), detail.to_string()),
            None => ("EUNKNOWN".to_string(), e.to_string()),
        };
        ListenError {
            syscall: "listen",
            code,
            errno: -errno,
            address: addr.ip().to_string(),
            port: addr.port(),
            detail,
        }
    }

    fn not_found(host: &str, port: u16) -> ListenError {
        ListenError {
            syscall: "getaddrinfo",
            code: "ENOTFOUND".into(),
            errno: 0,
            address: host.into(),
            port,
            detail: String::new(),
        }
    }
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.syscall == "getaddrinfo" {
            return write!(f, "getaddrinfo ENOTFOUND {}", self.address);
        }
        // As Node writes it: no brackets around an IPv6 address (`:::3000`).
        write!(
            f,
            "{} {}: {} {}:{}",
            self.syscall, self.code, self.detail, self.address, self.port
        )
    }
}

impl std::error::Error for ListenError {}

impl From<ListenError> for io::Error {
    fn from(e: ListenError) -> io::Error {
        let kind = match e.errno {
            0 => io::ErrorKind::NotFound,
            n => io::Error::from_raw_os_error(-n).kind(),
        };
        io::Error::new(kind, e)
    }
}

/// libuv's names and words for the errors a listen meets.
fn errno_name(errno: i32) -> Option<(&'static str, &'static str)> {
    Some(match errno {
        libc::EADDRINUSE => ("EADDRINUSE", "address already in use"),
        libc::EACCES => ("EACCES", "permission denied"),
        libc::EADDRNOTAVAIL => ("EADDRNOTAVAIL", "address not available"),
        libc::EPERM => ("EPERM", "operation not permitted"),
        libc::EAFNOSUPPORT => ("EAFNOSUPPORT", "address family not supported"),
        libc::EINVAL => ("EINVAL", "invalid argument"),
        libc::EMFILE => ("EMFILE", "too many open files"),
        libc::ENFILE => ("ENFILE", "file table overflow"),
        libc::ENOBUFS => ("ENOBUFS", "no buffer space available"),
        libc::ENOMEM => ("ENOMEM", "not enough memory"),
        _ => return None,
    })
}

/// How a listener stands to the others of its server on the same port.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// The only one.
    Alone,
    /// The first of several (SO_REUSEPORT): it binds without the option, so that a port
    /// another server holds is refused (EADDRINUSE) instead of shared with it, and takes
    /// the option before listening, for the others to join.
    Founds,
    /// Binds to the port the first one holds, with SO_REUSEPORT.
    Joins,
}

/// A listener bound and listening on `addr`; a refusal is a `ListenError` inside the
/// `io::Error`.
pub(crate) fn bind(addr: SocketAddr, group: Group) -> io::Result<std::net::TcpListener> {
    bind_socket(addr, group).map_err(|e| ListenError::os(addr, &e).into())
}

fn bind_socket(addr: SocketAddr, group: Group) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if group == Group::Joins {
        set_reuse_port(&socket)?;
    }
    if addr.is_ipv6() {
        // `::` accepts IPv4 too, as Node's servers do
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if group == Group::Founds {
        set_reuse_port(&socket)?;
    }
    socket.listen(1024)?;
    Ok(socket.into())
}

fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    return socket.set_reuse_port(true);
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    {
        let _ = socket;
        Ok(())
    }
}

/// Whether every I/O thread can have a listener of its own.
pub(crate) const REUSE_PORT: bool = cfg!(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos"))
));

/// Closes every listener of a server at once, from whichever thread asks: the thread that
/// calls for a shutdown, which must see new connections refused as soon as its call returns,
/// even while the I/O thread is in the middle of a turn (or, with the inline driver, is the
/// very thread asking, from inside a handler).
///
/// It holds a duplicate of each listening socket's descriptor; closing is `shutdown()`, which
/// takes the socket out of the LISTEN state for every descriptor (closing one would not: the
/// others, and an io_uring accept, keep the socket listening). Connections the kernel had
/// completed by then are taken first, and kept for the I/O threads to serve.
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

struct GateState {
    /// Until closed.
    listeners: Vec<OwnedFd>,
    /// Taken while closing, not yet served.
    backlog: Vec<OwnedFd>,
}

impl Gate {
    pub fn new<'a>(listeners: impl Iterator<Item = &'a std::net::TcpListener>) -> io::Result<Gate> {
        let mut fds = Vec::new();
        for l in listeners {
            fds.push(OwnedFd::from(l.try_clone()?));
        }
        Ok(Gate {
            state: Mutex::new(GateState {
                listeners: fds,
                backlog: Vec::new(),
            }),
        })
    }

    /// Refuses new connections from now on (once; later calls do nothing).
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap();
        let GateState { listeners, backlog } = &mut *state;
        for l in listeners.drain(..) {
            take_completed(&l, backlog);
            let _ = socket2::SockRef::from(&l).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Connections taken while closing.
    pub fn take_backlog(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.state.lock().unwrap().backlog)
    }
}

/// Accepts what the listener (non-blocking) holds. The sockets come out blocking, as an
/// io_uring accept gives them; the readiness backend makes its own non-blocking.
fn take_completed(listener: &OwnedFd, into: &mut Vec<OwnedFd>) {
    let socket = socket2::SockRef::from(listener);
    loop {
        match socket.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                into.push(s.into());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
