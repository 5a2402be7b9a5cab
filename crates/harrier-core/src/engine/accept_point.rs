//! One accept point handing connections out (`Balance::Handoff`): where SO_REUSEPORT does
//! not spread connections (macOS and the BSDs give every one to a single socket; some
//! platforms lack it), one listener is accepted by a thread of its own, which hands each
//! connection to the next serving thread in turn: the I/O threads of one engine, or every
//! thread of every engine of a port group. A connection reaches its thread through that
//! thread's inbox (`Inbox::hand`), and is served there as if accepted there.
//!
//! The thread blocks in a poll of its own on the listener and a waker; `stop` wakes it and
//! it ends, closing its listener.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::group::PortGroup;
use super::Shared;

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);

/// Whom the accept point hands connections to.
pub(crate) enum Seats {
    /// The I/O threads of one engine.
    Engine(Weak<Shared>),
    /// Every thread of every engine of a port group that is still serving.
    Group(Weak<PortGroup>),
}

impl Seats {
    /// Hands `stream` to the `turn`-th serving thread (modulo their number); false when
    /// nobody serves (the connection is dropped: closed).
    fn hand(&self, stream: TcpStream, turn: usize) -> bool {
        let engines: Vec<Arc<Shared>> = match self {
            Seats::Engine(shared) => shared.upgrade().into_iter().collect(),
            Seats::Group(group) => group.upgrade().map(|g| g.serving()).unwrap_or_default(),
        };
        let serving = |s: &&Arc<Shared>| !s.shutdown.load(Ordering::SeqCst);
        let seats: usize = engines
            .iter()
            .filter(serving)
            .map(|s| s.replier.inboxes.len())
            .sum();
        if seats == 0 {
            return false;
        }
        let mut seat = turn % seats;
        for engine in engines.iter().filter(serving) {
            let inboxes = &engine.replier.inboxes;
            if seat < inboxes.len() {
                inboxes[seat].hand(stream);
                return true;
            }
            seat -= inboxes.len();
        }
        false
    }
}

pub(crate) struct AcceptPoint {
    stopped: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl AcceptPoint {
    /// Starts the accepting thread on `listener` (bound and listening, non-blocking).
    pub fn start(listener: std::net::TcpListener, seats: Seats) -> io::Result<AcceptPoint> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        std::thread::Builder::new()
            .name("harrier-accept".into())
            .spawn(move || accept_until_stopped(poll, listener, &stop, &seats))?;
        Ok(AcceptPoint { stopped, waker })
    }

    /// No more connections are taken; the thread ends and closes the listener.
    pub fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    pub fn running(&self) -> bool {
        !self.stopped.load(Ordering::SeqCst)
    }
}

impl Drop for AcceptPoint {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_until_stopped(mut poll: Poll, listener: TcpListener, stop: &AtomicBool, seats: &Seats) {
    let mut events = Events::with_capacity(8);
    let mut turn = 0usize;
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("harrier: the accept point cannot poll: {e}");
                return;
            }
        }
        // Edge-triggered: everything waiting is taken before the next wait.
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    let stream = TcpStream::from(stream);
                    // Blocking, as an io_uring accept gives them; the readiness backend
                    // makes its own non-blocking.
                    let _ = stream.set_nonblocking(false);
                    if seats.hand(stream, turn) {
                        turn = turn.wrapping_add(1);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if retry_accept(&e) => {}
                Err(e) if out_of_descriptors(&e) => {
                    // The others stay queued in the backlog until some close.
                    eprintln!("harrier: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                // The listener was shut (the engine's gate closed it): nothing more comes.
                Err(_) => return,
            }
        }
    }
}

/// Errors about one connection, not the listener: the next is taken.
fn retry_accept(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}
